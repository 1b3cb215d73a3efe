using System.Text.Json;

namespace QueueWorker.Contracts;

/// <summary>Reads and writes contract records with the source-generated context.</summary>
public static class JobSerializer
{
    public static byte[] Serialize(JobRequest job) => JsonSerializer.SerializeToUtf8Bytes(job, ContractsJsonContext.Default.JobRequest);

    /// <summary>
    /// Never throws for a result: a result that cannot be written means a job that is requeued until it is
    /// dead-lettered. Strings are safe (the writer replaces a lone surrogate with U+FFFD); the echoed
    /// <see cref="JobResult.Metadata"/> is a <see cref="JsonElement"/>, whose writer throws on an escaped lone surrogate
    /// or when it is <c>default</c>. <see cref="JobParser"/> never yields such metadata; from any other source it is
    /// left out of the result rather than losing the result.
    /// </summary>
    public static byte[] Serialize(JobResult result) =>
        JsonSerializer.SerializeToUtf8Bytes(Writable(result), ContractsJsonContext.Default.JobResult);

    public static string ToJson(JobResult result) => JsonSerializer.Serialize(Writable(result), ContractsJsonContext.Default.JobResult);

    public static JobResult DeserializeResult(ReadOnlySpan<byte> body) =>
        JsonSerializer.Deserialize(body, ContractsJsonContext.Default.JobResult)
        ?? throw new JsonException("The result body is JSON null.");

    /// <summary>True when <paramref name="metadata"/> can be written (and so echoed).</summary>
    public static bool IsWritable(JsonElement metadata)
    {
        if (metadata.ValueKind == JsonValueKind.Undefined) return false;
        try
        {
            using var writer = new Utf8JsonWriter(Stream.Null);
            metadata.WriteTo(writer);
            return true;
        }
        catch (InvalidOperationException)
        {
            // An escaped lone surrogate somewhere inside, or (ObjectDisposedException) an element of a disposed document.
            return false;
        }
    }

    private static JobResult Writable(JobResult result) =>
        result.Metadata is { } metadata && !IsWritable(metadata) ? result with { Metadata = null } : result;
}
