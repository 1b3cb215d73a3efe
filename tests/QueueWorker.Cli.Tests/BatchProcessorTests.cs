using System.Text.Json;
using QueueWorker.Cli.Batch;
using QueueWorker.Cli.Running;
using QueueWorker.Contracts;

namespace QueueWorker.Cli.Tests;

[Trait("Category", "Unit")]
public sealed class BatchProcessorTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string Completion(string id, string prompt = "Once upon a time") =>
        $$$"""{"custom_id":"{{{id}}}","method":"POST","url":"/v1/completions","body":{"prompt":"{{{prompt}}}","max_tokens":8}}""";

    private async Task<(BatchProcessor Processor, BatchOutcome Outcome)> Run(IJobRunner runner, string input, string output, int maxInFlight = 4, CancellationToken cancellationToken = default)
    {
        var processor = new BatchProcessor(runner, new BatchOptions(input, output, maxInFlight, JobLimits.Default, 1 << 20), TimeProvider.System);
        var outcome = await processor.RunAsync(cancellationToken);
        return (processor, outcome);
    }

    private static List<JsonElement> ReadOutput(string path) =>
        File.ReadAllLines(path).Select(l => JsonDocument.Parse(l).RootElement).ToList();

    [Fact]
    public async Task Run_DuplicateCustomId_ErrorLineForTheSecondAndOneLinePerCustomId()
    {
        var input = _dir.File("in.jsonl");
        await File.WriteAllLinesAsync(input, [Completion("a"), Completion("b"), Completion("a", "again")]);
        var runner = new EchoRunner();

        var (processor, outcome) = await Run(runner, input, _dir.File("out.jsonl"));

        Assert.Equal(BatchOutcome.Finished, outcome);
        var lines = ReadOutput(_dir.File("out.jsonl"));
        Assert.Equal(3, lines.Count);
        var duplicate = Assert.Single(lines, l => l.GetProperty("error").ValueKind == JsonValueKind.Object);
        Assert.Equal(JsonValueKind.Null, duplicate.GetProperty("custom_id").ValueKind);
        Assert.Equal("duplicate_custom_id", duplicate.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("line 3: custom_id \"a\" is used by an earlier line; custom_id must be unique in the input.", duplicate.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal(["a", "b"], runner.Ran.Order());
        Assert.Equal(1, processor.Stats.InvalidLines);
        Assert.Equal(2, processor.Stats.Completed);
    }

    [Fact]
    public async Task Run_ExistingOutput_SkipsDoneCustomIdsAndRunsTheRest()
    {
        var input = _dir.File("in.jsonl");
        var output = _dir.File("out.jsonl");
        await File.WriteAllLinesAsync(input, Enumerable.Range(1, 10).Select(i => Completion($"r{i}")).Append("{broken").Append(""));
        await Run(new EchoRunner(), input, output);
        var first = File.ReadAllLines(output);
        Assert.Equal(11, first.Length);
        // Keep 6 lines, the last of them cut in half as a crash would leave it.
        var kept = first.Take(5).ToList();
        await File.WriteAllTextAsync(output, string.Join("\n", kept) + "\n" + first[5][..20]);
        var keptIds = kept.Select(l => JsonDocument.Parse(l).RootElement.GetProperty("custom_id")).Where(c => c.ValueKind == JsonValueKind.String).Select(c => c.GetString()!).ToHashSet();

        var runner = new EchoRunner();
        var (processor, outcome) = await Run(runner, input, output);

        Assert.Equal(BatchOutcome.Finished, outcome);
        Assert.Equal(5, processor.Stats.Skipped);
        Assert.Empty(runner.Ran.Intersect(keptIds));
        var lines = ReadOutput(output);
        Assert.Equal(11, lines.Count);
        var ids = lines.Select(l => l.GetProperty("custom_id")).Where(c => c.ValueKind == JsonValueKind.String).Select(c => c.GetString()).ToList();
        Assert.Equal(10, ids.Distinct().Count());
        Assert.Equal(10, ids.Count);
        Assert.Single(lines, l => l.GetProperty("custom_id").ValueKind == JsonValueKind.Null);
    }

    [Fact]
    public async Task Run_EverythingDone_NothingRunsNothingWritten()
    {
        var input = _dir.File("in.jsonl");
        var output = _dir.File("out.jsonl");
        await File.WriteAllLinesAsync(input, [Completion("a"), "not json"]);
        await Run(new EchoRunner(), input, output);
        var before = await File.ReadAllTextAsync(output);

        var runner = new EchoRunner();
        var (processor, _) = await Run(runner, input, output);

        Assert.Empty(runner.Ran);
        Assert.Equal(2, processor.Stats.Skipped);
        Assert.Equal(before, await File.ReadAllTextAsync(output));
    }

    [Fact]
    public async Task Run_ManyLines_InFlightNeverAboveTheBound()
    {
        var input = _dir.File("in.jsonl");
        await File.WriteAllLinesAsync(input, Enumerable.Range(1, 200).Select(i => Completion($"r{i}")));
        var runner = new EchoRunner { Delay = TimeSpan.FromMilliseconds(2) };

        var (processor, _) = await Run(runner, input, _dir.File("out.jsonl"), maxInFlight: 8);

        Assert.Equal(200, processor.Stats.Completed);
        Assert.InRange(runner.MaxObservedInFlight, 2, 8);
    }

    [Fact]
    public async Task Run_Cancelled_InterruptedAndOutputStillValidJsonl()
    {
        var input = _dir.File("in.jsonl");
        var output = _dir.File("out.jsonl");
        await File.WriteAllLinesAsync(input, Enumerable.Range(1, 100).Select(i => Completion($"r{i}")));
        using var cts = new CancellationTokenSource();
        // Ctrl-C after the fifth job, while others are in flight.
        var runner = new EchoRunner { Delay = TimeSpan.FromMilliseconds(20), AfterRun = n => { if (n == 5) cts.Cancel(); } };

        var (processor, outcome) = await Run(runner, input, output, maxInFlight: 2, cts.Token);

        Assert.Equal(BatchOutcome.Interrupted, outcome);
        var lines = ReadOutput(output);
        Assert.InRange(lines.Count, 4, 6);
        Assert.Equal(lines.Count, processor.Stats.Written);
    }

    [Fact]
    public async Task CountLines_BlankLinesAndNoFinalNewline_CountsNonBlankLines()
    {
        var input = _dir.File("in.jsonl");
        await File.WriteAllTextAsync(input, "a\n\n  \r\nb\r\nc");

        Assert.Equal(3, await BatchProcessor.CountLinesAsync(input, CancellationToken.None));
    }
}

[Trait("Category", "Unit")]
public sealed class BatchCommandValidationTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Batch_WithoutOut_UsageNamesTheFlag()
    {
        await File.WriteAllTextAsync(_dir.File("in.jsonl"), "{}\n");

        var run = await Qw.RunAsync(["batch", _dir.File("in.jsonl")]);

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--out OUTPUT.jsonl is required", run.Error);
    }

    [Fact]
    public async Task Batch_MissingInput_Usage()
    {
        var run = await Qw.RunAsync(["batch", _dir.File("nope.jsonl"), "--out", _dir.File("out.jsonl")]);

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("nope.jsonl does not exist", run.Error);
    }

    [Fact]
    public async Task Batch_OutputInMissingDirectory_ClearError()
    {
        await File.WriteAllTextAsync(_dir.File("in.jsonl"), """{"id":"a","prompt":"x"}""" + "\n");
        var processor = new BatchProcessor(new EchoRunner(), new BatchOptions(_dir.File("in.jsonl"), _dir.File("no/such/dir/out.jsonl"), 2, JobLimits.Default, 1 << 20), TimeProvider.System);

        var ex = await Assert.ThrowsAsync<QueueWorker.Cli.Infrastructure.CliException>(() => processor.RunAsync(CancellationToken.None));

        Assert.Contains("cannot write output file", ex.Message);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("5000")]
    public async Task Batch_MaxInFlightOutOfRange_Usage(string value)
    {
        await File.WriteAllTextAsync(_dir.File("in.jsonl"), "{}\n");

        var run = await Qw.RunAsync(["batch", _dir.File("in.jsonl"), "--out", _dir.File("out.jsonl"), "--max-in-flight", value]);

        Assert.Equal(2, run.ExitCode);
        Assert.Contains($"--max-in-flight must be from 1 to 4096, got {value}.", run.Error);
    }
}
