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

    /// <summary>Deadline in milliseconds from when the job was published (or received).</summary>
    public int? TimeoutMs { get; init; }

    /// <summary>Small object echoed in the result. A string <c>metadata.tenant</c> names the job's tenant for fair share.</summary>
    public JsonElement? Metadata { get; init; }

    /// <summary>The batch the job belongs to (<c>qw batch</c> sets it): a control message cancels a whole batch by it.</summary>
    public string? BatchId { get; init; }

    /// <summary>Order inside the worker's waiting list, higher first (−100 to 100, default 0); lanes order before it.</summary>
    public int? Priority { get; init; }

    /// <summary>OpenAI's end-user id: the tenant for fair share when <c>metadata.tenant</c> is absent.</summary>
    public string? User { get; init; }

    /// <summary>Who the job is for, for fair share: <c>metadata.tenant</c> when a string, else <see cref="User"/>, else null (one shared tenant).</summary>
    public string? Tenant =>
        Metadata is { ValueKind: JsonValueKind.Object } m && m.TryGetProperty("tenant", out var t) && t.ValueKind == JsonValueKind.String
            ? t.GetString()
            : User;
}
