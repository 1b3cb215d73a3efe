using QueueWorker.Contracts;

namespace QueueWorker.Processing;

/// <summary>
/// The one deadline rule of a job, shared by the worker and <c>qw --local</c>: the earliest of its
/// <c>timeout_ms</c> and its expiration (TTL), both measured from publish time when known (else from receipt),
/// and <c>Inference:MaxJobSeconds</c> from receipt. The engine then only honours the instant computed here.
/// </summary>
/// <param name="At">When generation must end.</param>
/// <param name="Field">The job field that set <see cref="At"/> (named when the deadline passed before work began);
/// null when the worker's own <c>Inference:MaxJobSeconds</c> did.</param>
public readonly record struct JobDeadline(DateTimeOffset At, string? Field)
{
    public const string TimeoutField = "timeout_ms";
    public const string ExpirationField = "expiration";

    /// <summary>
    /// Computes the deadline. Never throws: producers control timestamps (AMQP allows up to year 9999) and
    /// timeouts, and <see cref="DateTimeOffset.AddMilliseconds"/> throws past 9999, so every sum saturates at
    /// <see cref="DateTimeOffset.MaxValue"/> instead.
    /// </summary>
    public static JobDeadline Compute(int? timeoutMs, TimeSpan? expiration, DateTimeOffset? publishedAt, DateTimeOffset receivedAt, TimeSpan maxJob)
    {
        var origin = publishedAt ?? receivedAt;
        var deadline = new JobDeadline(SaturatingAdd(receivedAt, maxJob), null);
        // Ties go to the job's own fields: the producer asked for that instant, so the error names what it set.
        if (timeoutMs is { } timeout && SaturatingAdd(origin, TimeSpan.FromMilliseconds(timeout)) is var byTimeout && byTimeout <= deadline.At)
            deadline = new JobDeadline(byTimeout, TimeoutField);
        if (expiration is { } ttl && SaturatingAdd(origin, ttl) is var byTtl && byTtl < deadline.At)
            deadline = new JobDeadline(byTtl, ExpirationField);
        return deadline;
    }

    /// <summary>The deadline of a validated job (see <see cref="Compute"/>).</summary>
    public static JobDeadline For(JobRequest job, DateTimeOffset? publishedAt, TimeSpan? expiration, DateTimeOffset receivedAt, TimeSpan maxJob) =>
        Compute(job.TimeoutMs, expiration, publishedAt, receivedAt, maxJob);

    public bool HasPassed(DateTimeOffset now) => At <= now;

    /// <summary><paramref name="origin"/> + <paramref name="span"/>, clamped to the range of <see cref="DateTimeOffset"/> (in UTC).</summary>
    internal static DateTimeOffset SaturatingAdd(DateTimeOffset origin, TimeSpan span)
    {
        var ticks = origin.UtcTicks;
        if (span > TimeSpan.Zero && span.Ticks > DateTimeOffset.MaxValue.UtcTicks - ticks) return DateTimeOffset.MaxValue;
        if (span < TimeSpan.Zero && span.Ticks < DateTimeOffset.MinValue.UtcTicks - ticks) return DateTimeOffset.MinValue;
        return new DateTimeOffset(ticks + span.Ticks, TimeSpan.Zero);
    }
}
