namespace QueueWorker.Inference;

/// <summary>
/// The order in which waiting jobs get free slots: lanes first, then priority (higher first), then fair share between
/// tenants (see <see cref="TenantTurns"/>: the tenant that has had the fewest slots goes first, a newcomer starting at
/// most a few slots behind the others; then the one served longest ago; within a tenant, oldest job first). Between
/// lanes, strict order (0 = highest lane, always first) unless every waiting job's lane has a weight
/// (<c>RabbitMq:LaneWeights</c>): then the lanes with waiting jobs share slots in proportion to their weights by smooth
/// weighted round-robin (see <see cref="LaneTurns"/>). Pure over its inputs, so the policy is unit-tested without a model.
/// </summary>
internal static class WaitingOrder
{
    /// <summary>
    /// What the order looks at of one waiting job. <paramref name="Sequence"/>: arrival order. <paramref name="LaneWeight"/>:
    /// its lane's weight, 0 = lanes in strict order.
    /// </summary>
    public readonly record struct Entry(int LaneRank, int Priority, string? Tenant, long Sequence, int LaneWeight = 0);

    /// <summary>
    /// Indices into <paramref name="entries"/> in admission order, as if each job were admitted in turn.
    /// <paramref name="turns"/> says when each tenant was last given a slot, <paramref name="lanes"/> each lane's credit
    /// (neither is changed); without <paramref name="lanes"/> lanes are in strict order.
    /// </summary>
    public static int[] Order(IReadOnlyList<Entry> entries, TenantTurns turns, LaneTurns? lanes = null)
    {
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(turns);
        // Admissions are simulated on a copy of the turns, across lanes and priority groups in their order of precedence
        // (with lane weights the lanes interleave, so the tenants' order inside a lane is computed as if they did not).
        var simulated = turns.Copy();
        // Each lane's own order: priority groups, tenants round-robin inside each.
        var byLane = Enumerable.Range(0, entries.Count)
            .GroupBy(i => entries[i].LaneRank)
            .OrderBy(g => g.Key)
            .Select(g => (Rank: g.Key, Weight: entries[g.First()].LaneWeight, Jobs: new Queue<int>(WithinLane(entries, g, simulated))))
            .ToList();
        if (lanes is null || byLane.Count < 2 || byLane.Any(l => l.Weight <= 0))
            return [.. byLane.SelectMany(l => l.Jobs)];

        // Weighted: replay the round-robin on a copy of the lanes' credit, one admission at a time.
        var credit = lanes.Snapshot();
        var result = new List<int>(entries.Count);
        var waiting = byLane.ToDictionary(l => l.Rank, l => l.Weight);
        var queues = byLane.ToDictionary(l => l.Rank, l => l.Jobs);
        while (waiting.Count > 0)
        {
            var pick = LaneTurns.Pick(credit, waiting);
            LaneTurns.Apply(credit, pick, waiting);
            var jobs = queues[pick];
            result.Add(jobs.Dequeue());
            if (jobs.Count == 0) waiting.Remove(pick);
        }
        return [.. result];
    }

    /// <summary>One lane's jobs in order: priority (higher first), then tenants by <see cref="TenantTurns"/>.</summary>
    private static List<int> WithinLane(IReadOnlyList<Entry> entries, IEnumerable<int> lane, TenantTurns simulated)
    {
        var result = new List<int>();
        foreach (var group in lane.GroupBy(i => -entries[i].Priority).OrderBy(g => g.Key))
        {
            var queues = group.GroupBy(i => entries[i].Tenant ?? "")
                .Select(t => (Tenant: t.Key, Jobs: new Queue<int>(t.OrderBy(i => entries[i].Sequence))))
                .ToList();
            while (queues.Count > 0)
            {
                // Fewest slots had (counting a newcomer's catch-up credit); then served longest ago; between tenants never
                // served, the one whose job came first.
                var pick = queues[0];
                foreach (var q in queues)
                {
                    var (qu, pu) = (simulated.Usage(q.Tenant), simulated.Usage(pick.Tenant));
                    var (ql, pl) = (simulated.LastServed(q.Tenant), simulated.LastServed(pick.Tenant));
                    if (qu < pu || (qu == pu && ql < pl)
                        || (qu == pu && ql == pl && entries[q.Jobs.Peek()].Sequence < entries[pick.Jobs.Peek()].Sequence))
                        pick = q;
                }
                result.Add(pick.Jobs.Dequeue());
                simulated.Served(pick.Tenant);
                if (pick.Jobs.Count == 0) queues.Remove(pick);
            }
        }
        return result;
    }
}

/// <summary>
/// Fair queuing between tenants by slots had: each admission adds one to its tenant's usage, and the tenant with the
/// least usage goes first (ties: served longest ago). Left alone that would hand a tenant that was idle for an hour every
/// slot until its usage caught up with the busy ones, so a tenant's usage counts as no less than the system's level
/// (the busiest tenant's usage) minus <see cref="Credit"/>, and a tenant never seen starts exactly there: a newcomer or a
/// returning tenant gets at most <see cref="Credit"/> slots ahead, then shares equally — the same rule as Linux CFS's
/// placement of a waking task. A newcomer's credit does not depend on when it comes: one arriving after the busy tenant's
/// fourth slot gets as many as one arriving after its hundredth (with a floor at 0 instead, the first got only four).
/// Two tenants that start together are no exception: the one whose job was admitted second gets the credit, bounded as any
/// newcomer's is.
/// With the credit at two slot-fulls, a small tenant behind a flood gets the next two rounds of freed slots, so its jobs
/// finish well within 2× of running alone (issue 14), while the flood's tenant never waits more than that.
/// Tenants never seen are last served at -1. On a counter that only moves forward.
/// <para>
/// The ledger is about contention, so it starts afresh (<see cref="Reset"/>) whenever the worker has nothing to do: slots a
/// tenant had while nobody else wanted them must not count against it later. Without that, a tenant that had run 10 jobs
/// alone just before a flood came counted as ahead of the flood's tenant, which came back as the newcomer with the credit:
/// with a credit of 8, 4 more of the flood's jobs went first and then the two alternated, instead of the small tenant
/// taking the next 8 slots (measured: tenant B 1.79–2.33× alone, its last result 20th of 210 in every round; with the
/// reset 0.97–1.82×, 15th–16th).
/// </para>
/// </summary>
internal sealed class TenantTurns(int credit = 0)
{
    /// <summary>Tenants remembered at most; the ones served longest ago are forgotten first (their usage was the lowest anyway, or stale).</summary>
    private const int MaxTenants = 4096;

    private readonly Dictionary<string, (long LastServed, long Usage)> _tenants = new(StringComparer.Ordinal);

    /// <summary>How many slots a newcomer may have ahead of the others before it shares equally.</summary>
    public int Credit { get; } = Math.Max(0, credit);

    public long Clock { get; private set; }

    /// <summary>The busiest tenant's usage (the highest usage an admission left a tenant at); 0 before the first admission.</summary>
    public long Level { get; private set; }

    public long LastServed(string tenant) => _tenants.TryGetValue(tenant, out var t) ? t.LastServed : -1;

    /// <summary>
    /// Slots the tenant counts as having had: its own admissions, but no fewer than <see cref="Level"/> − <see cref="Credit"/>;
    /// a tenant never seen (or forgotten) is at <see cref="Level"/> − <see cref="Credit"/>, which may be below 0.
    /// Before the first admission (and after a <see cref="Reset"/>) every tenant is at 0.
    /// </summary>
    public long Usage(string tenant)
    {
        if (_tenants.Count == 0) return 0;
        var floor = Level - Credit;
        return _tenants.TryGetValue(tenant, out var t) ? Math.Max(t.Usage, floor) : floor;
    }

    public void Served(string? tenant)
    {
        var key = tenant ?? "";
        var usage = Usage(key) + 1;
        Level = Math.Max(Level, usage);
        _tenants[key] = (++Clock, usage);
        if (_tenants.Count > MaxTenants)
        {
            var oldest = _tenants.MinBy(kv => kv.Value.LastServed).Key;
            _tenants.Remove(oldest);
        }
    }

    /// <summary>Forgets every tenant's usage (the worker is idle: a new busy period starts level); the clock goes on.</summary>
    public void Reset()
    {
        _tenants.Clear();
        Level = 0;
    }

    /// <summary>An independent copy, for <see cref="WaitingOrder.Order"/> to simulate admissions on.</summary>
    public TenantTurns Copy()
    {
        var copy = new TenantTurns(Credit) { Clock = Clock, Level = Level };
        foreach (var (k, v) in _tenants) copy._tenants[k] = v;
        return copy;
    }
}

/// <summary>
/// Each lane's credit for weighted sharing between lanes (<c>RabbitMq:LaneWeights</c>), smooth weighted round-robin
/// (nginx's): at each admission every lane with waiting jobs gains its weight, the lane with the most credit is served
/// (ties: the higher lane) and pays back the sum of the waiting lanes' weights. Deterministic; over any stretch in which
/// the same lanes wait, each gets slots in proportion to its weight, spread out rather than in runs. A lane with no
/// waiting job keeps its credit (every admission adds and takes away the same amount, so credits always sum to 0 and
/// stay bounded): forgiving the debt of a lane that keeps going idle right after its turn would let a lane with one job
/// at a time starve the others' turns (found by the property test).
/// </summary>
internal sealed class LaneTurns
{
    private readonly Dictionary<int, long> _credit = [];

    /// <summary>A copy of every lane's credit, for <see cref="WaitingOrder.Order"/> to replay on.</summary>
    public Dictionary<int, long> Snapshot() => new(_credit);

    public long Credit(int rank) => _credit.GetValueOrDefault(rank);

    /// <summary>
    /// A slot was given to a job of lane <paramref name="served"/>; <paramref name="waiting"/>: the weight of each lane that
    /// had waiting jobs then (<paramref name="served"/> included). Weights of 0 (strict order) change nothing.
    /// </summary>
    public void Served(int served, IReadOnlyDictionary<int, int> waiting)
    {
        ArgumentNullException.ThrowIfNull(waiting);
        if (waiting.Count == 0 || waiting.Values.Any(w => w <= 0) || !waiting.ContainsKey(served)) return;
        Apply(_credit, served, waiting);
    }

    /// <summary>The lane the round-robin serves next among <paramref name="waiting"/> (not empty).</summary>
    internal static int Pick(Dictionary<int, long> credit, IReadOnlyDictionary<int, int> waiting)
    {
        int? best = null;
        long bestCredit = 0;
        foreach (var (rank, weight) in waiting.OrderBy(kv => kv.Key))
        {
            var c = credit.GetValueOrDefault(rank) + weight;
            if (best is null || c > bestCredit)
            {
                best = rank;
                bestCredit = c;
            }
        }
        return best!.Value;
    }

    /// <summary>One admission of <paramref name="served"/>: every waiting lane gains its weight, the served one pays the total.</summary>
    internal static void Apply(Dictionary<int, long> credit, int served, IReadOnlyDictionary<int, int> waiting)
    {
        long total = 0;
        foreach (var (rank, weight) in waiting)
        {
            credit[rank] = credit.GetValueOrDefault(rank) + weight;
            total += weight;
        }
        credit[served] -= total;
    }
}
