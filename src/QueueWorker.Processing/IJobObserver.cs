using QueueWorker.Contracts;

namespace QueueWorker.Processing;

/// <summary>
/// Told of each job's outcome exactly once, so a host can count jobs (the worker's Prometheus metrics) without
/// the pipeline depending on a metrics library. Called on the job's thread: keep it quick and non-throwing.
/// </summary>
public interface IJobObserver
{
    /// <summary>A job produced a <c>completed</c> result (any finish reason); <paramref name="tenant"/> is <see cref="JobRequest.Tenant"/>.</summary>
    void JobCompleted(JobResult result, string tenant);

    /// <summary>A job produced a <c>failed</c> result with error <paramref name="code"/>.</summary>
    void JobFailed(string code);
}

/// <summary>For callers that count nothing (<c>qw --local</c>, tests).</summary>
public sealed class NullJobObserver : IJobObserver
{
    public static NullJobObserver Instance { get; } = new();

    public void JobCompleted(JobResult result, string tenant) { }

    public void JobFailed(string code) { }
}
