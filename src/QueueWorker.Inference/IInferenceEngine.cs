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

    /// <summary>
    /// Pooled, L2-normalized vectors of <paramref name="inputs"/>, in order. Throws <see cref="InferenceException"/>
    /// <c>embeddings_disabled</c> when the engine serves no embeddings (the default).
    /// </summary>
    Task<EmbeddingResult> EmbedAsync(IReadOnlyList<string> inputs, CancellationToken cancellationToken) =>
        Task.FromException<EmbeddingResult>(InferenceException.EmbeddingsDisabled());
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
    /// <summary>OpenAI's presence penalty (subtracted once from the logit of every token seen); 0 disables.</summary>
    public float PresencePenalty { get; init; }
    /// <summary>OpenAI's frequency penalty (subtracted per occurrence of a token seen); 0 disables.</summary>
    public float FrequencyPenalty { get; init; }
    /// <summary>Token id → bias added to its logit, first in the chain; null or empty: none.</summary>
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }
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
    /// <summary>Null: no log probabilities. Else each generated token's, with this many alternatives (0..20).</summary>
    public int? TopLogprobs { get; init; }
    /// <summary>
    /// When generation must end with <c>finish_reason: timeout</c>, honoured as given (the job pipeline computes it,
    /// <c>Inference:MaxJobSeconds</c> included). Null: <c>Inference:MaxJobSeconds</c> after submission.
    /// </summary>
    public DateTimeOffset? Deadline { get; init; }
    /// <summary>The rank of the lane the job came in on, 0 = highest: waiting jobs of a lower rank are admitted first.</summary>
    public int LaneRank { get; init; }
    /// <summary>The weight of that lane (<c>RabbitMq:LaneWeights</c>): when every waiting job's lane has one, lanes share slots by weight; 0 = strict lane order.</summary>
    public int LaneWeight { get; init; }
    /// <summary>Within a lane, waiting jobs of a higher priority are admitted first.</summary>
    public int Priority { get; init; }
    /// <summary>Who the job is for: within a lane and priority, free slots go round-robin between tenants. Null is one tenant.</summary>
    public string? Tenant { get; init; }
    /// <summary>
    /// Optional: receives each piece of text as soon as it is final (stop strings are never passed).
    /// Called on the scheduler thread: it must be quick and must not block; an exception is logged and ignored.
    /// </summary>
    public Action<string>? OnText { get; init; }
    /// <summary>A grammar the output must follow (sampling is constrained by it), from the job's response_format or grammar.</summary>
    public GrammarConstraint? Grammar { get; init; }
}

/// <summary>A GBNF grammar (start rule <c>root</c>) that constrains sampling.</summary>
/// <param name="Gbnf">The grammar text.</param>
/// <param name="Field">The job field it came from, named in the error when llama.cpp cannot compile it.</param>
/// <param name="Json">The output is JSON: the result carries it parsed.</param>
public sealed record GrammarConstraint(string Gbnf, string Field, bool Json);

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
    /// <summary>
    /// The job's share of the CPU of every decode step it took part in, prefill included: the process CPU time used
    /// during each step (wall × threads where that clock is missing), split over the step's tokens by how many were the job's.
    /// </summary>
    public double CpuMs { get; init; }
    /// <summary>Each generated token's log probability, when <see cref="GenerationRequest.TopLogprobs"/> asked for them.</summary>
    public IReadOnlyList<TokenLogprob>? Logprobs { get; init; }
}

/// <summary>A job that cannot succeed; <see cref="Code"/> is one of <see cref="ErrorCodes"/>.</summary>
public sealed class InferenceException(string code, string message, string? field = null) : Exception(message)
{
    public string Code { get; } = code;
    /// <summary>The job field at fault, when one is.</summary>
    public string? Field { get; } = field;

    /// <summary>An embedding job on an engine that serves none.</summary>
    public static InferenceException EmbeddingsDisabled() => new(ErrorCodes.EmbeddingsDisabled,
        "This worker serves no embeddings (Model:Embeddings is off): send embedding jobs to a worker started with Model:Embeddings=true.", "input");
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

    private long _cpuMicroseconds;
    private long _occupancyMicroseconds;

    /// <summary>Process CPU time used during successful decode steps since start: the sum of the jobs' <c>cpu_ms</c>, cancelled jobs included.</summary>
    public double CpuMs => Volatile.Read(ref _cpuMicroseconds) / 1000.0;

    /// <summary>The same steps' wall time × llama.cpp threads: what the steps held, used or not (≥ <see cref="CpuMs"/> on a busy machine).</summary>
    public double OccupancyMs => Volatile.Read(ref _occupancyMicroseconds) / 1000.0;

    private long _promptCacheHits;
    private long _promptCacheMisses;
    private long _promptCacheRestoredTokens;
    private long _promptCacheBytes;
    private int _promptCacheEntries;
    private long _promptCacheEvictions;

    /// <summary>Jobs whose prompt prefix was restored from the host-RAM prompt cache (<c>Inference:PromptCacheMb</c>).</summary>
    public long PromptCacheHits => Volatile.Read(ref _promptCacheHits);
    /// <summary>Jobs admitted with the prompt cache on that restored nothing from it (no entry beat the slots' own prefixes).</summary>
    public long PromptCacheMisses => Volatile.Read(ref _promptCacheMisses);
    /// <summary>Prompt tokens restored from the prompt cache instead of prefilled.</summary>
    public long PromptCacheRestoredTokens => Volatile.Read(ref _promptCacheRestoredTokens);
    /// <summary>Bytes the prompt cache holds now (saved KV states and their token keys).</summary>
    public long PromptCacheBytes => Volatile.Read(ref _promptCacheBytes);
    public int PromptCacheEntries => Volatile.Read(ref _promptCacheEntries);
    /// <summary>Entries dropped to stay within the bound.</summary>
    public long PromptCacheEvictions => Volatile.Read(ref _promptCacheEvictions);

    public void AddPromptCacheLookup(bool hit, int restoredTokens = 0)
    {
        if (hit)
        {
            Interlocked.Increment(ref _promptCacheHits);
            Interlocked.Add(ref _promptCacheRestoredTokens, restoredTokens);
        }
        else
        {
            Interlocked.Increment(ref _promptCacheMisses);
        }
    }

    public void SetPromptCache(long bytes, int entries, long evictions)
    {
        Volatile.Write(ref _promptCacheBytes, bytes);
        Volatile.Write(ref _promptCacheEntries, entries);
        Volatile.Write(ref _promptCacheEvictions, evictions);
    }

    public void AddCpuMs(double cpuMs, double occupancyMs)
    {
        Interlocked.Add(ref _cpuMicroseconds, (long)Math.Round(cpuMs * 1000));
        Interlocked.Add(ref _occupancyMicroseconds, (long)Math.Round(occupancyMs * 1000));
    }
}
