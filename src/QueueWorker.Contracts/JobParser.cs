using System.Globalization;
using System.Text.Json;
using System.Text.Unicode;

namespace QueueWorker.Contracts;

/// <summary>The outcome of parsing one job body: a job, or an error naming the field and the rule.</summary>
/// <param name="Id">The job id when one could be read (even from an invalid body), so the failed result carries it.</param>
/// <param name="Metadata">The metadata when it could be read, echoed even in a failed result.</param>
public sealed record ParseResult(JobRequest? Job, JobError? Error, string? Id, JsonElement? Metadata)
{
    public bool IsValid => Job is not null;
}

/// <summary>
/// Parses and validates untrusted job bodies. Every rule is checked here, once, so the worker, the CLI
/// and producers agree; errors name the field and the rule, and nothing is silently clamped.
/// </summary>
public static class JobParser
{
    private static readonly HashSet<string> Roles = new(StringComparer.Ordinal) { "system", "user", "assistant" };

    public static ParseResult Parse(ReadOnlySpan<byte> body, JobLimits limits, string? fallbackId = null)
    {
        // A UTF-8 byte order mark (Windows tools write one) is not JSON; RFC 8259 §8.1 lets a parser ignore it, and
        // "not valid JSON (line 1, byte 1)" for a valid file would only confuse the producer.
        if (body.StartsWith("\uFEFF"u8))
            body = body[3..];
        if (body.IsEmpty || body.Trim(" \t\r\n"u8).IsEmpty)
            return Fail(ErrorCodes.EmptyBody, "The body is empty: a job is a JSON object with a \"prompt\" or \"messages\" field.", null, fallbackId);
        if (!Utf8.IsValid(body))
            return Fail(ErrorCodes.InvalidUtf8, "The body is not valid UTF-8.", null, fallbackId);

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(body.ToArray(), new JsonDocumentOptions { MaxDepth = limits.MaxDepth, CommentHandling = JsonCommentHandling.Disallow });
        }
        catch (JsonException ex)
        {
            var detail = ex.Message.Contains("depth", StringComparison.OrdinalIgnoreCase)
                ? $"JSON nests deeper than {limits.MaxDepth} levels"
                : $"line {ex.LineNumber + 1}, byte {ex.BytePositionInLine + 1}";
            return Fail(ErrorCodes.InvalidJson, $"The body is not valid JSON ({detail}).", null, fallbackId);
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                return Fail(ErrorCodes.NotAnObject, $"The body must be a JSON object, got {Describe(root.ValueKind)}.", null, fallbackId);
            // Before any field is read: a lone surrogate or a duplicate key anywhere would make the reads below throw
            // or silently pick one value.
            var scan = JsonTextScan.Scan(body, limits.MaxDepth, Echoed);
            if (scan.Problem is { } problem)
            {
                var (id, metadata) = ReadEchoed(body, scan, limits, fallbackId);
                return Fail(ErrorCodes.InvalidField, problem.Message, problem.Field, id, metadata);
            }
            return new Reader(root, limits, fallbackId).Read();
        }
    }

    /// <summary>The top-level fields a failed result carries.</summary>
    private static readonly IReadOnlySet<string> Echoed = new HashSet<string>(StringComparer.Ordinal) { "id", "metadata" };

    /// <summary>
    /// The id and metadata of a body refused by the scan, when each is clean and given once: they are read from a
    /// small document holding only them, since the whole one cannot be read safely. Each follows its usual rules.
    /// </summary>
    private static (string? Id, JsonElement? Metadata) ReadEchoed(ReadOnlySpan<byte> body, JsonTextScan.Result scan, JobLimits limits, string? fallbackId)
    {
        var echo = new List<byte>(64) { (byte)'{' };
        foreach (var (name, slice) in scan.TopLevel)
        {
            if (slice is not { } s) continue;
            if (echo.Count > 1) echo.Add((byte)',');
            echo.AddRange(System.Text.Encoding.UTF8.GetBytes($"\"{name}\":"));
            echo.AddRange(body.Slice(s.Start, s.Length));
        }
        echo.Add((byte)'}');
        try
        {
            // The slices were valid values of a document that parsed with this depth limit (0 = the default, 64).
            using var doc = JsonDocument.Parse(echo.ToArray(), new JsonDocumentOptions { MaxDepth = limits.MaxDepth > 0 ? limits.MaxDepth + 1 : 0 });
            var reader = new Reader(doc.RootElement, limits, fallbackId);
            return (reader.TryReadId() ?? fallbackId, reader.TryReadMetadata());
        }
        catch (JsonException)
        {
            // Not expected; the refusal itself must still be answered, with the fallback id.
            return (fallbackId, null);
        }
    }

    public static ParseResult Parse(string json, JobLimits limits, string? fallbackId = null) =>
        Parse(System.Text.Encoding.UTF8.GetBytes(json), limits, fallbackId);

    private static ParseResult Fail(string code, string message, string? field, string? id, JsonElement? metadata = null) =>
        new(null, new JobError(code, message, field), id, metadata);

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };

    private sealed class FieldException(string field, string message, string code = ErrorCodes.InvalidField) : Exception(message)
    {
        public string Field { get; } = field;
        public string Code { get; } = code;
    }

    /// <summary>Reads one object; the first rule broken ends the read with a <see cref="FieldException"/>.</summary>
    private readonly struct Reader(JsonElement root, JobLimits limits, string? fallbackId)
    {
        public ParseResult Read()
        {
            string? id = null;
            JsonElement? metadata = null;
            try
            {
                id = ReadId() ?? fallbackId;
                metadata = ReadMetadata();
                if (metadata is { } md && md.TryGetProperty("tenant", out var tenant) && tenant.ValueKind is not (JsonValueKind.String or JsonValueKind.Null))
                    throw new FieldException("metadata.tenant", $"\"metadata.tenant\" must be a string (the tenant for fair share), got {Describe(tenant.ValueKind)}.");
                if (ReadEmbedding(id) is { } embedding)
                    return new ParseResult(embedding with { Metadata = metadata }, null, id, metadata);
                var prompt = OptionalString("prompt");
                var messages = ReadMessages();
                if (prompt is null && messages is null)
                    throw new FieldException("prompt", "A job needs \"prompt\" (a string) or \"messages\" (an array of {role, content}).", ErrorCodes.MissingPrompt);
                if (prompt is not null && messages is not null)
                    throw new FieldException("prompt", "Give either \"prompt\" or \"messages\", not both.", ErrorCodes.MissingPrompt);
                if (prompt is { Length: 0 })
                    throw new FieldException("prompt", "\"prompt\" must not be empty.", ErrorCodes.MissingPrompt);

                RejectUnsupported();
                var (logprobs, topLogprobs) = ReadLogprobs();

                var job = new JobRequest
                {
                    Id = id,
                    Prompt = prompt,
                    Messages = messages,
                    MaxTokens = ReadMaxTokens() ?? limits.DefaultMaxTokens,
                    Temperature = OptionalFloat("temperature", 0, 2, minExclusive: false, MinDivisor),
                    TopP = OptionalFloat("top_p", 0, 1, minExclusive: true),
                    TopK = OptionalInt("top_k", 0, 100_000, null),
                    MinP = OptionalFloat("min_p", 0, 1, minExclusive: false),
                    RepeatPenalty = OptionalFloat("repeat_penalty", 0, 10, minExclusive: true, MinDivisor),
                    Seed = OptionalSeed(),
                    Stop = ReadStop(),
                    TimeoutMs = OptionalInt("timeout_ms", 1, 7 * 24 * 3600 * 1000, null),
                    Metadata = metadata,
                    LogitBias = ReadLogitBias(),
                    PresencePenalty = OptionalFloat("presence_penalty", -2, 2, minExclusive: false),
                    FrequencyPenalty = OptionalFloat("frequency_penalty", -2, 2, minExclusive: false),
                    Logprobs = logprobs,
                    TopLogprobs = topLogprobs,
                    Model = OptionalShortString("model"),
                    BatchId = ReadBatchId(),
                    Priority = OptionalInt("priority", MinPriority, MaxPriority, null),
                    User = OptionalShortString("user"),
                };
                job = ReadStructuredOutput(job);
                return new ParseResult(job, null, id, metadata);
            }
            catch (FieldException ex)
            {
                return new ParseResult(null, new JobError(ex.Code, ex.Message, ex.Field), id ?? fallbackId, metadata);
            }
        }

        /// <summary>The batch id: the job id's rules (a control message names it the same way).</summary>
        private string? ReadBatchId()
        {
            if (!TryGet("batch_id", out var v)) return null;
            if (v.ValueKind != JsonValueKind.String)
                throw new FieldException("batch_id", $"\"batch_id\" must be a string, got {Describe(v.ValueKind)}.");
            var batch = v.GetString()!;
            if (batch.Length == 0) throw new FieldException("batch_id", "\"batch_id\" must not be empty.");
            if (batch.Length > limits.MaxIdLength)
                throw new FieldException("batch_id", $"\"batch_id\" must be at most {limits.MaxIdLength} characters, got {batch.Length}.");
            if (batch.Any(char.IsControl)) throw new FieldException("batch_id", "\"batch_id\" must not contain control characters.");
            return batch;
        }

        /// <summary>The id when it follows its rules, else null (the failed result then takes the fallback id).</summary>
        public string? TryReadId()
        {
            try { return ReadId(); }
            catch (FieldException) { return null; }
        }

        /// <summary>The metadata when it follows its rules, else null (not echoed).</summary>
        public JsonElement? TryReadMetadata()
        {
            try { return ReadMetadata(); }
            catch (FieldException) { return null; }
        }

        private bool TryGet(string name, out JsonElement value) =>
            root.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

        private string? ReadId()
        {
            if (!TryGet("id", out var v)) return null;
            string id = v.ValueKind switch
            {
                JsonValueKind.String => v.GetString()!,
                // Numeric ids are common in producers' databases; keep their exact text.
                JsonValueKind.Number => v.GetRawText(),
                _ => throw new FieldException("id", $"\"id\" must be a string, got {Describe(v.ValueKind)}."),
            };
            if (id.Length == 0) throw new FieldException("id", "\"id\" must not be empty.");
            if (id.Length > limits.MaxIdLength)
                throw new FieldException("id", $"\"id\" must be at most {limits.MaxIdLength} characters, got {id.Length}.");
            if (id.Any(char.IsControl)) throw new FieldException("id", "\"id\" must not contain control characters.");
            // The id becomes the result's AMQP message_id, a short string: a longer one could never be published.
            var bytes = AmqpShortString.ByteCount(id);
            if (bytes > AmqpShortString.MaxBytes)
                throw new FieldException("id", $"\"id\" must be at most {AmqpShortString.MaxBytes} bytes in UTF-8 (it becomes the result's AMQP message_id, a short string), got {bytes} bytes.");
            return id;
        }

        private JsonElement? ReadMetadata()
        {
            if (!TryGet("metadata", out var v)) return null;
            if (v.ValueKind != JsonValueKind.Object)
                throw new FieldException("metadata", $"\"metadata\" must be an object, got {Describe(v.ValueKind)}.");
            var size = System.Text.Encoding.UTF8.GetByteCount(v.GetRawText());
            if (size > limits.MaxMetadataBytes)
                throw new FieldException("metadata", $"\"metadata\" must be at most {limits.MaxMetadataBytes} bytes of JSON, got {size}.");
            return v.Clone();
        }

        private string? OptionalString(string name)
        {
            if (!TryGet(name, out var v)) return null;
            if (v.ValueKind != JsonValueKind.String)
                throw new FieldException(name, $"\"{name}\" must be a string, got {Describe(v.ValueKind)}.");
            return v.GetString();
        }

        private IReadOnlyList<ChatMessage>? ReadMessages()
        {
            if (!TryGet("messages", out var v)) return null;
            if (v.ValueKind != JsonValueKind.Array)
                throw new FieldException("messages", $"\"messages\" must be an array of {{role, content}}, got {Describe(v.ValueKind)}.");
            var count = v.GetArrayLength();
            if (count == 0) throw new FieldException("messages", "\"messages\" must not be empty.", ErrorCodes.MissingPrompt);
            if (count > limits.MaxMessages)
                throw new FieldException("messages", $"\"messages\" must hold at most {limits.MaxMessages} messages, got {count}.");
            var list = new List<ChatMessage>(count);
            var i = 0;
            foreach (var m in v.EnumerateArray())
            {
                var field = $"messages[{i}]";
                if (m.ValueKind != JsonValueKind.Object)
                    throw new FieldException(field, $"\"{field}\" must be an object with \"role\" and \"content\", got {Describe(m.ValueKind)}.");
                if (!m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
                    throw new FieldException($"{field}.role", $"\"{field}.role\" must be a string: system, user or assistant.");
                var r = role.GetString()!;
                if (!Roles.Contains(r))
                    throw new FieldException($"{field}.role", $"\"{field}.role\" must be system, user or assistant, got \"{Truncate(r)}\".");
                if (!m.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                    throw new FieldException($"{field}.content", $"\"{field}.content\" must be a string.");
                list.Add(new ChatMessage(r, content.GetString()!));
                i++;
            }
            return list;
        }

        /// <summary><c>response_format</c> and <c>grammar</c>: the shape only; the engine converts the schema and compiles the grammar.</summary>
        private JobRequest ReadStructuredOutput(JobRequest job)
        {
            var format = ReadResponseFormat();
            var grammar = OptionalString("grammar");
            if (grammar is not null)
            {
                if (grammar.Trim().Length == 0) throw new FieldException("grammar", "\"grammar\" must not be empty: a GBNF grammar with a \"root\" rule.");
                var size = System.Text.Encoding.UTF8.GetByteCount(grammar);
                if (size > limits.MaxGrammarBytes)
                    throw new FieldException("grammar", $"\"grammar\" must be at most {limits.MaxGrammarBytes} bytes, got {size}.");
                if (grammar.Contains('\0', StringComparison.Ordinal))
                    throw new FieldException("grammar", "\"grammar\" must not contain NUL characters.");
                if (format is { IsJson: true })
                    throw new FieldException("grammar", $"Give either \"grammar\" or \"response_format\": {{\"type\": \"{format.Type}\"}}, not both.");
            }
            return job with { ResponseFormat = format, Grammar = grammar };
        }

        private ResponseFormat? ReadResponseFormat()
        {
            const string field = "response_format";
            if (!TryGet(field, out var v)) return null;
            if (v.ValueKind != JsonValueKind.Object)
                throw new FieldException(field, $"\"{field}\" must be an object such as {{\"type\": \"json_object\"}}, got {Describe(v.ValueKind)}.");
            if (!v.TryGetProperty("type", out var t) || t.ValueKind != JsonValueKind.String)
                throw new FieldException($"{field}.type", $"\"{field}.type\" must be \"text\", \"json_object\" or \"json_schema\".");
            var type = t.GetString()!;
            foreach (var p in v.EnumerateObject())
            {
                if (p.Name is not ("type" or "json_schema"))
                    throw new FieldException($"{field}.{p.Name}", $"\"{field}.{Truncate(p.Name)}\" is not a field of response_format (type, json_schema).");
            }
            switch (type)
            {
                case ResponseFormat.Text or ResponseFormat.JsonObject:
                    if (v.TryGetProperty("json_schema", out _))
                        throw new FieldException($"{field}.json_schema", $"\"{field}.json_schema\" is only allowed with \"type\": \"json_schema\".");
                    return new ResponseFormat { Type = type };
                case ResponseFormat.JsonSchemaType:
                    return new ResponseFormat { Type = type, JsonSchema = ReadJsonSchema(v) };
                default:
                    throw new FieldException($"{field}.type", $"\"{field}.type\" must be \"text\", \"json_object\" or \"json_schema\", got \"{Truncate(type)}\".");
            }
        }

        private JsonSchemaFormat ReadJsonSchema(JsonElement format)
        {
            const string field = "response_format.json_schema";
            if (!format.TryGetProperty("json_schema", out var js) || js.ValueKind != JsonValueKind.Object)
                throw new FieldException(field, $"\"{field}\" must be an object {{\"name\", \"schema\", \"strict\"}} when \"type\" is \"json_schema\".");
            string? name = null;
            bool? strict = null;
            JsonElement? schema = null;
            foreach (var p in js.EnumerateObject())
            {
                switch (p.Name)
                {
                    case "name" when p.Value.ValueKind == JsonValueKind.String:
                        name = p.Value.GetString()!;
                        if (name.Length is 0 or > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
                            throw new FieldException($"{field}.name", $"\"{field}.name\" must be 1 to 64 letters, digits, '_' or '-'.");
                        break;
                    case "name":
                        throw new FieldException($"{field}.name", $"\"{field}.name\" must be a string, got {Describe(p.Value.ValueKind)}.");
                    case "strict" when p.Value.ValueKind is JsonValueKind.True or JsonValueKind.False:
                        strict = p.Value.GetBoolean();
                        break;
                    case "strict" when p.Value.ValueKind == JsonValueKind.Null:
                        break;
                    case "strict":
                        throw new FieldException($"{field}.strict", $"\"{field}.strict\" must be a boolean, got {Describe(p.Value.ValueKind)}.");
                    case "schema" when p.Value.ValueKind == JsonValueKind.Object:
                        schema = p.Value;
                        break;
                    case "schema":
                        throw new FieldException($"{field}.schema", $"\"{field}.schema\" must be a JSON Schema object, got {Describe(p.Value.ValueKind)}.");
                    case "description":
                        if (p.Value.ValueKind is not (JsonValueKind.String or JsonValueKind.Null))
                            throw new FieldException($"{field}.description", $"\"{field}.description\" must be a string.");
                        break;
                    default:
                        throw new FieldException($"{field}.{p.Name}", $"\"{field}.{Truncate(p.Name)}\" is not a field of json_schema (name, description, schema, strict).");
                }
            }
            if (schema is not { } s)
                throw new FieldException($"{field}.schema", $"\"{field}.schema\" is required: the JSON Schema the output must match.");
            var size = System.Text.Encoding.UTF8.GetByteCount(s.GetRawText());
            if (size > limits.MaxGrammarBytes)
                throw new FieldException($"{field}.schema", $"\"{field}.schema\" must be at most {limits.MaxGrammarBytes} bytes of JSON, got {size}.");
            return new JsonSchemaFormat { Name = name, Schema = s.Clone(), Strict = strict };
        }

        /// <summary>
        /// An embedding job (<c>"kind": "embedding"</c> or <c>input</c> present), else null. Generation settings are refused
        /// in it rather than ignored; OpenAI's embedding fields are honoured (<c>encoding_format</c> "float") or refused.
        /// </summary>
        private JobRequest? ReadEmbedding(string? id)
        {
            string? kind = null;
            if (TryGet("kind", out var k))
            {
                kind = k.ValueKind == JsonValueKind.String ? k.GetString() : null;
                if (kind is not ("embedding" or "completion"))
                    throw new FieldException("kind", $"\"kind\" must be \"completion\" or \"embedding\", got {ShowAny(k)}.");
            }
            var hasInput = TryGet("input", out var input);
            if (kind == "completion" && hasInput)
                throw new FieldException("input", "\"input\" belongs to embedding jobs; a completion job takes \"prompt\" or \"messages\".");
            if (kind != "embedding" && !hasInput) return null;
            if (!hasInput)
                throw new FieldException("input", "An embedding job needs \"input\": a string or an array of strings.", ErrorCodes.MissingPrompt);
            foreach (var other in (string[])["prompt", "messages"])
            {
                if (TryGet(other, out _))
                    throw new FieldException(other, $"An embedding job takes \"input\", not \"{other}\".");
            }
            foreach (var name in GenerationFields)
            {
                if (TryGet(name, out _))
                    throw new FieldException(name, $"\"{name}\" is a generation setting; an embedding job generates nothing. Leave it out.");
            }
            if (TryGet("encoding_format", out var format) && !(format.ValueKind == JsonValueKind.String && format.GetString() == "float"))
                throw new FieldException("encoding_format", $"\"encoding_format\" must be \"float\": vectors are JSON numbers, got {ShowAny(format)}.");
            if (TryGet("dimensions", out _))
                throw new FieldException("dimensions", "\"dimensions\" is not supported: the vectors have the model's size.");

            List<string> texts = [];
            if (input.ValueKind == JsonValueKind.String) texts.Add(input.GetString()!);
            else if (input.ValueKind == JsonValueKind.Array)
            {
                var i = 0;
                foreach (var t in input.EnumerateArray())
                {
                    if (t.ValueKind != JsonValueKind.String)
                        throw new FieldException($"input[{i}]", $"\"input[{i}]\" must be a string (token arrays are not supported), got {Describe(t.ValueKind)}.");
                    texts.Add(t.GetString()!);
                    i++;
                }
            }
            else throw new FieldException("input", $"\"input\" must be a string or an array of strings, got {Describe(input.ValueKind)}.");
            if (texts.Count == 0) throw new FieldException("input", "\"input\" must not be empty.", ErrorCodes.MissingPrompt);
            if (texts.Count > limits.MaxInputs)
                throw new FieldException("input", $"\"input\" must hold at most {limits.MaxInputs} strings, got {texts.Count}.");
            for (var i = 0; i < texts.Count; i++)
            {
                if (texts[i].Length == 0)
                    throw new FieldException(input.ValueKind == JsonValueKind.String ? "input" : $"input[{i}]", "An embedding input must not be empty.", ErrorCodes.MissingPrompt);
            }
            return new JobRequest
            {
                Id = id,
                Input = texts,
                Model = OptionalShortString("model"),
                User = OptionalShortString("user"),
                TimeoutMs = OptionalInt("timeout_ms", 1, 7 * 24 * 3600 * 1000, null),
            };
        }

        /// <summary>Fields that mean something only for a completion.</summary>
        private static readonly string[] GenerationFields =
        [
            "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed", "stop",
            "logit_bias", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "n", "stream", "best_of", "echo", "suffix",
            "tools", "tool_choice", "response_format", "grammar",
        ];

        /// <summary><c>max_tokens</c>, or OpenAI's newer name for it, <c>max_completion_tokens</c>; both may be given only with one value.</summary>
        private int? ReadMaxTokens()
        {
            const string why = "the worker's cap Inference:MaxTokens";
            var maxTokens = OptionalInt("max_tokens", 1, limits.MaxTokens, why);
            var maxCompletion = OptionalInt("max_completion_tokens", 1, limits.MaxTokens, why);
            if (maxTokens is { } a && maxCompletion is { } b && a != b)
                throw new FieldException("max_completion_tokens",
                    $"\"max_completion_tokens\" ({b}) and \"max_tokens\" ({a}) are the same setting and disagree; give one of them.");
            return maxTokens ?? maxCompletion;
        }

        /// <summary>A string of at most <see cref="JobLimits.MaxIdLength"/> characters (echoed or compared, never used as text).</summary>
        private string? OptionalShortString(string name)
        {
            var s = OptionalString(name);
            if (s is not null && s.Length > limits.MaxIdLength)
                throw new FieldException(name, $"\"{name}\" must be at most {limits.MaxIdLength} characters, got {s.Length}.");
            return s;
        }

        /// <summary>
        /// OpenAI's <c>logit_bias</c>: an object mapping token ids (as decimal strings) to a bias from −100 to 100. Whether each
        /// id is in the model's vocabulary is checked by the engine, which knows the vocabulary.
        /// </summary>
        private Dictionary<int, float>? ReadLogitBias()
        {
            if (!TryGet("logit_bias", out var v)) return null;
            if (v.ValueKind != JsonValueKind.Object)
                throw new FieldException("logit_bias", $"\"logit_bias\" must be an object mapping token ids to biases from -100 to 100, got {Describe(v.ValueKind)}.");
            var biases = new Dictionary<int, float>();
            foreach (var p in v.EnumerateObject())
            {
                var field = $"logit_bias.{Truncate(p.Name)}";
                if (biases.Count == limits.MaxLogitBias)
                    throw new FieldException("logit_bias", $"\"logit_bias\" must hold at most {limits.MaxLogitBias} tokens.");
                // Digits only: "+5", " 5" or "05" are not how a token id is written.
                if (p.Name.Length is 0 or > 10 || !p.Name.All(char.IsAsciiDigit) || (p.Name.Length > 1 && p.Name[0] == '0')
                    || !int.TryParse(p.Name, NumberStyles.None, CultureInfo.InvariantCulture, out var token))
                    throw new FieldException(field, $"\"logit_bias\" keys must be token ids (non-negative integers written as strings), got \"{Truncate(p.Name)}\".");
                var value = p.Value;
                if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out var bias) || double.IsNaN(bias) || bias < -100 || bias > 100)
                    throw new FieldException(field, $"\"{field}\" must be a number from -100 to 100, got {Show(value)}.");
                biases[token] = (float)bias;
            }
            return biases.Count == 0 ? null : biases;
        }

        /// <summary>
        /// <c>logprobs</c>: a boolean (chat completions) or, as in OpenAI's legacy completions, the number of alternatives
        /// (0..20), which stands for <c>logprobs: true</c> with that <c>top_logprobs</c>. <c>top_logprobs</c> needs logprobs on.
        /// </summary>
        private (bool? Logprobs, int? Top) ReadLogprobs()
        {
            var top = OptionalInt("top_logprobs", 0, MaxTopLogprobs, null);
            if (!TryGet("logprobs", out var v))
            {
                return top is null ? (null, null)
                    : throw new FieldException("top_logprobs", "\"top_logprobs\" needs \"logprobs\": true.");
            }
            switch (v.ValueKind)
            {
                case JsonValueKind.True:
                    return (true, top ?? 0);
                case JsonValueKind.False:
                    return top is null ? (false, null)
                        : throw new FieldException("top_logprobs", "\"top_logprobs\" needs \"logprobs\": true, got false.");
                case JsonValueKind.Number:
                    var n = OptionalInt("logprobs", 0, MaxTopLogprobs, null)!.Value;
                    if (top is { } t && t != n)
                        throw new FieldException("top_logprobs", $"\"logprobs\" as a number ({n}) is the number of alternatives, and \"top_logprobs\" ({t}) disagrees; give one of them.");
                    return (true, n);
                default:
                    throw new FieldException("logprobs", $"\"logprobs\" must be a boolean (or, as in legacy completions, an integer from 0 to {MaxTopLogprobs}), got {Describe(v.ValueKind)}.");
            }
        }

        private void RejectUnsupported()
        {
            // OpenAI fields a producer might expect to work; refusing beats silently ignoring them. Only the values
            // that mean "what the worker does anyway" pass: a string "true" is not false, and not silently ignored.
            if (TryGet("n", out var n) && !(n.ValueKind == JsonValueKind.Number && TryInteger(n, out var nv) && nv == 1))
                throw new FieldException("n", $"\"n\" must be 1: one completion per job, got {Show(n)}.");
            if (TryGet("stream", out var s) && s.ValueKind != JsonValueKind.False)
                throw new FieldException("stream", s.ValueKind == JsonValueKind.True
                    ? "\"stream\" must be false: results are published whole."
                    : $"\"stream\" must be false (a boolean): results are published whole, got {Show(s)}.");
            if (TryGet("best_of", out var b) && !(b.ValueKind == JsonValueKind.Number && TryInteger(b, out var bv) && bv == 1))
                throw new FieldException("best_of", $"\"best_of\" must be 1: one completion is generated per job, got {Show(b)}.");
            if (TryGet("echo", out var e) && e.ValueKind != JsonValueKind.False)
                throw new FieldException("echo", $"\"echo\" must be false: the prompt is not repeated in the result, got {Show(e)}.");
            if (TryGet("store", out var st) && st.ValueKind != JsonValueKind.False)
                throw new FieldException("store", $"\"store\" must be false: the worker stores nothing, got {Show(st)}.");
            if (TryGet("service_tier", out var tier) && !(tier.ValueKind == JsonValueKind.String && tier.GetString() is "auto" or "default"))
                throw new FieldException("service_tier", $"\"service_tier\" must be \"auto\" or \"default\": a worker has one tier, got {ShowAny(tier)}.");
            if (TryGet("modalities", out var mod) && !(mod.ValueKind == JsonValueKind.Array && mod.GetArrayLength() == 1 && mod[0].ValueKind == JsonValueKind.String && mod[0].GetString() == "text"))
                throw new FieldException("modalities", "\"modalities\" must be [\"text\"]: the worker generates text only.");
            foreach (var (name, why) in Unsupported)
            {
                if (TryGet(name, out _))
                    throw new FieldException(name, $"\"{name}\" is not supported: {why}. Leave it out (or null).");
            }
        }

        /// <summary>OpenAI request fields that would change what is generated and that the worker does not implement.</summary>
        private static readonly (string Name, string Why)[] Unsupported =
        [
            ("tools", "the worker does not call tools"),
            ("tool_choice", "the worker does not call tools"),
            ("parallel_tool_calls", "the worker does not call tools"),
            ("functions", "the worker does not call functions"),
            ("function_call", "the worker does not call functions"),
            ("stream_options", "results are published whole, never streamed"),
            ("suffix", "insertion (text after the completion) is not implemented"),
            ("prediction", "predicted outputs are not implemented"),
            ("audio", "the worker generates text only"),
            ("reasoning_effort", "the worker runs no reasoning models' effort control"),
            ("verbosity", "the worker has no verbosity control"),
            ("web_search_options", "the worker does not search the web"),
        ];

        /// <summary>
        /// JSON numbers are read as doubles. An integral value written as a float (3.0, 3e2) is an integer; 3.5 is not.
        /// Beyond ±9.2e18 nothing fits any field, and the cast to long would saturate.
        /// </summary>
        private static bool TryInteger(JsonElement v, out long value)
        {
            if (v.TryGetInt64(out value)) return true;
            if (v.TryGetDouble(out var d) && d == Math.Floor(d) && Math.Abs(d) < 9.2e18)
            {
                value = (long)d;
                return true;
            }
            value = 0;
            return false;
        }

        /// <summary>A value for a message: a number as written (shortened), anything else by its kind.</summary>
        private static string Show(JsonElement v) => v.ValueKind == JsonValueKind.Number ? Truncate(v.GetRawText()) : Describe(v.ValueKind);

        /// <summary>Like <see cref="Show"/>, with a string's value (shortened).</summary>
        private static string ShowAny(JsonElement v) => v.ValueKind == JsonValueKind.String ? $"\"{Truncate(v.GetString()!)}\"" : Show(v);

        /// <summary>OpenAI's bound on <c>top_logprobs</c>.</summary>
        private const int MaxTopLogprobs = 20;

        private int? OptionalInt(string name, int min, int max, string? maxWhy)
        {
            if (!TryGet(name, out var v)) return null;
            var rule = $"an integer from {min} to {max}{(maxWhy is null ? "" : $" ({maxWhy})")}";
            if (v.ValueKind != JsonValueKind.Number)
                throw new FieldException(name, $"\"{name}\" must be {rule}, got {Describe(v.ValueKind)}.");
            if (!TryInteger(v, out var value) || value < min || value > max)
                throw new FieldException(name, $"\"{name}\" must be {rule}, got {Show(v)}.");
            return (int)value;
        }

        /// <param name="smallestPositive">
        /// For values the sampler divides by: the smallest non-zero value. Checked on the 32-bit float the engine gets,
        /// since that is what it divides by.
        /// </param>
        private float? OptionalFloat(string name, double min, double max, bool minExclusive, double smallestPositive = 0)
        {
            if (!TryGet(name, out var v)) return null;
            var rule = minExclusive ? $"a number greater than {Fmt(min)} and at most {Fmt(max)}" : $"a number from {Fmt(min)} to {Fmt(max)}";
            if (v.ValueKind != JsonValueKind.Number)
                throw new FieldException(name, $"\"{name}\" must be {rule}, got {Describe(v.ValueKind)}.");
            // 1e999 reads as infinity, which the range check refuses like any other out-of-range value.
            if (!v.TryGetDouble(out var d) || double.IsNaN(d) || d > max || d < min || (minExclusive && d == min))
                throw new FieldException(name, $"\"{name}\" must be {rule}, got {Show(v)}.");
            var f = (float)d;
            if (minExclusive && f <= min)
                throw new FieldException(name, $"\"{name}\" must be {rule}, got {Show(v)}, which is {Fmt(min)} as the 32-bit float the sampler uses.");
            if (smallestPositive > 0 && d != 0 && d < smallestPositive)
                throw new FieldException(name,
                    $"\"{name}\" must be {(minExclusive ? "" : "0 or ")}at least {MinDivisorText}, got {Show(v)}: the sampler divides logits by it, and a smaller value overflows a 32-bit float.");
            return f;
        }

        private uint? OptionalSeed()
        {
            if (!TryGet("seed", out var v)) return null;
            const string rule = "an integer from 0 to 4294967294";
            if (v.ValueKind != JsonValueKind.Number)
                throw new FieldException("seed", $"\"seed\" must be {rule}, got {Describe(v.ValueKind)}.");
            if (!TryInteger(v, out var s) || s < 0 || s > uint.MaxValue)
                throw new FieldException("seed", $"\"seed\" must be {rule}, got {Show(v)}.");
            if (s == LlamaDefaultSeed)
                throw new FieldException("seed",
                    $"\"seed\" must be {rule}, got {LlamaDefaultSeed}: llama.cpp reads that value (LLAMA_DEFAULT_SEED) as \"pick a random seed\", so the job would not be reproducible; leave \"seed\" out for a random one.");
            return (uint)s;
        }

        private IReadOnlyList<string>? ReadStop()
        {
            if (!TryGet("stop", out var v)) return null;
            List<string> stops = [];
            if (v.ValueKind == JsonValueKind.String) stops.Add(v.GetString()!);
            else if (v.ValueKind == JsonValueKind.Array)
            {
                var i = 0;
                foreach (var s in v.EnumerateArray())
                {
                    if (s.ValueKind != JsonValueKind.String)
                        throw new FieldException($"stop[{i}]", $"\"stop[{i}]\" must be a string, got {Describe(s.ValueKind)}.");
                    stops.Add(s.GetString()!);
                    i++;
                }
            }
            else throw new FieldException("stop", $"\"stop\" must be a string or an array of strings, got {Describe(v.ValueKind)}.");

            if (stops.Count > limits.MaxStopStrings)
                throw new FieldException("stop", $"\"stop\" must hold at most {limits.MaxStopStrings} strings, got {stops.Count}.");
            for (var i = 0; i < stops.Count; i++)
            {
                if (stops[i].Length == 0) throw new FieldException($"stop[{i}]", $"\"stop[{i}]\" must not be empty.");
                if (stops[i].Length > limits.MaxStopLength)
                    throw new FieldException($"stop[{i}]", $"\"stop[{i}]\" must be at most {limits.MaxStopLength} characters, got {stops[i].Length}.");
            }
            return stops.Count == 0 ? null : stops;
        }

        private const int MinPriority = -100;
        private const int MaxPriority = 100;

        private static string Fmt(double d) => d.ToString(CultureInfo.InvariantCulture);

        /// <summary>
        /// The smallest non-zero temperature and repeat penalty. llama.cpp divides logits by the temperature (and
        /// positive logits by the penalty): a denormal or tiny float turns them into infinities and the sampled token
        /// into garbage. At 1e-6 a logit would have to exceed 3e32 to overflow, and sampling is already greedy.
        /// </summary>
        private const double MinDivisor = 1e-6;
        private const string MinDivisorText = "0.000001";

        /// <summary>llama.cpp's LLAMA_DEFAULT_SEED: "pick a random seed".</summary>
        private const long LlamaDefaultSeed = uint.MaxValue;
        private static string Truncate(string s) => s.Length <= 40 ? s : s[..40] + "…";
    }
}
