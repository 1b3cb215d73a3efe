using QueueWorker.Contracts;

namespace QueueWorker.Cli.Batch;

/// <summary>Live counters of a batch run, updated by its workers and read by the progress display.</summary>
internal sealed class BatchStats(TimeProvider time)
{
    private readonly long _started = time.GetTimestamp();
    private readonly LatencyHistogram _latency = new();
    private long _total;
    private long _alreadyDone;
    private long _skipped;
    private long _completed;
    private long _failedJobs;
    private long _invalidLines;
    private long _expired;
    private long _promptTokens;
    private long _completionTokens;

    /// <summary>Non-blank input lines (from the counting pass).</summary>
    public long Total { get => Interlocked.Read(ref _total); set => Interlocked.Exchange(ref _total, value); }
    /// <summary>Lines the output file already had when this run began.</summary>
    public long AlreadyDone { get => Interlocked.Read(ref _alreadyDone); set => Interlocked.Exchange(ref _alreadyDone, value); }
    /// <summary>Input lines passed over because their output line exists.</summary>
    public long Skipped => Interlocked.Read(ref _skipped);
    /// <summary>Jobs completed in this run.</summary>
    public long Completed => Interlocked.Read(ref _completed);
    /// <summary>Jobs that ran and failed in this run.</summary>
    public long FailedJobs => Interlocked.Read(ref _failedJobs);
    /// <summary>Input lines that could not become a job (written as error lines) in this run.</summary>
    public long InvalidLines => Interlocked.Read(ref _invalidLines);
    /// <summary>Of <see cref="FailedJobs"/>, those answered <c>deadline_exceeded</c> (out of time: the completion window, or the job's timeout).</summary>
    public long Expired => Interlocked.Read(ref _expired);
    public long Failures => FailedJobs + InvalidLines;
    /// <summary>Output lines written in this run.</summary>
    public long Written => Completed + FailedJobs + InvalidLines;
    public long PromptTokens => Interlocked.Read(ref _promptTokens);
    public long CompletionTokens => Interlocked.Read(ref _completionTokens);
    public TimeSpan Elapsed => time.GetElapsedTime(_started);

    public void AddSkipped() => Interlocked.Increment(ref _skipped);
    public void AddInvalidLine() => Interlocked.Increment(ref _invalidLines);

    public void AddResult(JobResult result, TimeSpan latency)
    {
        if (result.Status == JobStatus.Completed) Interlocked.Increment(ref _completed);
        else Interlocked.Increment(ref _failedJobs);
        if (result.Error?.Code == ErrorCodes.DeadlineExceeded) Interlocked.Increment(ref _expired);
        if (result.Usage is { } usage)
        {
            Interlocked.Add(ref _promptTokens, usage.PromptTokens);
            Interlocked.Add(ref _completionTokens, usage.CompletionTokens);
        }
        _latency.Add(latency.TotalMilliseconds);
    }

    /// <summary>Jobs finished (completed or failed) per second over this run.</summary>
    public double JobsPerSecond => Rate(Completed + FailedJobs);
    /// <summary>Generated tokens per second over this run (all jobs together).</summary>
    public double TokensPerSecond => Rate(CompletionTokens);

    /// <summary>Lines still to write; exact once the output's lines are all from this input.</summary>
    public long Remaining => Math.Max(0, Total - Math.Max(AlreadyDone, Skipped) - Written);

    public TimeSpan? Eta
    {
        get
        {
            var rate = Rate(Written);
            return rate <= 0 ? null : TimeSpan.FromSeconds(Remaining / rate);
        }
    }

    public double? LatencyPercentileMs(double p) => _latency.Percentile(p);

    private double Rate(long count)
    {
        var seconds = Elapsed.TotalSeconds;
        return seconds <= 0 ? 0 : count / seconds;
    }
}

/// <summary>
/// Latencies in log-spaced buckets (2% wide, 0.1 ms to ~1.5 hours): percentiles within 2% in
/// constant memory, however many jobs a batch has.
/// </summary>
internal sealed class LatencyHistogram
{
    private const double Min = 0.1;
    private const double Growth = 1.02;
    private readonly long[] _buckets = new long[900];
    private readonly Lock _gate = new();
    private long _count;

    public void Add(double ms)
    {
        var index = ms <= Min ? 0 : (int)Math.Min(_buckets.Length - 1, Math.Ceiling(Math.Log(ms / Min, Growth)));
        lock (_gate)
        {
            _buckets[index]++;
            _count++;
        }
    }

    /// <summary>The p-th percentile (0..100) as the upper bound of its bucket, or null with no samples.</summary>
    public double? Percentile(double p)
    {
        lock (_gate)
        {
            if (_count == 0) return null;
            var rank = (long)Math.Ceiling(p / 100 * _count);
            if (rank < 1) rank = 1;
            long seen = 0;
            for (var i = 0; i < _buckets.Length; i++)
            {
                seen += _buckets[i];
                if (seen >= rank) return Min * Math.Pow(Growth, i);
            }
            return Min * Math.Pow(Growth, _buckets.Length - 1);
        }
    }
}
