using QueueWorker.Contracts;

namespace QueueWorker.Inference;

/// <summary>
/// Runs prompt jobs on the loaded model. Implementations batch concurrent calls into one llama
/// context (one slot per sequence), so callers simply call <see cref="GenerateAsync"/> concurrently.
/// </summary>
public interface IInferenceEngine
{
    /// <summary>What the engine runs with; null until the model is loaded.</summary>
    EngineInfo? Info { get; }

    /// <summary>True once the model is loaded and the scheduler is running.</summary>
    bool IsReady { get; }

    /// <summary>
    /// Why the engine crashed and can take no more jobs; null while it is healthy (or stopped cleanly). A host stops
    /// the process on it so an orchestrator restarts a fresh one.
    /// </summary>
    Exception? Fault => null;

    /// <summary>Live counters for metrics and admission.</summary>
    EngineStats Stats { get; }

    /// <summary>
    /// Generates a completion. Returns normally for every finish reason (stop, length, stop_sequence,
    /// timeout at <see cref="GenerationRequest.Deadline"/>). Throws <see cref="InferenceException"/>
    /// for a job that can never succeed (e.g. <c>prompt_too_long</c>), and
    /// <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> is cancelled
    /// (the caller decides whether to requeue).
    /// </summary>
    Task<GenerationResult> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken);
}

/// <summary>Sampling settings of one job. <see cref="Temperature"/> 0 is greedy and deterministic.</summary>
public sealed record SamplingParams
{
    public float Temperature { get; init; } = 0.8f;
    public float TopP { get; init; } = 0.95f;
    /// <summary>0 disables top-k.</summary>
    public int TopK { get; init; } = 40;
    public float MinP { get; init; } = 0.05f;
    /// <summary>1 disables the penalty.</summary>
    public float RepeatPenalty { get; init; } = 1.0f;
    public uint Seed { get; init; }

    public static SamplingParams Greedy { get; } = new() { Temperature = 0 };
}

public sealed record GenerationRequest
{
    public required string JobId { get; init; }
    /// <summary>Raw prompt; exactly one of <see cref="Prompt"/> and <see cref="Messages"/>.</summary>
    public string? Prompt { get; init; }
    /// <summary>Chat messages, rendered with the model's chat template.</summary>
    public IReadOnlyList<ChatMessage>? Messages { get; init; }
    public required int MaxTokens { get; init; }
    public SamplingParams Sampling { get; init; } = new();
    public IReadOnlyList<string> Stop { get; init; } = [];
    /// <summary>
    /// When generation must end with <c>finish_reason: timeout</c>, honoured as given (the job pipeline computes it,
    /// <c>Inference:MaxJobSeconds</c> included). Null: <c>Inference:MaxJobSeconds</c> after submission.
    /// </summary>
    public DateTimeOffset? Deadline { get; init; }
    /// <summary>The rank of the lane the job came in on, 0 = highest: waiting jobs of a lower rank are admitted first.</summary>
    public int LaneRank { get; init; }
    /// <summary>Within a lane, waiting jobs of a higher priority are admitted first.</summary>
    public int Priority { get; init; }
    /// <summary>Who the job is for: within a lane and priority, free slots go round-robin between tenants. Null is one tenant.</summary>
    public string? Tenant { get; init; }
    /// <summary>
    /// Optional: receives each piece of text as soon as it is final (stop strings are never passed).
    /// Called on the scheduler thread: it must be quick and must not block; an exception is logged and ignored.
    /// </summary>
    public Action<string>? OnText { get; init; }
}

public sealed record GenerationResult
{
    public required string Text { get; init; }
    /// <summary>One of <see cref="FinishReasons"/>.</summary>
    public required string FinishReason { get; init; }
    public int PromptTokens { get; init; }
    public int CompletionTokens { get; init; }
    /// <summary>Prompt tokens whose KV cells were reused from a cached prefix (no prefill spent).</summary>
    public int CachedTokens { get; init; }
    /// <summary>From submission to admission into a slot.</summary>
    public double WaitMs { get; init; }
    /// <summary>Prefill time of the tokens not reused.</summary>
    public double PromptMs { get; init; }
    /// <summary>From admission to the first generated token.</summary>
    public double FirstTokenMs { get; init; }
    /// <summary>From the first generated token to the last.</summary>
    public double GenerationMs { get; init; }
}

/// <summary>A job that cannot succeed; <see cref="Code"/> is one of <see cref="ErrorCodes"/>.</summary>
public sealed class InferenceException(string code, string message) : Exception(message)
{
    public string Code { get; } = code;
}

/// <summary>The configuration the engine actually runs with, and why (logged at startup, echoed in results).</summary>
public sealed record EngineInfo(
    string Model,
    string ModelPath,
    int Threads,
    int BatchThreads,
    int ContextSize,
    int Slots,
    int BatchSize,
    string ThreadsReason);

/// <summary>Live engine counters; read from any thread.</summary>
public sealed class EngineStats
{
    private int _busySlots;
    private int _kvCellsInUse;
    private int _waiting;
    private long _steps;

    public int BusySlots => Volatile.Read(ref _busySlots);

    /// <summary>Scheduler steps begun (each is one <c>llama_decode</c>): a count that stops moving while jobs wait means a hung engine.</summary>
    public long Steps => Volatile.Read(ref _steps);
    public int KvCellsInUse => Volatile.Read(ref _kvCellsInUse);
    public int WaitingJobs => Volatile.Read(ref _waiting);

    public void SetBusySlots(int value) => Volatile.Write(ref _busySlots, value);
    public void SetKvCellsInUse(int value) => Volatile.Write(ref _kvCellsInUse, value);
    public void SetWaitingJobs(int value) => Volatile.Write(ref _waiting, value);
    public void SetSteps(long value) => Volatile.Write(ref _steps, value);
}
