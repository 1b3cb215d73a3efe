using System.Text;
using QueueWorker.Cli.Batch;
using QueueWorker.Cli.Infrastructure;

namespace QueueWorker.Cli.Tests;

[Trait("Category", "Unit")]
public sealed class ResumeStateTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private const string Done1 = """{"id":"batch_req_1","custom_id":"a","response":{"status_code":200,"request_id":"a","body":{}},"error":null}""";
    private const string Done2 = """{"id":"batch_req_2","custom_id":"b","response":null,"error":{"code":"invalid_field","message":"line 2: ...","line":2}}""";
    private const string NoId = """{"id":"batch_req_3","custom_id":null,"response":null,"error":{"code":"invalid_json","message":"line 7: ...","line":7}}""";

    [Fact]
    public async Task LoadAndRepair_NoFile_NothingDone()
    {
        var state = await ResumeState.LoadAndRepairAsync(_dir.File("missing.jsonl"), CancellationToken.None);

        Assert.Equal(0, state.Count);
        Assert.False(state.IsDone("a", 1));
    }

    [Fact]
    public async Task LoadAndRepair_CompleteLines_DoneByCustomIdAndByLineNumber()
    {
        var path = _dir.File("out.jsonl");
        await File.WriteAllTextAsync(path, Done1 + "\n" + Done2 + "\n" + NoId + "\n");

        var state = await ResumeState.LoadAndRepairAsync(path, CancellationToken.None);

        Assert.Equal(3, state.Count);
        Assert.Equal(0, state.TruncatedBytes);
        Assert.True(state.IsDone("a", 100));
        Assert.True(state.IsDone("b", 100));
        Assert.False(state.IsDone("c", 100));
        // An error line without custom_id is keyed by its input line.
        Assert.True(state.IsDone(null, 7));
        Assert.False(state.IsDone(null, 8));
    }

    [Fact]
    public async Task LoadAndRepair_PartialTrailingLine_TruncatedToLastCompleteLine()
    {
        var path = _dir.File("out.jsonl");
        var intact = Done1 + "\n" + Done2 + "\n";
        await File.WriteAllTextAsync(path, intact + """{"id":"batch_req_9","custom_id":"c","resp""");

        var state = await ResumeState.LoadAndRepairAsync(path, CancellationToken.None);

        Assert.Equal(2, state.Count);
        Assert.False(state.IsDone("c", 3));
        Assert.Equal(intact, await File.ReadAllTextAsync(path));
        Assert.Equal(Encoding.UTF8.GetByteCount("""{"id":"batch_req_9","custom_id":"c","resp"""), state.TruncatedBytes);
    }

    [Fact]
    public async Task LoadAndRepair_CompleteLastLineWithoutNewline_TruncatedAsPartial()
    {
        // A line is written with its newline in one write; without it, the write was cut short.
        var path = _dir.File("out.jsonl");
        await File.WriteAllTextAsync(path, Done1 + "\n" + Done2);

        var state = await ResumeState.LoadAndRepairAsync(path, CancellationToken.None);

        Assert.False(state.IsDone("b", 2));
        Assert.Equal(Done1 + "\n", await File.ReadAllTextAsync(path));
    }

    [Fact]
    public async Task LoadAndRepair_GarbageAfterLastValidLine_Truncated()
    {
        var path = _dir.File("out.jsonl");
        await File.WriteAllTextAsync(path, Done1 + "\n" + "\0\0\0\0\n" + "{\"half\n");

        var state = await ResumeState.LoadAndRepairAsync(path, CancellationToken.None);

        Assert.Equal(1, state.Count);
        Assert.Equal(Done1 + "\n", await File.ReadAllTextAsync(path));
    }

    [Fact]
    public async Task LoadAndRepair_InvalidLineBeforeValidOnes_RefusesWithLineNumber()
    {
        var path = _dir.File("out.jsonl");
        var content = Done1 + "\nnot json\n" + Done2 + "\n";
        await File.WriteAllTextAsync(path, content);

        var ex = await Assert.ThrowsAsync<CliException>(() => ResumeState.LoadAndRepairAsync(path, CancellationToken.None));

        Assert.Contains("line 2 is not a valid output line", ex.Message);
        Assert.Equal(content, await File.ReadAllTextAsync(path));
    }
}

[Trait("Category", "Unit")]
public sealed class Utf8LineReaderTests
{
    private static async Task<List<RawLine>> ReadAll(string text, int maxLine = 1024)
    {
        var reader = new Utf8LineReader(new MemoryStream(Encoding.UTF8.GetBytes(text)), maxLine);
        var lines = new List<RawLine>();
        while (await reader.ReadLineAsync(CancellationToken.None) is { } line)
            lines.Add(line with { Bytes = line.Bytes.ToArray() });
        return lines;
    }

    [Fact]
    public async Task ReadLine_MixedEndings_LinesOffsetsAndTermination()
    {
        var lines = await ReadAll("ab\r\ncd\n\nef");

        Assert.Equal(["ab", "cd", "", "ef"], lines.Select(l => Encoding.UTF8.GetString(l.Bytes.Span)));
        Assert.Equal([0L, 4L, 7L, 8L], lines.Select(l => l.Offset));
        Assert.Equal([true, true, true, false], lines.Select(l => l.Terminated));
    }

    [Fact]
    public async Task ReadLine_LineLongerThanLimit_SkippedAndFlagged()
    {
        var lines = await ReadAll("short\n" + new string('x', 300_000) + "\nnext\n", maxLine: 1000);

        Assert.Equal(3, lines.Count);
        Assert.True(lines[1].TooLong);
        Assert.Equal(300_000, lines[1].Length);
        Assert.Equal("next", Encoding.UTF8.GetString(lines[2].Bytes.Span));
        Assert.Equal(6 + 300_001, lines[2].Offset);
    }

    [Fact]
    public async Task ReadLine_LinesAcrossBufferBoundaries_Intact()
    {
        var expected = Enumerable.Range(0, 5000).Select(i => new string((char)('a' + i % 26), i % 97)).ToList();

        var lines = await ReadAll(string.Join("\n", expected) + "\n", maxLine: 1000);

        Assert.Equal(expected, lines.Select(l => Encoding.UTF8.GetString(l.Bytes.Span)));
    }
}
