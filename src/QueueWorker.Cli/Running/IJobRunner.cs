using QueueWorker.Contracts;

namespace QueueWorker.Cli.Running;

/// <summary>
/// Where qw's jobs run: through RabbitMQ to the workers (<see cref="Amqp.BrokerJobRunner"/>) or on an
/// engine inside this process (<see cref="Local.LocalJobRunner"/>). Both return the worker's
/// <see cref="JobResult"/>, so everything downstream (printing, the OpenAI batch mapping) is shared.
/// </summary>
internal interface IJobRunner : IAsyncDisposable
{
    /// <summary>Where jobs go, for messages (e.g. <c>llm.jobs on amqp://guest:***@localhost:5672/</c>).</summary>
    string Description { get; }

    /// <summary>Connects or loads the model. Throws <see cref="Infrastructure.CliException"/> with a clear message when it cannot.</summary>
    Task StartAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Runs one job and returns its result, failed or completed. Survives broker restarts (resubmits
    /// the job); only <paramref name="cancellationToken"/> ends the wait early.
    /// </summary>
    Task<JobResult> RunAsync(JobSubmission submission, CancellationToken cancellationToken);

    /// <summary>Live counters for progress and the summary.</summary>
    RunnerCounters Counters { get; }
}

/// <summary>A validated job and the exact body to publish (the producer's fields, with <c>id</c> set).</summary>
internal sealed record JobSubmission(JobRequest Job, ReadOnlyMemory<byte> Body)
{
    public string Id => Job.Id!;

    /// <summary>When the job expires (<c>--completion-window</c>, <c>--expires-in</c>); null: never.</summary>
    public JobExpiry? Expiry { get; init; }
}

/// <summary>What a runner did beyond running jobs; read from any thread.</summary>
internal sealed class RunnerCounters
{
    private long _resubmitted;
    private long _duplicatesDropped;
    private long _reconnects;
    private long _expiredUnpublished;
    private volatile string? _status;

    /// <summary>Jobs published again because the connection was lost before their result came.</summary>
    public long Resubmitted => Interlocked.Read(ref _resubmitted);
    /// <summary>Results dropped because their job was already answered (same message_id) or is unknown.</summary>
    public long DuplicatesDropped => Interlocked.Read(ref _duplicatesDropped);
    public long Reconnects => Interlocked.Read(ref _reconnects);
    /// <summary>Jobs answered <c>deadline_exceeded</c> by qw itself: their expiry passed before they were published (or published again).</summary>
    public long ExpiredUnpublished => Interlocked.Read(ref _expiredUnpublished);
    /// <summary>A transient condition worth showing (e.g. "reconnecting"), or null.</summary>
    public string? Status { get => _status; set => _status = value; }

    public void AddResubmitted() => Interlocked.Increment(ref _resubmitted);
    public void AddDuplicateDropped() => Interlocked.Increment(ref _duplicatesDropped);
    public void AddReconnect() => Interlocked.Increment(ref _reconnects);
    public void AddExpiredUnpublished() => Interlocked.Increment(ref _expiredUnpublished);
}
