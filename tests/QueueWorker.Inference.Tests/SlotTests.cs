using System.Text;
using LLama.Native;
using Microsoft.Extensions.Time.Testing;
using QueueWorker.Contracts;

namespace QueueWorker.Inference.Tests;

/// <summary>Records the KV-cell operations a slot asks for, in place of a llama context.</summary>
internal sealed class FakeKvCells : IKvCells
{
    public List<string> Calls { get; } = [];

    public void Truncate(LLamaSeqId seq, int from) => Calls.Add($"truncate {seq.Value} from {from}");

    public void CopyPrefix(LLamaSeqId source, LLamaSeqId target, int count) => Calls.Add($"copy {source.Value} to {target.Value}: {count}");
}

/// <summary>Slots brought into a given state through their own lifecycle, without a model.</summary>
internal static class TestSlots
{
    public static LLamaToken[] Tokens(params int[] ids) => ids.Select(i => (LLamaToken)i).ToArray();

    public static InferenceJob Job(LLamaToken[] prompt, int maxTokens = 8, IReadOnlyList<string>? stop = null) =>
        new(new GenerationRequest { JobId = "j", Prompt = "p", MaxTokens = maxTokens, Stop = stop ?? [] }, prompt, DateTimeOffset.MaxValue, 0, CancellationToken.None);

    // A sampler chain needs the native library but no model. LLamaSharp hooks its library resolver on the first use
    // of NativeApi, which creating a sampler chain alone does not reach: without this call the load fails.
    static TestSlots() => NativeApi.llama_empty_call();

    public static SafeLLamaSamplerChainHandle Sampler() => SamplerFactory.Create(SamplingParams.Greedy, [], 0);

    public static Slot New(int id = 0, IKvCells? cells = null, bool keepCache = true, TimeProvider? time = null) =>
        new(id, cells ?? new FakeKvCells(), keepCache, time ?? TimeProvider.System);

    public static Slot[] Many(int n, IKvCells? cells = null) => Enumerable.Range(0, n).Select(i => New(i, cells)).ToArray();

    public static void Assign(Slot slot, InferenceJob job, Slot? source = null, int reuse = 0, long step = 0) =>
        slot.Assign(job, source, reuse, Sampler(), step);

    /// <summary>Decodes the rest of the slot's prompt in one batch, as a successful step would.</summary>
    public static void Prefill(Slot slot)
    {
        var batch = new LLamaBatch();
        slot.AddPromptChunk(batch, int.MaxValue);
        slot.Decoded(1);
    }

    /// <summary>An idle slot whose cells hold <paramref name="tokens"/>: it ran a job with that prompt, released at <paramref name="step"/>.</summary>
    public static void Cache(Slot slot, LLamaToken[] tokens, long step = 0)
    {
        Assign(slot, Job(tokens), step: step);
        Prefill(slot);
        slot.Release(step);
    }
}

[Trait("Category", "Unit")]
public sealed class SlotTests
{
    private static LLamaToken[] Tokens(params int[] ids) => TestSlots.Tokens(ids);

    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public void New_IsEmpty()
    {
        var slot = TestSlots.New();

        Assert.Equal(SlotState.Empty, slot.State);
        Assert.False(slot.IsActive);
        Assert.Null(slot.Job);
        Assert.Equal(0, slot.ReservedCells);
    }

    [Fact]
    public void Assign_FromEmpty_PrefillsTheJobAndReservesItsWholeNeed()
    {
        var cells = new FakeKvCells();
        var slot = TestSlots.New(cells: cells);
        var job = TestSlots.Job(Tokens(1, 2, 3), maxTokens: 10);

        TestSlots.Assign(slot, job, step: 7);

        Assert.Equal(SlotState.Prefilling, slot.State);
        Assert.True(slot.IsActive);
        Assert.True(slot.IsPrefilling);
        Assert.Same(job, slot.Job);
        Assert.Equal(13, slot.ReservedCells);
        Assert.Equal(7, slot.LastUsed);
        Assert.Equal(0, slot.Reused);
        Assert.Empty(cells.Calls);
    }

    [Fact]
    public void Assign_OwnCacheAsSource_CutsItToTheCommonPrefix()
    {
        var cells = new FakeKvCells();
        var slot = TestSlots.New(id: 2, cells: cells);
        TestSlots.Cache(slot, Tokens(1, 2, 3, 9, 9));
        cells.Calls.Clear();

        TestSlots.Assign(slot, TestSlots.Job(Tokens(1, 2, 3, 4)), source: slot, reuse: 3);

        Assert.Equal(["truncate 2 from 3"], cells.Calls);
        Assert.Equal(Tokens(1, 2, 3), slot.Cached.ToArray());
        Assert.Equal(3, slot.Reused);
        Assert.Equal(SlotState.Prefilling, slot.State);
    }

    [Fact]
    public void Assign_AnotherSlotAsSource_DropsOwnCacheThenSharesTheSourcesCells()
    {
        var cells = new FakeKvCells();
        var slots = TestSlots.Many(2, cells);
        TestSlots.Cache(slots[0], Tokens(1, 2, 3, 4, 5));
        TestSlots.Cache(slots[1], Tokens(8, 8));
        cells.Calls.Clear();

        TestSlots.Assign(slots[1], TestSlots.Job(Tokens(1, 2, 3, 7)), source: slots[0], reuse: 3);

        Assert.Equal(["truncate 1 from 0", "copy 0 to 1: 3"], cells.Calls);
        Assert.Equal(Tokens(1, 2, 3), slots[1].Cached.ToArray());
        Assert.Equal(Tokens(1, 2, 3, 4, 5), slots[0].Cached.ToArray());
    }

    [Fact]
    public void Assign_PrefixNotInTheSource_Throws()
    {
        var slots = TestSlots.Many(2);
        TestSlots.Cache(slots[0], Tokens(1, 2, 3));

        Assert.Throws<ArgumentException>(() => TestSlots.Assign(slots[1], TestSlots.Job(Tokens(1, 5, 3, 4)), source: slots[0], reuse: 3));
        Assert.Equal(SlotState.Empty, slots[1].State);
    }

    [Fact]
    public void Assign_WholePromptReused_Throws()
    {
        // The last prompt token must be decoded again: its logits give the first sample.
        var slot = TestSlots.New();
        TestSlots.Cache(slot, Tokens(1, 2, 3));

        Assert.Throws<ArgumentOutOfRangeException>(() => TestSlots.Assign(slot, TestSlots.Job(Tokens(1, 2, 3)), source: slot, reuse: 3));
        Assert.Equal(SlotState.Cached, slot.State);
    }

    [Fact]
    public void Assign_WhileRunningAJob_Throws()
    {
        var slot = TestSlots.New();
        TestSlots.Assign(slot, TestSlots.Job(Tokens(1, 2)));
        var job = slot.Job;

        var ex = Assert.Throws<InvalidOperationException>(() => TestSlots.Assign(slot, TestSlots.Job(Tokens(3, 4))));

        Assert.Contains("Prefilling", ex.Message, StringComparison.Ordinal);
        Assert.Same(job, slot.Job);
    }

    [Fact]
    public void PromptChunks_ThenLastChunkDecoded_Generating()
    {
        var slot = TestSlots.New();
        TestSlots.Assign(slot, TestSlots.Job(Tokens(1, 2, 3, 4, 5)));
        var batch = new LLamaBatch();

        Assert.Equal(3, slot.AddPromptChunk(batch, 3));
        Assert.True(slot.InBatch);
        slot.Decoded(10);
        Assert.Equal(SlotState.Prefilling, slot.State);
        Assert.False(slot.HasLogits);

        batch.Clear();
        Assert.Equal(2, slot.AddPromptChunk(batch, 100));
        slot.Decoded(5);

        Assert.Equal(SlotState.Generating, slot.State);
        Assert.True(slot.HasLogits);
        Assert.False(slot.InBatch);
        Assert.Equal(Tokens(1, 2, 3, 4, 5), slot.Cached.ToArray());
        Assert.Equal(15, slot.PromptMs);
    }

    [Fact]
    public void Accept_KeepsTheTokenForTheNextBatchUntilMaxTokens()
    {
        var slot = TestSlots.New();
        TestSlots.Assign(slot, TestSlots.Job(Tokens(1, 2), maxTokens: 2));
        TestSlots.Prefill(slot);

        Assert.Equal("Hi", slot.Accept(42, Utf8("Hi")));
        Assert.Null(slot.LimitReached);
        var batch = new LLamaBatch();
        Assert.True(slot.AddPendingToken(batch));
        slot.Decoded(0);
        Assert.Equal(Tokens(1, 2, 42), slot.Cached.ToArray());

        Assert.Equal(" there", slot.Accept(43, Utf8(" there")));

        Assert.Equal(FinishReasons.Length, slot.LimitReached);
        Assert.False(slot.AddPendingToken(batch));
        Assert.Equal("Hi there", slot.Text);
        Assert.Equal(2, slot.Generated);
    }

    [Fact]
    public void Accept_StopString_HeldBackAndEndsTheJob()
    {
        var slot = TestSlots.New();
        TestSlots.Assign(slot, TestSlots.Job(Tokens(1, 2), stop: ["END"]));
        TestSlots.Prefill(slot);

        Assert.Equal("ab", slot.Accept(5, Utf8("abE")));
        Assert.Null(slot.LimitReached);
        slot.Decoded(0);
        Assert.Equal("", slot.Accept(6, Utf8("ND!")));

        Assert.Equal(FinishReasons.StopSequence, slot.LimitReached);
        Assert.True(slot.StopStringHit);
        Assert.Equal(("", ""), slot.FlushText());
        Assert.Equal("ab", slot.Text);
    }

    [Fact]
    public void FlushText_ReleasesAHeldPossibleStopString()
    {
        var slot = TestSlots.New();
        TestSlots.Assign(slot, TestSlots.Job(Tokens(1, 2), stop: ["END"]));
        TestSlots.Prefill(slot);
        slot.Accept(5, Utf8("abEN"));

        Assert.Equal(("", "EN"), slot.FlushText());
        Assert.Equal("abEN", slot.Result(FinishReasons.Length).Text);
    }

    [Fact]
    public void Release_PrefixReuseOn_KeepsTheCellsAsACacheAndClearsThePerJobState()
    {
        var cells = new FakeKvCells();
        var slot = TestSlots.New(cells: cells);
        var sampler = TestSlots.Sampler();
        slot.Assign(TestSlots.Job(Tokens(1, 2, 3), stop: ["x"]), null, 0, sampler, step: 1);
        TestSlots.Prefill(slot);
        slot.Accept(9, Utf8("a"));
        slot.Decoded(0);
        slot.Accept(10, Utf8("b"));

        slot.Release(step: 5);

        Assert.Equal(SlotState.Cached, slot.State);
        Assert.False(slot.IsActive);
        Assert.Null(slot.Job);
        Assert.Equal("", slot.Text);
        Assert.Equal(0, slot.Generated);
        Assert.Equal(0, slot.Reused);
        Assert.Equal(0, slot.PromptMs);
        Assert.Equal(0, slot.AdmittedAt);
        Assert.False(slot.InBatch);
        Assert.False(slot.HasLogits);
        Assert.False(slot.StopStringHit);
        Assert.True(sampler.IsClosed);
        Assert.Equal(5, slot.LastUsed);
        // The sampled token 10 was never decoded: the cache holds exactly what the cells hold.
        Assert.Equal(Tokens(1, 2, 3, 9), slot.Cached.ToArray());
        Assert.Equal(4, slot.ReservedCells);
        Assert.Empty(cells.Calls);
    }

    [Fact]
    public void Release_PrefixReuseOff_FreesTheCells()
    {
        var cells = new FakeKvCells();
        var slot = TestSlots.New(id: 3, cells: cells, keepCache: false);
        TestSlots.Assign(slot, TestSlots.Job(Tokens(1, 2, 3)));
        TestSlots.Prefill(slot);

        slot.Release(step: 1);

        Assert.Equal(SlotState.Empty, slot.State);
        Assert.True(slot.Cached.IsEmpty);
        Assert.Equal(["truncate 3 from 0"], cells.Calls);
    }

    [Fact]
    public void Release_BeforeAnyCellWasDecoded_Empty()
    {
        var slot = TestSlots.New();
        TestSlots.Assign(slot, TestSlots.Job(Tokens(1, 2, 3)));

        slot.Release(step: 1);

        Assert.Equal(SlotState.Empty, slot.State);
    }

    [Fact]
    public void Release_ThenAssign_NewJobStartsClean()
    {
        var slot = TestSlots.New();
        TestSlots.Assign(slot, TestSlots.Job(Tokens(1, 2), stop: ["E"]));
        TestSlots.Prefill(slot);
        slot.Accept(5, Utf8("abE"));
        slot.Release(step: 1);

        TestSlots.Assign(slot, TestSlots.Job(Tokens(7, 8)));
        TestSlots.Prefill(slot);

        Assert.Equal("xy", slot.Accept(6, Utf8("xy")));
        Assert.False(slot.StopStringHit);
        Assert.Equal(1, slot.Generated);
    }

    [Fact]
    public async Task Fail_CompletesTheJobsTaskWithTheErrorAndEmptiesTheSlot()
    {
        var cells = new FakeKvCells();
        var slot = TestSlots.New(id: 1, cells: cells);
        var job = TestSlots.Job(Tokens(1, 2, 3));
        var sampler = TestSlots.Sampler();
        slot.Assign(job, null, 0, sampler, step: 0);
        // A batch placed and never decoded: the sequence may hold part of it although the slot's cache is empty.
        slot.AddPromptChunk(new LLamaBatch(), 3);
        var error = new InferenceException(ErrorCodes.EngineError, "decode failed");

        Assert.True(slot.Fail(error));

        Assert.Same(error, await Assert.ThrowsAsync<InferenceException>(() => job.Completion.Task));
        Assert.Equal(SlotState.Empty, slot.State);
        Assert.Null(slot.Job);
        Assert.False(slot.InBatch);
        Assert.True(sampler.IsClosed);
        Assert.Equal(["truncate 1 from 0"], cells.Calls);
    }

    [Fact]
    public void Fail_JobAlreadyCancelled_FalseAndSlotStillEmptied()
    {
        var slot = TestSlots.New();
        var job = TestSlots.Job(Tokens(1, 2, 3));
        TestSlots.Assign(slot, job);
        job.OnCancelled();

        Assert.False(slot.Fail(new InvalidOperationException("late")));

        Assert.True(job.Completion.Task.IsCanceled);
        Assert.Equal(SlotState.Empty, slot.State);
    }

    [Fact]
    public void Evict_CachedSlot_FreesItsCells()
    {
        var cells = new FakeKvCells();
        var slot = TestSlots.New(id: 2, cells: cells);
        TestSlots.Cache(slot, Tokens(1, 2, 3));
        cells.Calls.Clear();

        slot.Evict();

        Assert.Equal(SlotState.Empty, slot.State);
        Assert.Equal(0, slot.ReservedCells);
        Assert.Equal(["truncate 2 from 0"], cells.Calls);
    }

    [Fact]
    public void IllegalTransitions_Throw()
    {
        var idle = TestSlots.New();
        Assert.Throws<InvalidOperationException>(() => idle.Release(step: 1));
        Assert.Throws<InvalidOperationException>(() => idle.Fail(new InvalidOperationException()));
        Assert.Throws<InvalidOperationException>(idle.Evict);
        Assert.Throws<InvalidOperationException>(() => idle.AddPromptChunk(new LLamaBatch(), 4));
        Assert.Throws<InvalidOperationException>(() => idle.Accept(1, Utf8("a")));
        Assert.Throws<InvalidOperationException>(() => idle.FlushText());

        var prefilling = TestSlots.New();
        TestSlots.Assign(prefilling, TestSlots.Job(Tokens(1, 2)));
        Assert.Throws<InvalidOperationException>(prefilling.Evict);
        Assert.Throws<InvalidOperationException>(() => prefilling.Accept(1, Utf8("a")));

        var generating = TestSlots.New();
        TestSlots.Assign(generating, TestSlots.Job(Tokens(1, 2)));
        TestSlots.Prefill(generating);
        Assert.Throws<InvalidOperationException>(() => generating.AddPromptChunk(new LLamaBatch(), 4));
        generating.Accept(3, Utf8("a"));
        // The accepted token waits to be decoded: a second one before that is a scheduler bug.
        Assert.Throws<InvalidOperationException>(() => generating.Accept(4, Utf8("b")));
    }

    [Fact]
    public void Result_CarriesTheJobsCountsAndTimings()
    {
        var time = new FakeTimeProvider();
        var slot = TestSlots.New(time: time);
        var cached = TestSlots.New(id: 1, time: time);
        TestSlots.Cache(cached, Tokens(1, 2, 3));
        var job = new InferenceJob(new GenerationRequest { JobId = "j", Prompt = "p", MaxTokens = 4 }, Tokens(1, 2, 3, 4), DateTimeOffset.MaxValue,
            time.GetTimestamp(), CancellationToken.None);
        time.Advance(TimeSpan.FromMilliseconds(30));
        TestSlots.Assign(slot, job, source: cached, reuse: 3);
        TestSlots.Prefill(slot);
        slot.Accept(7, Utf8("x"));

        var result = slot.Result(FinishReasons.Stop);

        Assert.Equal("x", result.Text);
        Assert.Equal(FinishReasons.Stop, result.FinishReason);
        Assert.Equal(4, result.PromptTokens);
        Assert.Equal(3, result.CachedTokens);
        Assert.Equal(1, result.CompletionTokens);
        Assert.Equal(30, result.WaitMs);
        Assert.Equal(1, result.PromptMs);
        Assert.Equal(0, result.FirstTokenMs);
    }
}
