using System.Text.Json;

namespace QueueWorker.Contracts;

/// <summary>Reads and writes contract records with the source-generated context.</summary>
public static class JobSerializer
{
    public static byte[] Serialize(JobRequest job) => JsonSerializer.SerializeToUtf8Bytes(job, ContractsJsonContext.Default.JobRequest);
    public static byte[] Serialize(JobResult result) => JsonSerializer.SerializeToUtf8Bytes(result, ContractsJsonContext.Default.JobResult);
    public static string ToJson(JobResult result) => JsonSerializer.Serialize(result, ContractsJsonContext.Default.JobResult);

    public static JobResult DeserializeResult(ReadOnlySpan<byte> body) =>
        JsonSerializer.Deserialize(body, ContractsJsonContext.Default.JobResult)
        ?? throw new JsonException("The result body is JSON null.");
}
