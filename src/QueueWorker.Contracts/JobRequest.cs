using System.Text.Json;

namespace QueueWorker.Contracts;

/// <summary>A chat message; <see cref="Role"/> is <c>system</c>, <c>user</c> or <c>assistant</c>.</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>
/// A prompt job (message contract v1). Field names follow the OpenAI request style on the wire
/// (snake_case) so OpenAI batch bodies map onto it one to one. Parse untrusted bodies with
/// <see cref="JobParser"/>, which names the field and the rule of every error.
/// </summary>
public sealed record JobRequest
{
    /// <summary>Job id and idempotency key; AMQP <c>message_id</c> is used when absent.</summary>
    public string? Id { get; init; }

    /// <summary>Raw prompt. Exactly one of <see cref="Prompt"/> and <see cref="Messages"/>.</summary>
    public string? Prompt { get; init; }

    /// <summary>Chat messages, rendered with the model's chat template.</summary>
    public IReadOnlyList<ChatMessage>? Messages { get; init; }

    public int? MaxTokens { get; init; }
    public float? Temperature { get; init; }
    public float? TopP { get; init; }
    public int? TopK { get; init; }
    public float? MinP { get; init; }
    public float? RepeatPenalty { get; init; }
    public uint? Seed { get; init; }
    public IReadOnlyList<string>? Stop { get; init; }

    /// <summary>OpenAI <c>logit_bias</c>: token id → bias added to its logit before sampling (−100..100).</summary>
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }

    /// <summary>OpenAI <c>presence_penalty</c> (−2..2; 0 or absent disables).</summary>
    public float? PresencePenalty { get; init; }

    /// <summary>OpenAI <c>frequency_penalty</c> (−2..2; 0 or absent disables).</summary>
    public float? FrequencyPenalty { get; init; }

    /// <summary>OpenAI <c>logprobs</c>: return the log probability of each generated token.</summary>
    public bool? Logprobs { get; init; }

    /// <summary>OpenAI <c>top_logprobs</c> (0..20): the most likely alternatives returned at each position; needs <see cref="Logprobs"/>.</summary>
    public int? TopLogprobs { get; init; }

    /// <summary>OpenAI <c>model</c>: informational, unless the worker serves a named model (<c>Model:Name</c>), which it must then equal.</summary>
    public string? Model { get; init; }

    /// <summary>OpenAI <c>user</c>: the end user, for accounting: echoed in the result, and the tenant of the CPU metric when <c>metadata.tenant</c> is absent.</summary>
    public string? User { get; init; }

    /// <summary>
    /// An embedding job (<c>"kind": "embedding"</c>, or <c>input</c> present): the texts to embed, one vector each. Such a
    /// job has no <see cref="Prompt"/>, <see cref="Messages"/> or generation settings.
    /// </summary>
    public IReadOnlyList<string>? Input { get; init; }

    /// <summary>Deadline in milliseconds from when the job was published (or received).</summary>
    public int? TimeoutMs { get; init; }

    /// <summary>Constrains the output to JSON, optionally matching a schema (see <see cref="Contracts.ResponseFormat"/>).</summary>
    public ResponseFormat? ResponseFormat { get; init; }

    /// <summary>A GBNF grammar (start rule <c>root</c>) the output must follow; exclusive with a JSON <see cref="ResponseFormat"/>.</summary>
    public string? Grammar { get; init; }

    /// <summary>Small object echoed in the result. A string <c>metadata.tenant</c> names the job's tenant (fair share, CPU billing).</summary>
    public JsonElement? Metadata { get; init; }

    /// <summary>The batch the job belongs to (<c>qw batch</c> sets it): a control message cancels a whole batch by it.</summary>
    public string? BatchId { get; init; }

    /// <summary>Order inside the worker's waiting list, higher first (−100 to 100, default 0); lanes order before it.</summary>
    public int? Priority { get; init; }

    /// <summary>
    /// Who the job's CPU is billed to: <c>metadata.tenant</c> when it is a non-empty string, else <see cref="User"/>,
    /// else <c>default</c> (one shared tenant): fair share between tenants and CPU billing. The metrics bound how many distinct values become labels. Not a wire field.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string Tenant =>
        Metadata is { ValueKind: JsonValueKind.Object } m && m.TryGetProperty("tenant", out var t) && t.ValueKind == JsonValueKind.String
            && t.GetString() is { Length: > 0 } tenant
            ? tenant
            : string.IsNullOrEmpty(User) ? "default" : User;
}
