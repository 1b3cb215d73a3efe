using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Unicode;
using QueueWorker.Cli.Running;
using QueueWorker.Contracts;

namespace QueueWorker.Cli.Batch;

/// <summary>Which OpenAI endpoint a request stands for; it decides the shape of its output body.</summary>
internal enum RequestKind
{
    /// <summary><c>/v1/completions</c>: <c>prompt</c> in, <c>choices[].text</c> out.</summary>
    Completion,
    /// <summary><c>/v1/chat/completions</c>: <c>messages</c> in, <c>choices[].message</c> out.</summary>
    Chat,
    /// <summary><c>/v1/embeddings</c>: <c>input</c> in, <c>data[].embedding</c> out.</summary>
    Embedding,
}

/// <summary>One input line, read: a request to run, or an error to write as its output line.</summary>
internal abstract record BatchLine(long LineNumber, string? CustomId);

internal sealed record BatchRequest(long LineNumber, string CustomId, RequestKind Kind, JobSubmission Submission)
    : BatchLine(LineNumber, CustomId);

/// <summary>An input line that cannot run. <see cref="BatchLine.CustomId"/> is null when none could be read.</summary>
internal sealed record BatchLineError(long LineNumber, string? CustomId, BatchError Error)
    : BatchLine(LineNumber, CustomId);

/// <summary>
/// Reads one line of a batch input file. Two forms are accepted:
/// <list type="bullet">
/// <item>OpenAI Batch API lines: <c>{"custom_id", "method": "POST", "url": "/v1/completions" | "/v1/chat/completions", "body": {...}}</c>;</item>
/// <item>bare job bodies (the worker's message contract); their <c>id</c> is the custom_id, or <c>line-N</c> when absent.</item>
/// </list>
/// The body is checked with <see cref="JobParser"/>, so errors are the worker's own, prefixed with the line number.
/// </summary>
internal static class BatchInputParser
{
    public const string CompletionsUrl = "/v1/completions";
    public const string ChatCompletionsUrl = "/v1/chat/completions";
    public const string EmbeddingsUrl = "/v1/embeddings";

    /// <param name="batchId">Set as every job's <c>batch_id</c> (replacing the line's own), so the batch can be cancelled as one.</param>
    public static BatchLine Parse(ReadOnlySpan<byte> line, long lineNumber, JobLimits limits, int maxJobBytes, string? batchId = null)
    {
        if (lineNumber == 1 && line.StartsWith("\uFEFF"u8)) line = line[3..];
        if (!Utf8.IsValid(line))
            return Error(lineNumber, null, ErrorCodes.InvalidUtf8, "not valid UTF-8.");

        JsonNode? root;
        try
        {
            root = JsonNode.Parse(line, documentOptions: new JsonDocumentOptions { MaxDepth = limits.MaxDepth });
            // JsonObject reads its properties lazily: make a duplicate key fail here, not later.
            if (root is JsonObject o) _ = o.Count;
        }
        catch (JsonException ex)
        {
            return Error(lineNumber, null, ErrorCodes.InvalidJson, $"not valid JSON (byte {(ex.BytePositionInLine ?? 0) + 1}).");
        }
        catch (ArgumentException ex)
        {
            return Error(lineNumber, null, ErrorCodes.InvalidJson, $"not a valid JSON object ({ex.Message}).");
        }
        if (root is not JsonObject obj)
            return Error(lineNumber, null, ErrorCodes.NotAnObject, $"a line must be a JSON object, got {Describe(root)}.");

        var isOpenAi = obj.ContainsKey("custom_id") || obj.ContainsKey("body") || obj.ContainsKey("url") || obj.ContainsKey("method");
        return isOpenAi ? ParseOpenAi(obj, lineNumber, limits, maxJobBytes, batchId) : ParseBare(obj, lineNumber, limits, maxJobBytes, batchId);
    }

    private static BatchLine ParseOpenAi(JsonObject line, long lineNumber, JobLimits limits, int maxJobBytes, string? batchId)
    {
        var customIdNode = line["custom_id"];
        if (customIdNode is not JsonValue v || v.GetValueKind() != JsonValueKind.String)
            return Error(lineNumber, null, ErrorCodes.InvalidField, $"\"custom_id\" must be a string, got {Describe(customIdNode)}.", "custom_id");
        if (ReadString(v) is not { } customId)
            return Error(lineNumber, null, ErrorCodes.InvalidField, $"\"custom_id\" {UnpairedSurrogate}", "custom_id");
        if (CheckId(customId, limits) is { } idProblem)
            return Error(lineNumber, null, ErrorCodes.InvalidField, $"\"custom_id\" {idProblem}", "custom_id");

        var method = line["method"];
        if (method is not null && !(method.GetValueKind() == JsonValueKind.String && method.GetValue<string>().Equals("POST", StringComparison.OrdinalIgnoreCase)))
            return Error(lineNumber, customId, ErrorCodes.InvalidField, $"\"method\" must be \"POST\", got {Describe(method)}.", "method");

        var urlNode = line["url"];
        var url = urlNode?.GetValueKind() == JsonValueKind.String ? urlNode.GetValue<string>() : null;
        RequestKind kind;
        if (url == CompletionsUrl) kind = RequestKind.Completion;
        else if (url == ChatCompletionsUrl) kind = RequestKind.Chat;
        else if (url == EmbeddingsUrl) kind = RequestKind.Embedding;
        else
            return Error(lineNumber, customId, ErrorCodes.InvalidField,
                $"\"url\" must be \"{CompletionsUrl}\", \"{ChatCompletionsUrl}\" or \"{EmbeddingsUrl}\", got {Describe(urlNode)}.", "url");

        if (line["body"] is not JsonObject body)
            return Error(lineNumber, customId, ErrorCodes.InvalidField, $"\"body\" must be an object, got {Describe(line["body"])}.", "body");

        // The endpoint decides the input field, as in the OpenAI API.
        if (kind == RequestKind.Completion && body.ContainsKey("messages"))
            return Error(lineNumber, customId, ErrorCodes.InvalidField, $"{CompletionsUrl} takes \"prompt\", not \"messages\" (use {ChatCompletionsUrl}).", "body.messages");
        if (kind == RequestKind.Chat && body.ContainsKey("prompt"))
            return Error(lineNumber, customId, ErrorCodes.InvalidField, $"{ChatCompletionsUrl} takes \"messages\", not \"prompt\" (use {CompletionsUrl}).", "body.prompt");
        if (kind != RequestKind.Embedding && body.ContainsKey("input"))
            return Error(lineNumber, customId, ErrorCodes.InvalidField, $"{url} takes no \"input\" (use {EmbeddingsUrl}).", "body.input");
        if (kind == RequestKind.Embedding && !body.ContainsKey("input"))
            return Error(lineNumber, customId, ErrorCodes.MissingPrompt, $"{EmbeddingsUrl} takes \"input\": a string or an array of strings.", "body.input");

        // custom_id is the job id: the worker's idempotency key, echoed as the result's message_id.
        if (body["id"] is { } bodyId && !(bodyId.GetValueKind() == JsonValueKind.String && bodyId.GetValue<string>() == customId))
            return Error(lineNumber, customId, ErrorCodes.InvalidField, "\"body.id\" must be absent or equal to \"custom_id\" (custom_id is the job id).", "body.id");
        body = (JsonObject)body.DeepClone();
        body["id"] = customId;
        return Build(body, lineNumber, customId, kind, "body.", limits, maxJobBytes, batchId);
    }

    private static BatchLine ParseBare(JsonObject body, long lineNumber, JobLimits limits, int maxJobBytes, string? batchId)
    {
        var idNode = body["id"];
        string customId;
        if (idNode is null)
        {
            // Stable across runs, so a resumed batch recognises the line.
            customId = $"line-{lineNumber}";
            body["id"] = customId;
        }
        else if (idNode.GetValueKind() is JsonValueKind.String or JsonValueKind.Number)
        {
            if ((idNode.GetValueKind() == JsonValueKind.String ? ReadString(idNode) : idNode.ToJsonString()) is not { } id)
                return Error(lineNumber, null, ErrorCodes.InvalidField, $"\"id\" {UnpairedSurrogate}", "id");
            customId = id;
            if (CheckId(customId, limits) is { } problem)
                return Error(lineNumber, null, ErrorCodes.InvalidField, $"\"id\" {problem}", "id");
        }
        else
        {
            return Error(lineNumber, null, ErrorCodes.InvalidField, $"\"id\" must be a string, got {Describe(idNode)}.", "id");
        }
        var kind = body.ContainsKey("input") || (body["kind"] is JsonValue k && k.GetValueKind() == JsonValueKind.String && k.GetValue<string>() == "embedding")
            ? RequestKind.Embedding
            : body.ContainsKey("messages") ? RequestKind.Chat : RequestKind.Completion;
        return Build(body, lineNumber, customId, kind, "", limits, maxJobBytes, batchId);
    }

    private static BatchLine Build(JsonObject body, long lineNumber, string customId, RequestKind kind, string paramPrefix, JobLimits limits, int maxJobBytes,
        string? batchId)
    {
        if (batchId is not null) body["batch_id"] = batchId;
        var built = JobBuilder.Build(body, limits, maxJobBytes);
        if (built.Error is { } e)
            return Error(lineNumber, customId, e.Code, (paramPrefix.Length > 0 ? "body: " : "") + e.Message, e.Field is null ? null : paramPrefix + e.Field);
        return new BatchRequest(lineNumber, customId, kind, built.Submission!);
    }

    /// <summary>The job id rules of <see cref="JobParser"/>, applied to custom_id so the error names custom_id.</summary>
    private static string? CheckId(string id, JobLimits limits)
    {
        if (id.Length == 0) return "must not be empty.";
        if (id.Length > limits.MaxIdLength) return $"must be at most {limits.MaxIdLength} characters, got {id.Length}.";
        if (id.Any(char.IsControl)) return "must not contain control characters.";
        // It becomes the job's AMQP message_id, a short string: the client cannot encode more than 255 bytes.
        var bytes = AmqpShortString.ByteCount(id);
        if (bytes > AmqpShortString.MaxBytes)
            return $"must be at most {AmqpShortString.MaxBytes} bytes in UTF-8 (it becomes the job's AMQP message_id, a short string), got {bytes} bytes.";
        return null;
    }

    private const string UnpairedSurrogate =
        "contains an unpaired surrogate (an escaped \\ud800-\\udfff without its pair): it must be valid Unicode, since it becomes the job's AMQP message_id.";

    /// <summary>A JSON string's value, or null when it holds an escaped lone surrogate (System.Text.Json refuses to decode it).</summary>
    private static string? ReadString(JsonNode node)
    {
        try
        {
            var text = node.GetValue<string>();
            return AmqpShortString.IsValidUtf16(text) ? text : null;
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    public static BatchLineError Error(long lineNumber, string? customId, string code, string message, string? param = null) =>
        new(lineNumber, customId, new BatchError(code, $"line {lineNumber}: {message}", param, lineNumber));

    public static BatchLineError TooLong(long lineNumber, long length, int maxJobBytes) =>
        Error(lineNumber, null, ErrorCodes.BodyTooLarge, $"the line is {length} bytes; a job body may be at most RabbitMq:MaxJobBytes = {maxJobBytes} bytes.");

    public static BatchLineError Duplicate(long lineNumber, string customId) =>
        // No custom_id on this error line: the first line with this custom_id owns its output line.
        Error(lineNumber, null, "duplicate_custom_id", $"custom_id \"{customId}\" is used by an earlier line; custom_id must be unique in the input.", "custom_id");

    private static string Describe(JsonNode? node) => node is null ? "nothing" : node.GetValueKind() switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => $"\"{Truncate(node.GetValue<string>())}\"",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    private static string Truncate(string s) => s.Length <= 60 ? s : s[..60] + "…";
}
