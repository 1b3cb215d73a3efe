using CsCheck;
using LLama.Native;

namespace QueueWorker.Inference.Tests;

[Trait("Category", "Unit")]
public sealed class PromptCacheTests
{
    private static LLamaToken[] Tokens(params int[] ids) => TestSlots.Tokens(ids);

    private static byte[] State(int bytes, byte fill = 1) => Enumerable.Repeat(fill, bytes).ToArray();

    [Fact]
    public void FindLongest_ExactPromptStored_ReturnsThatEntryAndItsWholeLength()
    {
        var cache = new PromptCache(1024);
        var state = State(100, 7);
        cache.Put(Tokens(1, 2, 3, 4), state);

        var match = cache.FindLongest(Tokens(1, 2, 3, 4));

        Assert.NotNull(match);
        Assert.Same(state, match.Value.Entry.State);
        Assert.Equal(4, match.Value.Length);
    }

    [Fact]
    public void FindLongest_SeveralEntries_PicksTheLongestCommonPrefix()
    {
        var cache = new PromptCache(1024);
        cache.Put(Tokens(1, 2, 9), State(10));
        cache.Put(Tokens(1, 2, 3, 8, 8), State(10));
        cache.Put(Tokens(5, 5), State(10));

        var match = cache.FindLongest(Tokens(1, 2, 3, 4));

        Assert.Equal(3, match!.Value.Length);
        Assert.Equal(Tokens(1, 2, 3, 8, 8), match.Value.Entry.Tokens);
        Assert.Null(cache.FindLongest(Tokens(6)));
    }

    [Fact]
    public void Put_OverTheBound_EvictsLeastRecentlyUsedFirst()
    {
        // Each entry: 84 bytes of state + 4 tokens of 4 bytes = 100 bytes.
        var cache = new PromptCache(250);
        cache.Put(Tokens(1, 0, 0, 0), State(84));
        cache.Put(Tokens(2, 0, 0, 0), State(84));
        cache.Touch(cache.FindLongest(Tokens(1, 0, 0, 0))!.Value.Entry);

        cache.Put(Tokens(3, 0, 0, 0), State(84));

        Assert.Equal(200, cache.Bytes);
        Assert.Equal(1, cache.Evictions);
        Assert.Equal([3, 1], cache.Entries.Select(e => (int)e.Tokens[0]));
    }

    [Fact]
    public void Put_LongerThanAnEntryItExtends_ReplacesIt()
    {
        var cache = new PromptCache(1024);
        cache.Put(Tokens(1, 2, 3), State(10));

        Assert.True(cache.Put(Tokens(1, 2, 3, 4, 5), State(20)));

        Assert.Equal(1, cache.Count);
        Assert.Equal(20 + 5 * 4, cache.Bytes);
        Assert.Equal(0, cache.Evictions);
    }

    [Fact]
    public void Put_PrefixOfAnEntry_StoresNothingAndRefreshesTheEntry()
    {
        var cache = new PromptCache(1024);
        cache.Put(Tokens(1, 2, 3, 4), State(10));
        cache.Put(Tokens(9, 9), State(10));

        Assert.False(cache.Put(Tokens(1, 2, 3), State(10)));

        Assert.Equal(2, cache.Count);
        Assert.Equal(1, (int)cache.Entries.First().Tokens[0]);
    }

    [Fact]
    public void Put_EntryLargerThanTheBound_StoresNothing()
    {
        var cache = new PromptCache(100);
        cache.Put(Tokens(1), State(50));

        Assert.False(cache.Put(Tokens(2, 2), State(100)));

        Assert.Equal(1, cache.Count);
        Assert.Equal(54, cache.Bytes);
    }

    [Fact]
    public void Touch_EntryOfAnotherCache_Throws()
    {
        var other = new PromptCache(100);
        other.Put(Tokens(1), State(1));
        var entry = other.Entries.Single();

        Assert.Throws<ArgumentException>(() => new PromptCache(100).Touch(entry));
    }

    /// <summary>
    /// Any sequence of saves and lookups: the bytes held never pass the bound and always equal the entries' sum; a
    /// lookup of what was just stored finds exactly that state over the whole key; no two entries where one is the
    /// other's prefix.
    /// </summary>
    [Fact]
    public void PutAndFind_AnySequence_NeverOverTheBoundAndAHitReturnsExactlyWhatWasStored()
    {
        // Small token alphabet and short keys: prefixes and repeats happen often.
        var key = Gen.Int[0, 3].Array[1, 8];
        var op = Gen.Select(key, Gen.Int[0, 120], Gen.Bool);
        Gen.Select(Gen.Int[40, 400], op.Array[1, 60]).Sample((capacity, ops) =>
        {
            var cache = new PromptCache(capacity);
            foreach (var (ids, size, lookup) in ops)
            {
                var tokens = Tokens(ids);
                if (lookup)
                {
                    if (cache.FindLongest(tokens) is { } found)
                    {
                        Assert.True(found.Length > 0);
                        Assert.Equal(tokens.AsSpan().CommonPrefixLength(found.Entry.Tokens), found.Length);
                    }
                    continue;
                }
                var state = Enumerable.Range(0, size).Select(i => (byte)(i * 31 + ids.Sum())).ToArray();
                var copy = state.ToArray();
                var stored = cache.Put(tokens, state);

                Assert.True(cache.Bytes <= capacity, $"{cache.Bytes} bytes held over a bound of {capacity}");
                Assert.Equal(cache.Entries.Sum(e => e.Bytes), cache.Bytes);
                Assert.Equal(stored, size + ids.Length * 4 <= capacity && cache.Entries.First().State == state);
                if (stored)
                {
                    var hit = cache.FindLongest(tokens)!.Value;
                    Assert.Equal(tokens.Length, hit.Length);
                    Assert.Equal(tokens, hit.Entry.Tokens);
                    Assert.Equal(copy, hit.Entry.State);
                }
                var entries = cache.Entries.ToList();
                foreach (var a in entries)
                {
                    foreach (var b in entries)
                    {
                        if (a != b && a.Tokens.Length <= b.Tokens.Length)
                            Assert.False(a.Tokens.AsSpan().SequenceEqual(b.Tokens.AsSpan(0, a.Tokens.Length)), "an entry is a prefix of another");
                    }
                }
            }
        });
    }
}

[Trait("Category", "Unit")]
public sealed class SlotLoadCacheTests
{
    private static LLamaToken[] Tokens(params int[] ids) => TestSlots.Tokens(ids);

    [Fact]
    public void LoadCache_LoadSucceeds_SlotHoldsTheTokensAndAJobReusesThem()
    {
        var cells = new FakeKvCells();
        var slot = TestSlots.New(1, cells);
        TestSlots.Cache(slot, Tokens(9, 9, 9));
        cells.Calls.Clear();

        Assert.True(slot.LoadCache(Tokens(1, 2, 3, 4, 5), seq => seq.Value == 1));

        Assert.Equal(SlotState.Cached, slot.State);
        Assert.Equal(Tokens(1, 2, 3, 4, 5), slot.Cached.ToArray());
        Assert.Equal(["truncate 1 from 0"], cells.Calls);
        TestSlots.Assign(slot, TestSlots.Job(Tokens(1, 2, 3, 7)), slot, 3);
        Assert.Equal(3, slot.Reused);
        Assert.Equal(Tokens(1, 2, 3), slot.Cached.ToArray());
    }

    [Fact]
    public void LoadCache_LoadRefused_SlotIsEmptyAndItsCellsCleared()
    {
        var cells = new FakeKvCells();
        var slot = TestSlots.New(0, cells);

        Assert.False(slot.LoadCache(Tokens(1, 2, 3), _ => false));

        Assert.Equal(SlotState.Empty, slot.State);
        Assert.Equal(0, slot.Cached.Length);
        Assert.Equal(["truncate 0 from 0"], cells.Calls);
    }

    [Fact]
    public void LoadCache_WhileRunningAJob_Throws()
    {
        var slot = TestSlots.New();
        TestSlots.Assign(slot, TestSlots.Job(Tokens(1, 2)));

        Assert.Throws<InvalidOperationException>(() => slot.LoadCache(Tokens(1, 2, 3), _ => true));
    }
}
