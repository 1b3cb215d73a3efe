using LLama.Native;

namespace QueueWorker.Inference.Tests;

[Trait("Category", "Unit")]
public sealed class AdmissionPlannerTests
{
    private static LLamaToken[] Tokens(params int[] ids) => TestSlots.Tokens(ids);

    private static InferenceJob Job(LLamaToken[] prompt, int maxTokens) => TestSlots.Job(prompt, maxTokens);

    private static Slot[] Slots(int n) => TestSlots.Many(n);

    [Fact]
    public void Plan_EmptySlots_AdmitsWithoutReuse()
    {
        var plan = AdmissionPlanner.Plan(Slots(2), Tokens(1, 2, 3), 13, 100, prefixReuse: true);

        Assert.Equal(AdmissionDecision.Admit, plan.Decision);
        Assert.Null(plan.Source);
        Assert.Equal(0, plan.Reuse);
    }

    [Fact]
    public void Plan_IdleSlotHoldsPrefix_TakesThatSlotOver()
    {
        var slots = Slots(3);
        TestSlots.Cache(slots[2], Tokens(1, 2, 3, 9, 9));

        var plan = AdmissionPlanner.Plan(slots, Tokens(1, 2, 3, 4), 10, 100, prefixReuse: true);

        Assert.Same(slots[2], plan.Target);
        Assert.Same(slots[2], plan.Source);
        Assert.Equal(3, plan.Reuse);
    }

    [Fact]
    public void Plan_SamePromptCached_ReusesAllButLastToken()
    {
        var slots = Slots(1);
        TestSlots.Cache(slots[0], Tokens(1, 2, 3, 4, 5, 6));

        var plan = AdmissionPlanner.Plan(slots, Tokens(1, 2, 3, 4), 10, 100, prefixReuse: true);

        Assert.Equal(3, plan.Reuse);
    }

    [Fact]
    public void Plan_ActiveSlotHoldsPrefix_CopiesIntoAFreeSlot()
    {
        var slots = Slots(2);
        // Running: prompt 1 2 3 4 decoded, then the sampled 7.
        TestSlots.Assign(slots[0], Job(Tokens(1, 2, 3, 4), 4));
        TestSlots.Prefill(slots[0]);
        slots[0].Accept(7, "a"u8);
        slots[0].Decoded(0);

        var plan = AdmissionPlanner.Plan(slots, Tokens(1, 2, 3, 8), 10, 100, prefixReuse: true);

        Assert.Same(slots[1], plan.Target);
        Assert.Same(slots[0], plan.Source);
        Assert.Equal(3, plan.Reuse);
    }

    [Fact]
    public void Plan_PrefixReuseOff_NoSource()
    {
        var slots = Slots(1);
        TestSlots.Cache(slots[0], Tokens(1, 2, 3));

        var plan = AdmissionPlanner.Plan(slots, Tokens(1, 2, 3, 4), 10, 100, prefixReuse: false);

        Assert.Null(plan.Source);
        Assert.Equal(0, plan.Reuse);
    }

    [Fact]
    public void Plan_AllSlotsBusy_NoSlot()
    {
        var slots = Slots(1);
        TestSlots.Assign(slots[0], Job(Tokens(1), 5));

        Assert.Equal(AdmissionDecision.NoSlot, AdmissionPlanner.Plan(slots, Tokens(1, 2), 5, 100, true).Decision);
    }

    [Fact]
    public void Plan_RunningJobsReserveTooMuch_NoCells()
    {
        var slots = Slots(2);
        TestSlots.Assign(slots[0], Job(Tokens(1, 2), 60)); // reserves 62 of 100

        Assert.Equal(AdmissionDecision.NoCells, AdmissionPlanner.Plan(slots, Tokens(5, 6), 40, 100, true).Decision);
        Assert.Equal(AdmissionDecision.Admit, AdmissionPlanner.Plan(slots, Tokens(5, 6), 38, 100, true).Decision);
    }

    [Fact]
    public void Plan_IdleCachesInTheWay_EvictsLeastRecentlyUsedFirst()
    {
        var slots = Slots(3);
        TestSlots.Cache(slots[0], Enumerable.Range(100, 40).Select(i => (LLamaToken)i).ToArray(), step: 5);
        TestSlots.Cache(slots[1], Enumerable.Range(200, 40).Select(i => (LLamaToken)i).ToArray(), step: 2);
        TestSlots.Cache(slots[2], Enumerable.Range(300, 40).Select(i => (LLamaToken)i).ToArray(), step: 9);

        // Target is the LRU slot 1 (its cache is replaced); 40 + 40 + 30 > 100, so slot 0 (older than 2) goes.
        var plan = AdmissionPlanner.Plan(slots, Tokens(1, 2), 30, 100, true);

        Assert.Same(slots[1], plan.Target);
        Assert.Equal([slots[0]], plan.Evict);
    }

    [Fact]
    public void Plan_AnotherSlotIsPrefillingALongerPrefix_Defers()
    {
        var shared = Enumerable.Range(1, 40).Select(i => (LLamaToken)i).ToArray();
        var slots = Slots(2);
        TestSlots.Assign(slots[0], Job([.. shared, 99], 8));

        var plan = AdmissionPlanner.Plan(slots, [.. shared, 77], 50, 1000, true);

        Assert.Equal(AdmissionDecision.Defer, plan.Decision);
        Assert.Equal(40, plan.Reuse);
    }

    [Fact]
    public void Plan_PrefillingPrefixTooShortToWaitFor_AdmitsNow()
    {
        var slots = Slots(2);
        TestSlots.Assign(slots[0], Job(Tokens(1, 2, 3, 4, 5), 8));

        Assert.Equal(AdmissionDecision.Admit, AdmissionPlanner.Plan(slots, Tokens(1, 2, 3, 9), 10, 1000, true).Decision);
    }
    /// <summary>Two regular slots, then one priority slot, every regular slot running a job.</summary>
    private static Slot[] RegularBusyPriorityFree()
    {
        var slots = new[] { TestSlots.New(0), TestSlots.New(1), new Slot(2, new FakeKvCells(), true, TimeProvider.System, isPriority: true) };
        TestSlots.Assign(slots[0], Job(Tokens(5, 6), 4));
        TestSlots.Assign(slots[1], Job(Tokens(7, 8), 4));
        return slots;
    }

    [Fact]
    public void Plan_OnlyPrioritySlotFree_NotAllowed_NoSlot()
    {
        var plan = AdmissionPlanner.Plan(RegularBusyPriorityFree(), Tokens(1, 2, 3), 10, 100, prefixReuse: true);

        Assert.Equal(AdmissionDecision.NoSlot, plan.Decision);
    }

    [Fact]
    public void Plan_OnlyPrioritySlotFree_Allowed_AdmitsThere()
    {
        var slots = RegularBusyPriorityFree();

        var plan = AdmissionPlanner.Plan(slots, Tokens(1, 2, 3), 10, 100, prefixReuse: true, mayTakePriority: true);

        Assert.Equal(AdmissionDecision.Admit, plan.Decision);
        Assert.Same(slots[2], plan.Target);
    }

    [Fact]
    public void Plan_PrioritySlotCachesThePrefix_NotAllowed_CopiesItIntoARegularSlot()
    {
        var slots = new[] { TestSlots.New(0), new Slot(1, new FakeKvCells(), true, TimeProvider.System, isPriority: true) };
        TestSlots.Cache(slots[1], Tokens(1, 2, 3, 9));

        var plan = AdmissionPlanner.Plan(slots, Tokens(1, 2, 3, 4), 10, 100, prefixReuse: true);

        Assert.Same(slots[0], plan.Target);
        Assert.Same(slots[1], plan.Source);
        Assert.Equal(3, plan.Reuse);
    }

    // A split KV cache (Inference:KvUnified = false): each slot owns its cells.

    [Fact]
    public void Plan_Split_FreeSlotHoldsPrefix_TakesItOverWithoutEvictions()
    {
        var slots = Slots(3);
        TestSlots.Cache(slots[1], Tokens(9, 9, 9));
        TestSlots.Cache(slots[2], Tokens(1, 2, 3, 9));

        var plan = AdmissionPlanner.Plan(slots, Tokens(1, 2, 3, 4), 10, 100, prefixReuse: true, cellsPerSlot: 50);

        Assert.Equal(AdmissionDecision.Admit, plan.Decision);
        Assert.Same(slots[2], plan.Target);
        Assert.Same(slots[2], plan.Source);
        Assert.Equal(3, plan.Reuse);
        Assert.Empty(plan.Evict!);
    }

    [Fact]
    public void Plan_Split_ActiveSlotHoldsPrefix_NoCopyAcrossStreams()
    {
        var slots = Slots(2);
        TestSlots.Assign(slots[0], Job(Tokens(1, 2, 3, 4), 4));
        TestSlots.Prefill(slots[0]);

        var plan = AdmissionPlanner.Plan(slots, Tokens(1, 2, 3, 8), 10, 100, prefixReuse: true, cellsPerSlot: 50);

        Assert.Equal(AdmissionDecision.Admit, plan.Decision);
        Assert.Same(slots[1], plan.Target);
        Assert.Null(plan.Source);
        Assert.Equal(0, plan.Reuse);
    }

    [Fact]
    public void Plan_Split_JobLargerThanOneSlotsCells_NoCellsEvenWithTheContextFree()
    {
        var plan = AdmissionPlanner.Plan(Slots(4), Tokens(1, 2, 3), 60, 200, prefixReuse: true, cellsPerSlot: 50);

        Assert.Equal(AdmissionDecision.NoCells, plan.Decision);
    }
}
