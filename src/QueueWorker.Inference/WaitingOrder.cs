namespace QueueWorker.Inference;

/// <summary>
/// The order in which waiting jobs get free slots: lane rank first (0 = highest lane, strict), then priority (higher
/// first), then round-robin between tenants (the tenant served longest ago goes first; within a tenant, oldest job
/// first). Pure over its inputs, so the policy is unit-tested without a model.
/// </summary>
internal static class WaitingOrder
{
    /// <summary>What the order looks at of one waiting job. <paramref name="Sequence"/>: arrival order.</summary>
    public readonly record struct Entry(int LaneRank, int Priority, string? Tenant, long Sequence);

    /// <summary>
    /// Indices into <paramref name="entries"/> in admission order, as if each job were admitted in turn.
    /// <paramref name="turns"/> says when each tenant was last given a slot (it is not changed).
    /// </summary>
    public static int[] Order(IReadOnlyList<Entry> entries, TenantTurns turns)
    {
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(turns);
        var result = new List<int>(entries.Count);
        var simulated = turns.Clock;
        var groups = Enumerable.Range(0, entries.Count)
            .GroupBy(i => (entries[i].LaneRank, -entries[i].Priority))
            .OrderBy(g => g.Key.LaneRank).ThenBy(g => g.Key.Item2);
        foreach (var group in groups)
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
        return [.. result];
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
