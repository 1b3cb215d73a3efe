using System.Text.Json;
using QueueWorker.Contracts;

namespace QueueWorker.Inference.Grammar;

/// <summary>
/// The grammar of a job's <c>response_format</c> or <c>grammar</c>, with the conversion of each schema text cached
/// (least recently used dropped first), so a batch of one schema converts it once.
/// </summary>
public static class SchemaGrammars
{
    /// <summary>The job field a schema error names.</summary>
    public const string SchemaField = "response_format.json_schema.schema";

    private const int Capacity = 256;
    private static readonly Lock Sync = new();
    private static readonly Dictionary<string, LinkedListNode<(string Schema, string Gbnf)>> Map = new(StringComparer.Ordinal);
    private static readonly LinkedList<(string Schema, string Gbnf)> Order = new();

    /// <summary>
    /// The grammar constraint of <paramref name="job"/>, or null for unconstrained text. A schema outside the supported
    /// subset throws <see cref="InferenceException"/> with <c>invalid_field</c> and the keyword in its message.
    /// </summary>
    public static GrammarConstraint? For(JobRequest job)
    {
        ArgumentNullException.ThrowIfNull(job);
        if (job.Grammar is { } gbnf) return new GrammarConstraint(gbnf, "grammar", Json: false);
        return job.ResponseFormat switch
        {
            { Type: ResponseFormat.JsonObject } => new GrammarConstraint(JsonSchemaToGbnf.JsonObject, "response_format", Json: true),
            { Type: ResponseFormat.JsonSchemaType, JsonSchema: { } js } => new GrammarConstraint(Convert(js.Schema), SchemaField, Json: true),
            _ => null,
        };
    }

    private static string Convert(JsonElement schema)
    {
        var text = schema.GetRawText();
        lock (Sync)
        {
            if (Map.TryGetValue(text, out var hit))
            {
                Order.Remove(hit);
                Order.AddFirst(hit);
                return hit.Value.Gbnf;
            }
        }
        string gbnf;
        try
        {
            gbnf = JsonSchemaToGbnf.Convert(schema);
        }
        catch (SchemaNotSupportedException ex)
        {
            throw new InferenceException(ErrorCodes.InvalidField, $"\"{SchemaField}\": {ex.Message}", SchemaField);
        }
        lock (Sync)
        {
            if (!Map.ContainsKey(text)) Map[text] = Order.AddFirst((text, gbnf));
            while (Map.Count > Capacity)
            {
                Map.Remove(Order.Last!.Value.Schema);
                Order.RemoveLast();
            }
        }
        return gbnf;
    }
}
