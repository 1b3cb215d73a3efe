using System.Reflection;
using Microsoft.Extensions.Configuration;
using QueueWorker.Contracts;
using QueueWorker.Inference;

namespace QueueWorker.Processing;

/// <summary>
/// Who answers a job, as echoed in every result's <c>worker</c> block: the one source of <see cref="WorkerInfo"/>
/// for the worker and <c>qw --local</c> alike (they differ only in <see cref="Id"/>).
/// </summary>
public sealed record WorkerIdentity(string Id, string Version)
{
    /// <summary>The product version (every project shares Directory.Build.props' version), without the source revision.</summary>
    public static string ProductVersion { get; } =
        typeof(WorkerIdentity).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
        ?? typeof(WorkerIdentity).Assembly.GetName().Version?.ToString() ?? "0.0.0";

    /// <summary>
    /// The worker's identity: <c>Worker:Id</c>, else machine name and process id. A container's hostname is its
    /// pod/replica name: the id an operator can find again.
    /// </summary>
    public static WorkerIdentity ForWorker(IConfiguration configuration)
    {
        var configured = configuration["Worker:Id"];
        return new(string.IsNullOrWhiteSpace(configured) ? $"{Environment.MachineName}-{Environment.ProcessId}" : configured, ProductVersion);
    }

    /// <summary><c>qw --local</c>'s identity: results written offline still say which machine produced them.</summary>
    public static WorkerIdentity ForLocal() => new("qw-local-" + Environment.MachineName.ToLowerInvariant(), ProductVersion);

    /// <summary>The result's <c>worker</c> block; the engine part is empty until the model is loaded.</summary>
    public WorkerInfo Describe(EngineInfo? engine) =>
        new(Id, engine?.Model ?? "", engine?.Threads ?? 0, engine?.ContextSize ?? 0, engine?.Slots ?? 0, Version);
}
