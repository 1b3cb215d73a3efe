using System.Text.Json;

namespace QueueWorker.Contracts;

/// <summary>
/// OpenAI's <c>response_format</c>: <c>{"type":"text"}</c> (the default), <c>{"type":"json_object"}</c> (any JSON
/// object) or <c>{"type":"json_schema","json_schema":{"name","schema","strict"}}</c>. The worker constrains sampling
/// with a grammar built from it; the schema is carried as JSON here (Contracts references nothing) and converted by
/// the engine, which refuses a schema outside the supported subset with <c>invalid_field</c>.
/// </summary>
public sealed record ResponseFormat
{
    public const string Text = "text";
    public const string JsonObject = "json_object";
    public const string JsonSchemaType = "json_schema";

    /// <summary><see cref="Text"/>, <see cref="JsonObject"/> or <see cref="JsonSchemaType"/>.</summary>
    public required string Type { get; init; }

    /// <summary>Set when <see cref="Type"/> is <see cref="JsonSchemaType"/>.</summary>
    public JsonSchemaFormat? JsonSchema { get; init; }

    /// <summary>The output must be JSON (and the result carries it parsed).</summary>
    public bool IsJson => Type is JsonObject or JsonSchemaType;
}

/// <summary>The <c>json_schema</c> member of <see cref="ResponseFormat"/>.</summary>
public sealed record JsonSchemaFormat
{
    /// <summary>The schema's name (OpenAI: letters, digits, '_' and '-', at most 64); informational.</summary>
    public string? Name { get; init; }

    /// <summary>The JSON Schema (an object).</summary>
    public required JsonElement Schema { get; init; }

    /// <summary>OpenAI's strict flag; output is always constrained to the schema here, so it changes nothing.</summary>
    public bool? Strict { get; init; }
}
