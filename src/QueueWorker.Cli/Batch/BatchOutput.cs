using System.Text.Json;
using System.Text.Json.Serialization;
using QueueWorker.Contracts;

namespace QueueWorker.Cli.Batch;

/// <summary>
/// One line of the output file, in the OpenAI Batch API output format: exactly one of
/// <see cref="Response"/> (the job completed) and <see cref="Error"/> (the line was invalid or the
/// job failed) is set; both keys are always written.
/// </summary>
internal sealed record BatchOutputLine(
    string Id,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? CustomId,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] BatchResponse? Response,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] BatchError? Error);

internal sealed record BatchResponse(int StatusCode, string RequestId, CompletionBody Body);

/// <summary>
/// An error: a stable code (the worker's <see cref="ErrorCodes"/>, or <c>duplicate_custom_id</c>), a
/// message, the offending field (<c>param</c>) and the input line number, as in OpenAI's batch errors.
/// </summary>
internal sealed record BatchError(string Code, string Message, string? Param = null, long? Line = null);

/// <summary>
/// An OpenAI <c>text_completion</c>, <c>chat.completion</c> or embeddings <c>list</c> object (<see cref="Choices"/> or
/// <see cref="Data"/>), plus QueueWorker's timings and worker.
/// </summary>
internal sealed record CompletionBody
{
    public required string Id { get; init; }
    public required string Object { get; init; }
    public required long Created { get; init; }
    public required string Model { get; init; }
    public IReadOnlyList<CompletionChoice>? Choices { get; init; }
    /// <summary>Embeddings only: one vector per input, in input order.</summary>
    public IReadOnlyList<EmbeddingItem>? Data { get; init; }
    public required CompletionUsage Usage { get; init; }
    public Timings? Timings { get; init; }
    public WorkerInfo? Worker { get; init; }
    public JsonElement? Metadata { get; init; }
    /// <summary>The worker's warnings (e.g. a JSON output cut short by max_tokens).</summary>
    public IReadOnlyList<string>? Warnings { get; init; }
    /// <summary>The request's <c>user</c>, echoed for accounting (QueueWorker's addition).</summary>
    public string? User { get; init; }
}

internal sealed record CompletionChoice
{
    public int Index { get; init; }
    /// <summary>Completions only.</summary>
    public string? Text { get; init; }
    /// <summary>Chat completions only.</summary>
    public AssistantMessage? Message { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public JsonElement? Logprobs { get; init; }
    public required string FinishReason { get; init; }
    /// <summary>QueueWorker's addition: the output parsed, for a request with a JSON <c>response_format</c> whose output is complete.</summary>
    public JsonElement? Parsed { get; init; }
}

internal sealed record AssistantMessage(string Role, string Content);

internal sealed record CompletionUsage(int PromptTokens, int CompletionTokens, int TotalTokens, PromptTokensDetails PromptTokensDetails);

internal sealed record PromptTokensDetails(int CachedTokens);

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(BatchOutputLine))]
internal sealed partial class BatchJsonContext : JsonSerializerContext;

/// <summary>
/// The one mapping from a worker's <see cref="JobResult"/> (from the broker or the local engine) to
/// an OpenAI batch output line: both runners share it, so their output files have the same shape.
/// </summary>
internal static class OpenAiBatchMapper
{
    public static BatchOutputLine FromResult(BatchRequest request, JobResult result, DateTimeOffset now)
    {
        if (result.Status != JobStatus.Completed || result.Error is not null)
        {
            var error = result.Error ?? new JobError("unknown", $"The job ended with status \"{result.Status}\" and no error.");
            return new BatchOutputLine(NewLineId(), request.CustomId, null,
                new BatchError(error.Code, error.Message, error.Field, request.LineNumber));
        }

        if (request.Kind == RequestKind.Embedding) return FromEmbedding(request, result, now);
        var text = result.Text ?? "";
        var logprobs = result.Logprobs is { } lp ? OpenAiLogprobs.ToJson(lp, request.Kind) : (JsonElement?)null;
        var choice = request.Kind == RequestKind.Chat
            ? new CompletionChoice { Index = 0, Message = new AssistantMessage("assistant", text), Logprobs = logprobs, FinishReason = FinishReason(result.FinishReason), Parsed = result.Parsed }
            : new CompletionChoice { Index = 0, Text = text, Logprobs = logprobs, FinishReason = FinishReason(result.FinishReason), Parsed = result.Parsed };
        var usage = result.Usage ?? new Usage(0, 0, 0);
        var body = new CompletionBody
        {
            Id = (request.Kind == RequestKind.Chat ? "chatcmpl-" : "cmpl-") + result.Id,
            Object = request.Kind == RequestKind.Chat ? "chat.completion" : "text_completion",
            Created = now.ToUnixTimeSeconds(),
            Model = result.Worker?.Model ?? "",
            Choices = [choice],
            Usage = new CompletionUsage(usage.PromptTokens, usage.CompletionTokens, usage.PromptTokens + usage.CompletionTokens, new PromptTokensDetails(usage.CachedTokens)),
            Timings = result.Timings,
            Worker = result.Worker,
            Metadata = result.Metadata,
            Warnings = result.Warnings,
            User = result.User,
        };
        return new BatchOutputLine(NewLineId(), request.CustomId, new BatchResponse(200, result.Id, body), null);
    }

    private static BatchOutputLine FromEmbedding(BatchRequest request, JobResult result, DateTimeOffset now)
    {
        var usage = result.Usage ?? new Usage(0, 0, 0);
        var body = new CompletionBody
        {
            Id = "embd-" + result.Id,
            Object = "list",
            Created = now.ToUnixTimeSeconds(),
            Model = result.Worker?.Model ?? "",
            Data = result.Data ?? [],
            Usage = new CompletionUsage(usage.PromptTokens, 0, usage.PromptTokens, new PromptTokensDetails(0)),
            Timings = result.Timings,
            Worker = result.Worker,
            Metadata = result.Metadata,
            User = result.User,
        };
        return new BatchOutputLine(NewLineId(), request.CustomId, new BatchResponse(200, result.Id, body), null);
    }

    public static BatchOutputLine FromError(BatchLineError line) =>
        new(NewLineId(), line.CustomId, null, line.Error);

    /// <summary>
    /// OpenAI's finish reasons are <c>stop</c> and <c>length</c>; a stop string counts as <c>stop</c> there.
    /// QueueWorker's <c>timeout</c> and <c>cancelled</c> have no OpenAI equivalent and are kept as they are.
    /// </summary>
    public static string FinishReason(string? reason) => reason switch
    {
        FinishReasons.StopSequence => FinishReasons.Stop,
        null => FinishReasons.Stop,
        _ => reason,
    };

    public static byte[] ToJsonLine(BatchOutputLine line)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(line, BatchJsonContext.Default.BatchOutputLine);
        var bytes = new byte[json.Length + 1];
        json.CopyTo(bytes, 0);
        bytes[^1] = (byte)'\n';
        return bytes;
    }

    private static string NewLineId() => "batch_req_" + Guid.NewGuid().ToString("N");
}

/// <summary>
/// A result's log probabilities in the shape of the request's endpoint: chat completions get OpenAI's
/// <c>{"content": [{token, logprob, bytes, top_logprobs}]}</c> as the worker returns it; legacy completions get
/// <c>{tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}</c> (offsets in UTF-16 characters from the
/// start of the completion, since the prompt is not echoed).
/// </summary>
internal static class OpenAiLogprobs
{
    public static JsonElement ToJson(Logprobs logprobs, RequestKind kind)
    {
        if (kind == RequestKind.Chat)
            return JsonSerializer.SerializeToElement(logprobs, ContractsJsonContext.Default.Logprobs);
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            var content = logprobs.Content;
            w.WriteStartObject();
            w.WriteStartArray("tokens");
            foreach (var t in content) w.WriteStringValue(t.Token);
            w.WriteEndArray();
            w.WriteStartArray("token_logprobs");
            foreach (var t in content) w.WriteNumberValue(t.Logprob);
            w.WriteEndArray();
            w.WriteStartArray("top_logprobs");
            foreach (var t in content)
            {
                w.WriteStartObject();
                // Two tokens may show the same text (pieces of one character both read U+FFFD): the likelier one stands.
                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (var alt in t.TopLogprobs)
                {
                    if (seen.Add(alt.Token)) w.WriteNumber(alt.Token, alt.Logprob);
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("text_offset");
            var offset = 0;
            foreach (var t in content)
            {
                w.WriteNumberValue(offset);
                offset += t.Token.Length;
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        using var doc = JsonDocument.Parse(buffer.ToArray());
        return doc.RootElement.Clone();
    }
}
