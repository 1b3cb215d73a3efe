namespace QueueWorker.Contracts;

/// <summary>The bounds <see cref="JobParser"/> enforces. Values out of range are rejected, never clamped.</summary>
public sealed record JobLimits
{
    /// <summary>The largest <c>max_tokens</c> a job may ask for (configuration <c>Inference:MaxTokens</c>).</summary>
    public int MaxTokens { get; init; } = 512;

    /// <summary><c>max_tokens</c> when the job gives none; must be ≤ <see cref="MaxTokens"/>.</summary>
    public int DefaultMaxTokens { get; init; } = 256;

    public int MaxIdLength { get; init; } = 256;
    public int MaxStopStrings { get; init; } = 16;
    public int MaxStopLength { get; init; } = 256;
    public int MaxMessages { get; init; } = 256;
    public int MaxMetadataBytes { get; init; } = 16 * 1024;
    /// <summary>Tokens one <c>logit_bias</c> may name.</summary>
    public int MaxLogitBias { get; init; } = 1024;
    /// <summary>Texts one embedding job may hold (OpenAI's limit).</summary>
    public int MaxInputs { get; init; } = 2048;

    /// <summary>The largest <c>grammar</c> or <c>response_format.json_schema.schema</c>, in bytes of JSON/GBNF text.</summary>
    public int MaxGrammarBytes { get; init; } = 64 * 1024;

    /// <summary>JSON nesting deeper than this is rejected as <c>invalid_json</c>.</summary>
    public int MaxDepth { get; init; } = 32;

    public static JobLimits Default { get; } = new();
}
