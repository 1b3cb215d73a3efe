using QueueWorker.Contracts;

namespace QueueWorker.Processing;

/// <summary>
/// What control messages cancelled, and the jobs this process runs now. <see cref="Cancel"/> stops the tracked jobs that
/// match (their engine call ends at the scheduler's next step) and remembers the ids and batch ids for
/// <see cref="Memory"/>, so a matching job that arrives later (still queued when the message came) is answered
/// <c>cancelled</c> at once. The memory is bounded in time and in size (<see cref="MaxRemembered"/> per kind, oldest
/// forgotten first): a cancel is a request about jobs in flight, not a permanent ban.
/// </summary>
public sealed class JobCancellations
{
    /// <summary>Ids (and batch ids) remembered at most, each; ~100 bytes each.</summary>
    public const int MaxRemembered = 100_000;

    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private readonly Remembered _ids;
    private readonly Remembered _batches;
    private readonly HashSet<Tracked> _running = [];

    /// <param name="memory">How long a cancelled id or batch id is remembered for jobs still to arrive.</param>
    public JobCancellations(TimeProvider time, TimeSpan memory, int maxRemembered = MaxRemembered)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(memory, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRemembered, 1);
        _time = time;
        Memory = memory;
        _ids = new Remembered(maxRemembered);
        _batches = new Remembered(maxRemembered);
    }

    public TimeSpan Memory { get; }

    /// <summary>Remembers the request and stops the matching jobs running now; returns how many it stopped.</summary>
    public int Cancel(CancelRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var now = _time.GetUtcNow();
        List<Tracked> hit = [];
        lock (_gate)
        {
            foreach (var id in request.JobIds) _ids.Add(id, now + Memory, now);
            if (request.BatchId is { } batch) _batches.Add(batch, now + Memory, now);
            foreach (var t in _running)
            {
                if (Matches(request, t.Id, t.BatchId)) hit.Add(t);
            }
        }
        // Outside the lock: a cancellation runs the engine's callbacks.
        foreach (var t in hit) t.Cancel();
        return hit.Count;
    }

    /// <summary>True when a control message cancelled this job id or its batch within <see cref="Memory"/>.</summary>
    public bool IsCancelled(string id, string? batchId)
    {
        var now = _time.GetUtcNow();
        lock (_gate) return _ids.Contains(id, now) || (batchId is not null && _batches.Contains(batchId, now));
    }

    /// <summary>
    /// Tracks a job while it runs; its token is cancelled by a matching <see cref="Cancel"/> (already cancelled when one
    /// came before). Dispose when the job ends.
    /// </summary>
    public Tracked Track(string id, string? batchId)
    {
        var tracked = new Tracked(this, id, batchId);
        bool cancelled;
        lock (_gate)
        {
            _running.Add(tracked);
            var now = _time.GetUtcNow();
            cancelled = _ids.Contains(id, now) || (batchId is not null && _batches.Contains(batchId, now));
        }
        if (cancelled) tracked.Cancel();
        return tracked;
    }

    /// <summary>Jobs tracked now (for tests and diagnostics).</summary>
    public int Running
    {
        get { lock (_gate) return _running.Count; }
    }

    private void Untrack(Tracked tracked)
    {
        lock (_gate) _running.Remove(tracked);
    }

    private static bool Matches(CancelRequest request, string id, string? batchId) =>
        (batchId is not null && string.Equals(request.BatchId, batchId, StringComparison.Ordinal))
        || request.JobIds.Contains(id, StringComparer.Ordinal);

    /// <summary>One running job's cancellation.</summary>
    public sealed class Tracked : IDisposable
    {
        private readonly JobCancellations _owner;
        private readonly CancellationTokenSource _cts = new();

        internal Tracked(JobCancellations owner, string id, string? batchId)
        {
            _owner = owner;
            Id = id;
            BatchId = batchId;
        }

        public string Id { get; }
        public string? BatchId { get; }
        public CancellationToken Token => _cts.Token;
        public bool IsCancelled => _cts.IsCancellationRequested;

        internal void Cancel()
        {
            try
            {
                _cts.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // The job ended meanwhile.
            }
        }

        public void Dispose()
        {
            _owner.Untrack(this);
            _cts.Dispose();
        }
    }

    /// <summary>Keys with an expiry, in insertion order (which is expiry order: every entry lives <see cref="Memory"/>).</summary>
    private sealed class Remembered(int max)
    {
        private readonly Dictionary<string, DateTimeOffset> _until = new(StringComparer.Ordinal);
        private readonly Queue<(string Key, DateTimeOffset Until)> _order = new();

        public void Add(string key, DateTimeOffset until, DateTimeOffset now)
        {
            Prune(now);
            _until[key] = until;
            _order.Enqueue((key, until));
            while ((_until.Count > max || _order.Count > 2 * max) && _order.TryDequeue(out var oldest))
            {
                // A key cancelled again later has a later expiry: only its last entry removes it.
                if (_until.TryGetValue(oldest.Key, out var u) && u == oldest.Until) _until.Remove(oldest.Key);
            }
        }

        public bool Contains(string key, DateTimeOffset now) => _until.TryGetValue(key, out var until) && now < until;

        private void Prune(DateTimeOffset now)
        {
            while (_order.TryPeek(out var head) && head.Until <= now)
            {
                _order.Dequeue();
                if (_until.TryGetValue(head.Key, out var u) && u == head.Until) _until.Remove(head.Key);
            }
        }
    }
}
