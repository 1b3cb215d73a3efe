using System.Text.Json.Serialization;

namespace QueueWorker.Contracts;

/// <summary>Source-generated JSON for the contract: snake_case on the wire, nulls left out.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(JobRequest))]
[JsonSerializable(typeof(JobResult))]
[JsonSerializable(typeof(Logprobs))]
public sealed partial class ContractsJsonContext : JsonSerializerContext;
