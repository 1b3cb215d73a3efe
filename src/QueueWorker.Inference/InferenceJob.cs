using LLama.Native;
using QueueWorker.Inference.Grammar;

namespace QueueWorker.Inference;

/// <summary>A request on its way through the scheduler: its prompt tokens, effective deadline and completion.</summary>
internal sealed class InferenceJob(GenerationRequest request, LLamaToken[] prompt, DateTimeOffset deadline, long submittedAt, CancellationToken cancellationToken)
{
    public GenerationRequest Request { get; } = request;
    public LLamaToken[] Prompt { get; } = prompt;
    /// <summary>The request's deadline, or <c>Inference:MaxJobSeconds</c> after submission when it has none.</summary>
    public DateTimeOffset Deadline { get; } = deadline;
    /// <summary><see cref="TimeProvider.GetTimestamp"/> at submission.</summary>
    public long SubmittedAt { get; } = submittedAt;
    public CancellationToken CancellationToken { get; } = cancellationToken;
    /// <summary>The compiled grammar of <see cref="GenerationRequest.Grammar"/>; the job's sampler gets a copy of it.</summary>
    public GrammarPrototype? Grammar { get; init; }

    /// <summary>Arrival order in the scheduler, set when it takes the job in.</summary>
    public long Sequence { get; set; }

    /// <summary>KV cells the job may hold at most: its prompt plus every token it may generate.</summary>
    public int KvNeed => Prompt.Length + Request.MaxTokens;

    // Continuations run off the scheduler thread, so a caller's code never delays a decode step.
    public TaskCompletionSource<GenerationResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Called from the caller's cancellation: the caller sees the cancellation at once, the scheduler frees the slot at its next step.</summary>
    public void OnCancelled() => Completion.TrySetCanceled(CancellationToken);
}
