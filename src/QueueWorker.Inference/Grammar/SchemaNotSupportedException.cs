namespace QueueWorker.Inference.Grammar;

/// <summary>
/// A JSON Schema the converter refuses: a keyword outside the supported subset, a value it cannot express as a grammar,
/// or a malformed schema. <see cref="Keyword"/> names the keyword at fault; the message says where and why.
/// </summary>
public sealed class SchemaNotSupportedException(string keyword, string message) : Exception(message)
{
    /// <summary>The schema keyword at fault (e.g. <c>allOf</c>, <c>pattern</c>).</summary>
    public string Keyword { get; } = keyword;
}
