using System.Text.Json;

namespace QueueWorker.Contracts;

public static class JobStatus
{
    public const string Completed = "completed";
    public const string Failed = "failed";
}

public static class FinishReasons
{
    /// <summary>The model produced an end-of-generation token.</summary>
    public const string Stop = "stop";
    /// <summary><c>max_tokens</c> reached.</summary>
    public const string Length = "length";
    /// <summary>One of the job's stop strings appeared; it is not part of the text.</summary>
    public const string StopSequence = "stop_sequence";
    public const string Timeout = "timeout";
    public const string Cancelled = "cancelled";
}

/// <summary>The result of one job (message contract v1), published with <c>message_id</c> = job id.</summary>
public sealed record JobResult
{
    public required string Id { get; init; }
    public required string Status { get; init; }
    public string? Text { get; init; }
    public string? FinishReason { get; init; }
    /// <summary>
    /// The text parsed as JSON, for a job with a JSON <c>response_format</c> whose output is complete JSON; omitted when
    /// the output was cut short (e.g. <c>finish_reason: length</c>), with a warning saying so.
    /// </summary>
    public JsonElement? Parsed { get; init; }
    public JobError? Error { get; init; }
    public Usage? Usage { get; init; }
    public Timings? Timings { get; init; }
    public WorkerInfo? Worker { get; init; }
    public JsonElement? Metadata { get; init; }
    /// <summary>The job's <c>user</c> (OpenAI's end-user id), echoed for accounting; omitted when the job gave none.</summary>
    public string? User { get; init; }
    /// <summary>Log probabilities of the generated tokens, when the job asked for <c>logprobs</c> (OpenAI's chat shape).</summary>
    public Logprobs? Logprobs { get; init; }
    /// <summary>An embedding job's vectors, one per input in input order (OpenAI's <c>data</c>).</summary>
    public IReadOnlyList<EmbeddingItem>? Data { get; init; }
    /// <summary>What the producer should know that did not fail the job (e.g. a <c>reply_to</c> not honoured); omitted when null.</summary>
    public IReadOnlyList<string>? Warnings { get; init; }

    public static JobResult Failed(string id, JobError error, WorkerInfo? worker = null, JsonElement? metadata = null, Timings? timings = null) =>
        new() { Id = id, Status = JobStatus.Failed, Error = error, Worker = worker, Metadata = metadata, Timings = timings };
}

/// <summary>A failure: a stable <see cref="Code"/> (see <see cref="ErrorCodes"/>), a message naming the rule, and the field when one is at fault.</summary>
public sealed record JobError(string Code, string Message, string? Field = null)
{
    /// <summary>
    /// A fault nobody foresaw, answered instead of requeued. Only the exception's type: its message may quote the
    /// job's text, and the log under the job id has the rest.
    /// </summary>
    public static JobError Internal(Exception exception) => new(ErrorCodes.InternalError,
        $"The worker failed on this job ({exception?.GetType().Name}); the fault is logged under this job id. Retrying will not help until the worker is fixed.");
}

/// <summary>OpenAI's <c>choices[].logprobs</c> of a chat completion: one entry per generated token.</summary>
public sealed record Logprobs(IReadOnlyList<TokenLogprob> Content);

/// <summary>
/// One generated token: its text, natural-log probability under the model's own distribution (the softmax of its raw
/// logits, before logit_bias, penalties, temperature and truncation), its UTF-8 bytes (a token may hold part of a
/// character) and the most likely tokens at that position, most likely first.
/// </summary>
public sealed record TokenLogprob(string Token, double Logprob, IReadOnlyList<int> Bytes, IReadOnlyList<TopLogprob> TopLogprobs);

/// <summary>One alternative at a position of <see cref="TokenLogprob"/>.</summary>
public sealed record TopLogprob(string Token, double Logprob, IReadOnlyList<int> Bytes);

/// <summary>One input's vector: mean-pooled over its tokens and L2-normalized (OpenAI's embedding object).</summary>
public sealed record EmbeddingItem(int Index, IReadOnlyList<float> Embedding)
{
    public string Object => "embedding";
}

public sealed record Usage(int PromptTokens, int CompletionTokens, int CachedTokens)
{
    public int TotalTokens => PromptTokens + CompletionTokens;
}

/// <summary>Timing metrics, all in milliseconds except the rates (tokens per second).</summary>
public sealed record Timings
{
    /// <summary>From the AMQP timestamp (publish time) to the start of work; null when the producer set no timestamp.</summary>
    public double? QueuedMs { get; init; }
    public double PromptMs { get; init; }
    public double PromptTokensPerS { get; init; }
    public double FirstTokenMs { get; init; }
    public double GenerationMs { get; init; }
    public double TokensPerS { get; init; }
    public double TotalMs { get; init; }
    /// <summary>
    /// CPU time charged to the job: its share of every decode step it took part in (the process CPU time used during the
    /// step, split by the job's tokens in the step), prefill included. Null in results that never reached the engine.
    /// </summary>
    public double? CpuMs { get; init; }
}

public sealed record WorkerInfo(string Id, string Model, int Threads, int Context, int Slots, string Version);
