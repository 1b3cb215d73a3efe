using System.Reflection;

namespace QueueWorker.Processing;

/// <summary>Who this worker is, as echoed in every result's <c>worker</c> block and the AMQP connection name.</summary>
public sealed class WorkerIdentity
{
    public WorkerIdentity(IConfiguration configuration)
    {
        // A container's hostname is its pod/replica name: the id an operator can find again.
        var configured = configuration["Worker:Id"];
        Id = string.IsNullOrWhiteSpace(configured) ? $"{Environment.MachineName}-{Environment.ProcessId}" : configured;
        Version = typeof(WorkerIdentity).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
                  ?? typeof(WorkerIdentity).Assembly.GetName().Version?.ToString() ?? "0.0.0";
    }

    public string Id { get; }
    public string Version { get; }
}
