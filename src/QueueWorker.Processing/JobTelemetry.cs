using System.Diagnostics;

namespace QueueWorker.Processing;

/// <summary>
/// The pipeline's spans: <c>job</c> (one per job) and <c>inference</c> inside it. The source keeps the name the worker
/// has always exported under, so a host adds <see cref="SourceName"/> to its tracer.
/// </summary>
public static class JobTelemetry
{
    public const string SourceName = "QueueWorker";
    public const string JobActivity = "job";
    public const string InferenceActivity = "inference";

    public static readonly ActivitySource Source = new(SourceName, typeof(JobTelemetry).Assembly.GetName().Version?.ToString());
}
