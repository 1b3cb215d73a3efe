namespace QueueWorker.Inference;

/// <summary>
/// The order in which waiting jobs get free slots: lanes first, then priority (higher first), then round-robin between
/// tenants (the tenant served longest ago goes first; within a tenant, oldest job first). Between lanes, strict order
/// (0 = highest lane, always first) unless every waiting job's lane has a weight (<c>RabbitMq:LaneWeights</c>): then
/// the lanes with waiting jobs share slots in proportion to their weights by smooth weighted round-robin (see
/// <see cref="LaneTurns"/>). Pure over its inputs, so the policy is unit-tested without a model.
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
        var simulated = turns.Clock;
        // Each lane's own order: priority groups, tenants round-robin inside each.
        var byLane = Enumerable.Range(0, entries.Count)
            .GroupBy(i => entries[i].LaneRank)
            .OrderBy(g => g.Key)
            .Select(g => (Rank: g.Key, Weight: entries[g.First()].LaneWeight, Jobs: new Queue<int>(WithinLane(entries, g, turns, ref simulated))))
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

    /// <summary>One lane's jobs in order: priority (higher first), then tenants round-robin.</summary>
    private static List<int> WithinLane(IReadOnlyList<Entry> entries, IEnumerable<int> lane, TenantTurns turns, ref long simulated)
    {
        var result = new List<int>();
        foreach (var group in lane.GroupBy(i => -entries[i].Priority).OrderBy(g => g.Key))
        {
            var queues = group.GroupBy(i => entries[i].Tenant ?? "")
                .Select(t => new TenantQueue(turns.LastServed(t.Key), new Queue<int>(t.OrderBy(i => entries[i].Sequence))))
                .ToList();
            while (queues.Count > 0)
            {
                // Served longest ago first; between tenants never served (or served at once), the one whose job came first.
                var pick = queues[0];
                foreach (var q in queues)
                {
                    if (q.LastServed < pick.LastServed
                        || (q.LastServed == pick.LastServed && entries[q.Jobs.Peek()].Sequence < entries[pick.Jobs.Peek()].Sequence))
                        pick = q;
                }
                result.Add(pick.Jobs.Dequeue());
                pick.LastServed = ++simulated;
                if (pick.Jobs.Count == 0) queues.Remove(pick);
            }
        }
        return result;
    }

    private sealed class TenantQueue(long lastServed, Queue<int> jobs)
    {
        public long LastServed { get; set; } = lastServed;
        public Queue<int> Jobs { get; } = jobs;
    }
}

/// <summary>When each tenant was last given a slot, on a counter that only moves forward. Tenants not seen are -1.</summary>
internal sealed class TenantTurns
{
    /// <summary>Tenants remembered at most; the ones served longest ago are forgotten first (they would go first anyway).</summary>
    private const int MaxTenants = 4096;

    private readonly Dictionary<string, long> _lastServed = new(StringComparer.Ordinal);

    public long Clock { get; private set; }

    public long LastServed(string tenant) => _lastServed.TryGetValue(tenant, out var t) ? t : -1;

    public void Served(string? tenant)
    {
        _lastServed[tenant ?? ""] = ++Clock;
        if (_lastServed.Count > MaxTenants)
        {
            var oldest = _lastServed.MinBy(kv => kv.Value).Key;
            _lastServed.Remove(oldest);
        }
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
