namespace QueueWorker.Messaging;

/// <summary>What the consumer does with one delivery, as <see cref="SuspectIsolation"/> decides.</summary>
public enum DeliveryAction
{
    /// <summary>A job never delivered before: run it now, beside the other jobs held.</summary>
    Run,
    /// <summary>A suspect (delivered before): wait for <see cref="IsolationTicket.Alone"/>, then run it with nothing else held.</summary>
    RunAlone,
    /// <summary>Re-publish it at the end of the jobs queue carrying its delivery count, ack it once confirmed; do not run it.</summary>
    Requeue,
    /// <summary>Delivered more than the delivery limit without an answer: answer <c>poison_job</c>, park it, ack it; do not run it.</summary>
    Park,
}

/// <summary>One delivery's place in <see cref="SuspectIsolation"/>; settle it exactly once when the delivery is acked or nacked.</summary>
public sealed class IsolationTicket
{
    private readonly TaskCompletionSource<bool> _alone = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal IsolationTicket(DeliveryAction action, long generation)
    {
        Action = action;
        Generation = generation;
        if (action != DeliveryAction.RunAlone)
            _alone.SetResult(true);
    }

    public DeliveryAction Action { get; }

    internal long Generation { get; }

    /// <summary>
    /// For <see cref="DeliveryAction.RunAlone"/>: true once the job may start (consumption paused, nothing else held);
    /// false when its channel was lost first (the broker has requeued the delivery: do not run it, do not settle it).
    /// </summary>
    public Task<bool> Alone => _alone.Task;

    /// <summary>What <see cref="Alone"/> completed with; null while the suspect still waits.</summary>
    public bool? Released => _alone.Task.IsCompletedSuccessfully ? _alone.Task.Result : null;

    internal void Release(bool run) => _alone.TrySetResult(run);
}

/// <param name="Ticket">What to do and, for a suspect, when.</param>
/// <param name="Pause">Stop consuming now (cancel the consumer), then call <see cref="SuspectIsolation.Paused"/>.</param>
public readonly record struct IsolationAdmission(IsolationTicket Ticket, bool Pause);

/// <summary>
/// Runs a job that was delivered before (a suspect: a worker may have died running it) with nothing else unacked on the
/// channel, so that if it kills this worker too, only it is charged a delivery: the broker charges every unacked delivery
/// of a dead channel, and a job that kills workers would otherwise spend the attempts of every job prefetched beside it.
/// <para>
/// A suspect arriving when none is isolated becomes <em>the</em> suspect: consumption pauses, jobs already held finish,
/// and it runs alone once the pause is confirmed and nothing else is held; consumption resumes when it is settled. Other
/// suspects arriving meanwhile are put back at the <em>end</em> of the jobs queue as new messages carrying their count
/// (<see cref="DeliveryMapper.CarriedDeliveriesHeader"/>): nacking them would return them to the head of a quorum queue,
/// so a killer held beside them would run first every round, and each round would charge them again. A job whose count
/// (broker's plus carried) exceeds the delivery limit is not run: it is answered <c>poison_job</c> and parked.
/// </para>
/// Pure bookkeeping, no I/O and no clock: the consumer does what it says. Thread-safe. Tickets of a previous channel
/// (<see cref="Reset"/>) are ignored when settled, since delivery tags start again on a new channel.
/// </summary>
public sealed class SuspectIsolation
{
    private readonly long _deliveryLimit;
    private readonly Lock _lock = new();
    private readonly HashSet<IsolationTicket> _held = [];
    private IsolationTicket? _suspect;
    private bool _suspectStarted;
    private bool _paused;
    private long _generation;

    /// <param name="deliveryLimit"><c>RabbitMq:DeliveryLimit</c>: a job delivered more often than this before is poison.</param>
    public SuspectIsolation(int deliveryLimit)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(deliveryLimit);
        _deliveryLimit = deliveryLimit;
    }

    /// <summary>True while a suspect waits to run alone or runs.</summary>
    public bool Isolating
    {
        get { lock (_lock) return _suspect is not null; }
    }

    /// <summary>Deliveries held beside the suspect (run, or being re-published) and not yet settled.</summary>
    public int Held
    {
        get { lock (_lock) return _held.Count; }
    }

    /// <summary>Decides what to do with a delivery that was handed out <paramref name="priorDeliveries"/> times before.</summary>
    public IsolationAdmission Admit(long priorDeliveries)
    {
        lock (_lock)
        {
            if (priorDeliveries > _deliveryLimit)
                return new(new IsolationTicket(DeliveryAction.Park, _generation), false);
            if (_suspect is null)
            {
                if (priorDeliveries == 0)
                    return new(Hold(DeliveryAction.Run), false);
                _suspect = new IsolationTicket(DeliveryAction.RunAlone, _generation);
                _suspectStarted = false;
                _paused = false;
                return new(_suspect, true);
            }
            // A job already held when the suspect arrived, or delivered before the pause took effect, still runs (the
            // suspect waits for it); anything else while a suspect is isolated goes to the back of the queue.
            if (priorDeliveries == 0 && !_suspectStarted)
                return new(Hold(DeliveryAction.Run), false);
            return new(Hold(DeliveryAction.Requeue), false);
        }
    }

    /// <summary>The consumer is cancelled: every delivery the broker sent before has been admitted.</summary>
    public void Paused()
    {
        lock (_lock)
        {
            if (_suspect is null)
                return;
            _paused = true;
            TryRelease();
        }
    }

    /// <summary>
    /// The delivery of <paramref name="ticket"/> was acked or nacked (or given up). True when it was the isolated suspect:
    /// consumption should resume.
    /// </summary>
    public bool Settle(IsolationTicket ticket)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        lock (_lock)
        {
            if (ticket.Generation != _generation)
                return false;
            if (ReferenceEquals(ticket, _suspect))
            {
                _suspect = null;
                _suspectStarted = false;
                _paused = false;
                return true;
            }
            if (_held.Remove(ticket))
                TryRelease();
            return false;
        }
    }

    /// <summary>
    /// The channel is gone, and with it every unacked delivery (the broker requeued them): forget them. A suspect still
    /// waiting is released with <c>false</c> (not to be run); consumption is no longer paused.
    /// </summary>
    public void Reset()
    {
        lock (_lock)
        {
            _generation++;
            _held.Clear();
            if (_suspect is { } waiting && !_suspectStarted)
                waiting.Release(false);
            _suspect = null;
            _suspectStarted = false;
            _paused = false;
        }
    }

    private IsolationTicket Hold(DeliveryAction action)
    {
        var ticket = new IsolationTicket(action, _generation);
        _held.Add(ticket);
        return ticket;
    }

    private void TryRelease()
    {
        if (_suspect is not { } suspect || _suspectStarted || !_paused || _held.Count > 0)
            return;
        _suspectStarted = true;
        suspect.Release(true);
    }
}
