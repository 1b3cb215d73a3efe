using System.Text;

namespace QueueWorker.Inference.Tests;

[Trait("Category", "Unit")]
public sealed class StopStringMatcherTests
{
    private static (string Released, StopStringMatcher Matcher) Feed(string[] stops, params string[] pieces)
    {
        var m = new StopStringMatcher(stops);
        var sb = new StringBuilder();
        foreach (var p in pieces) sb.Append(m.Append(p));
        return (sb.ToString(), m);
    }

    [Fact]
    public void Append_StopSpansPieces_NeverReleased()
    {
        var (released, m) = Feed(["\nUser:"], "Hello", " there\n", "Us", "er: more");

        Assert.Equal("Hello there", released);
        Assert.True(m.Stopped);
        Assert.Equal("\nUser:", m.MatchedStop);
    }

    [Fact]
    public void Append_PartialMatchThenDiverges_HeldTextReleased()
    {
        var m = new StopStringMatcher(["STOP"]);

        Assert.Equal("a", m.Append("aST"));
        Assert.Equal("STart", m.Append("art"));
        Assert.False(m.Stopped);
    }

    [Fact]
    public void Flush_EndsWithStopPrefix_ReleasesIt()
    {
        var (released, m) = Feed(["END"], "the E");

        Assert.Equal("the ", released);
        Assert.Equal("E", m.Flush());
    }

    [Fact]
    public void Append_SeveralStops_EarliestWins()
    {
        var (released, m) = Feed(["world", "lo w"], "hello world");

        Assert.Equal("hel", released);
        Assert.Equal("lo w", m.MatchedStop);
    }

    [Fact]
    public void Append_AfterStop_Ignored()
    {
        var (_, m) = Feed(["x"], "ax");

        Assert.Equal("", m.Append("more"));
        Assert.Equal("", m.Flush());
    }

    [Fact]
    public void Append_NoStops_PassThrough()
    {
        var m = new StopStringMatcher([]);

        Assert.Equal("abc", m.Append("abc"));
        Assert.Equal("", m.Flush());
    }

    [Fact]
    public void Append_StopIsWholePiece_TextBeforeKept()
    {
        var (released, m) = Feed(["."], "Lily", ".", " She");

        Assert.Equal("Lily", released);
        Assert.True(m.Stopped);
    }
}

[Trait("Category", "Unit")]
public sealed class Utf8TextStreamerTests
{
    [Fact]
    public void Append_CharacterSplitAcrossTokens_EmittedWhenComplete()
    {
        var s = new Utf8TextStreamer();
        var bytes = Encoding.UTF8.GetBytes("é🙂");

        Assert.Equal("", s.Append(bytes[..1]));
        Assert.Equal("é", s.Append(bytes[1..3]));
        Assert.Equal("", s.Append(bytes[3..5]));
        Assert.Equal("🙂", s.Append(bytes[5..]));
        Assert.Equal("", s.Flush());
    }

    [Fact]
    public void Flush_IncompleteCharacter_ReplacementCharacter()
    {
        var s = new Utf8TextStreamer();

        Assert.Equal("a", s.Append([(byte)'a', 0xE6, 0x97]));
        Assert.Equal("\uFFFD", s.Flush());
    }

    [Fact]
    public void Append_LongPiece_AllText()
    {
        var s = new Utf8TextStreamer();
        var text = string.Concat(Enumerable.Repeat("日本語 text ", 50));

        Assert.Equal(text, s.Append(Encoding.UTF8.GetBytes(text)));
    }
}
