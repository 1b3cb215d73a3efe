using CsCheck;

namespace QueueWorker.Inference.Tests;

[Trait("Category", "Unit")]
public sealed class WaitingOrderTests
{
    private static WaitingOrder.Entry E(long seq, int lane = 0, int priority = 0, string? tenant = null) => new(lane, priority, tenant, seq);

    private static long[] Sequences(IReadOnlyList<WaitingOrder.Entry> entries, TenantTurns? turns = null) =>
        [.. WaitingOrder.Order(entries, turns ?? new TenantTurns()).Select(i => entries[i].Sequence)];

    [Fact]
    public void Order_OneTenantOneLane_ArrivalOrder()
    {
        WaitingOrder.Entry[] entries = [E(3), E(1), E(2)];

        Assert.Equal([1L, 2, 3], Sequences(entries));
    }

    [Fact]
    public void Order_HigherLaneArrivedLater_GoesFirst()
    {
        WaitingOrder.Entry[] entries = [E(0, lane: 1), E(1, lane: 1), E(2, lane: 0), E(3, lane: 1), E(4, lane: 0)];

        Assert.Equal([2L, 4, 0, 1, 3], Sequences(entries));
    }

    [Fact]
    public void Order_PriorityWithinLane_HigherFirstButNeverAboveAHigherLane()
    {
        WaitingOrder.Entry[] entries = [E(0, lane: 1, priority: 100), E(1, lane: 0, priority: -5), E(2, lane: 0, priority: 7), E(3, lane: 1)];

        Assert.Equal([2L, 1, 0, 3], Sequences(entries));
    }

    [Fact]
    public void Order_TwoTenantsOneFloodsFirst_RoundRobin()
    {
        // Tenant a queued 5 jobs before b's 2: b is not left behind all of a's.
        WaitingOrder.Entry[] entries = [E(0, tenant: "a"), E(1, tenant: "a"), E(2, tenant: "a"), E(3, tenant: "a"), E(4, tenant: "a"), E(5, tenant: "b"), E(6, tenant: "b")];

        Assert.Equal([0L, 5, 1, 6, 2, 3, 4], Sequences(entries));
    }

    [Fact]
    public void Order_TenantServedJustNow_OtherTenantGoesFirst()
    {
        var turns = new TenantTurns();
        turns.Served("a");
        WaitingOrder.Entry[] entries = [E(10, tenant: "a"), E(11, tenant: "b")];

        Assert.Equal([11L, 10], Sequences(entries, turns));
    }

    [Fact]
    public void Order_DoesNotChangeTurns()
    {
        var turns = new TenantTurns();
        WaitingOrder.Order([E(0, tenant: "a"), E(1, tenant: "b")], turns);

        Assert.Equal(0, turns.Clock);
        Assert.Equal(-1, turns.LastServed("a"));
    }

    [Fact]
    public void Order_AnyWaitingList_IsAPermutationThatKeepsLanesPrioritiesAndEachTenantsArrivalOrder()
    {
        var entry = Gen.Select(Gen.Int[0, 2], Gen.Int[-2, 2], Gen.Int[0, 3].Select(t => t == 0 ? null : ((char)('a' + t - 1)).ToString()));
        Gen.Select(entry.Array[0, 30], Gen.Int[0, 3]).Sample((raw, served) =>
        {
            var entries = raw.Select((e, i) => new WaitingOrder.Entry(e.Item1, e.Item2, e.Item3, i)).ToArray();
            var turns = new TenantTurns();
            for (var i = 0; i < served; i++) turns.Served("b");
            var order = WaitingOrder.Order(entries, turns);

            Assert.Equal(Enumerable.Range(0, entries.Length), order.Order());
            var ordered = order.Select(i => entries[i]).ToList();
            for (var i = 1; i < ordered.Count; i++)
            {
                var (prev, cur) = (ordered[i - 1], ordered[i]);
                Assert.True((prev.LaneRank, -prev.Priority).CompareTo((cur.LaneRank, -cur.Priority)) <= 0, "lanes, then priorities, in order");
            }
            foreach (var tenant in ordered.GroupBy(e => (e.LaneRank, e.Priority, e.Tenant)))
                Assert.Equal(tenant.Select(e => e.Sequence).Order(), tenant.Select(e => e.Sequence));
        });
    }
}
