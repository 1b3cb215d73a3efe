using System.Text.Json;
using System.Text.RegularExpressions;

namespace QueueWorker.Bench.Tests;

/// <summary>
/// The worker benchmark's plumbing end to end on stories260K with small counts: the real worker binary, the real
/// broker (127.0.0.1, temporary queues), every target measured and reported. Speed is not asserted here: a
/// benchmark judges speed, on a quiet machine (qw bench --sections worker).
/// </summary>
[Trait("Category", "Integration")]
public sealed partial class WorkerBenchTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string BrokerUri => TestSettings.RabbitMqUri;

    private static string WorkerDll => WorkerProcess.FindWorkerDll(AppContext.BaseDirectory)
        ?? throw new InvalidOperationException($"the worker binary was not found from {AppContext.BaseDirectory}: build src/QueueWorker (this project references it)");

    internal static WorkerBenchPlan SmallPlan(string model) => new(
        WorkerDll, BrokerUri, model, Threads: 2, Warmup: 1, Repetitions: 2,
        SingleJob: new JobShape(24, 6),
        SlotJobs: 3, SlotJob: new JobShape(16, 6), ManySlots: 2,
        PrefixJobs: 3, PrefixTokens: 40, PrefixTailTokens: 5, PrefixGenTokens: 3,
        MemoryModel: model, MemoryJobsFirst: 4, MemoryJobsTotal: 12,
        TimeoutSeconds: 300);

    private sealed class Recorder : IBenchProgress
    {
        public List<string> Events { get; } = [];
        public void BeginSection(string title, int steps) => Events.Add($"begin {title} {steps}");
        public void Step(string description) => Events.Add(description);
        public void EndSection() => Events.Add("end");
    }

    [Fact]
    public async Task RunAsync_Stories260K_ReportsEveryTargetWithAMeasuredNumber()
    {
        var stories = TestModels.Find("stories260K.gguf");
        var plan = SmallPlan(stories);
        var progress = new Recorder();

        var result = await new WorkerBenchRunner(plan, progress).RunAsync(CancellationToken.None);

        Assert.Equal([WorkerBenchRunner.Single, WorkerBenchRunner.Slots, WorkerBenchRunner.Prefix, WorkerBenchRunner.Memory], result.Sections.Select(s => s.Id));
        Assert.Equal(["single-prefill", "single-decode", "slots", "prefix", "memory"], result.Targets.Select(t => t.Id));
        foreach (var target in result.Targets)
        {
            Assert.NotNull(target.Measured);
            Assert.True(double.IsFinite(target.Measured.Median) && target.Measured.Median >= 0, $"{target.Id}: {target.Measured.Median}");
            Assert.NotNull(target.Passed);
            Assert.Equal(target.Id == "memory" ? 1 : plan.Repetitions, target.Measured.N);
        }

        // Every job came back (completion tokens of all runs are counted from the results), and the shared prefix was reused.
        var slots = result.Sections[1];
        Assert.All(slots.Configs, c => Assert.InRange(c.Metrics[Metrics.CompletionTokens].Min, 1, plan.SlotJobs * plan.SlotJob.GenTokens));
        var rest = result.Sections[2].Configs[1].Metrics;
        Assert.True(rest[Metrics.MinCachedTokens].Min >= plan.PrefixTokens - 2, $"jobs after the first reused only {rest[Metrics.MinCachedTokens].Min} cached tokens");
        Assert.True(result.Sections[2].Configs[0].Metrics[Metrics.CachedTokens].Max < plan.PrefixTokens / 4, "the first job of a round found its new prefix cached");
        var single = result.Sections[0].Configs;
        Assert.Equal(single[0].Metrics[Metrics.PromptTokens].Median, single[1].Metrics[Metrics.PromptTokens].Median); // the raw loop decodes the worker's very tokens
        Assert.Equal(plan.SingleJob.PromptTokens, single[1].Metrics[Metrics.PromptTokens].Median);
        var memory = result.Sections[3].Configs;
        Assert.Equal(["after start (no job yet)", "after 4 jobs", "after 12 jobs"], memory.Select(c => c.Name));
        Assert.All(memory, c => Assert.True(c.Metrics[Metrics.RssMb].Median > 10, $"{c.Name}: RSS {c.Metrics[Metrics.RssMb].Median} MB"));

        // The report: one row per target, each with a measured number and a verdict.
        var report = Report(result, plan);
        await ReportWriter.WriteAsync(report, _dir.Path, chartWritten: false, CancellationToken.None);
        var md = await File.ReadAllTextAsync(_dir.File(ReportWriter.MarkdownFile));
        Assert.StartsWith("# qw bench: the worker's throughput targets, measured", md);
        Assert.DoesNotContain("## The seed's predictions", md);
        var rows = TargetRow().Matches(md);
        Assert.Equal(5, rows.Count);
        Assert.All(rows, r => Assert.Matches(@"^-?\d+\.\d\d( \[-?\d+\.\d\d–-?\d+\.\d\d\])? (×|MB)$", r.Groups["measured"].Value));
        Assert.Contains("≥ 0.9 ×", md);
        Assert.Contains("≥ 1.8 ×", md);
        Assert.Contains("≤ 0.5 ×", md);
        Assert.Contains("≤ 30 MB", md);

        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(_dir.File(ReportWriter.JsonFile)));
        var targets = json.RootElement.GetProperty("targets");
        Assert.Equal(5, targets.GetArrayLength());
        Assert.All(targets.EnumerateArray(), t => Assert.True(t.GetProperty("measured").GetProperty("median").GetDouble() >= 0));
        Assert.Equal(stories, json.RootElement.GetProperty("worker").GetProperty("memory_model").GetString());

        Assert.Equal(2, progress.Events.Count(e => e == "end"));
    }

    [Fact]
    public async Task PromptOf_RequestedLengths_TokenizeToExactlyThatMany()
    {
        using var model = await BenchModel.LoadAsync(TestModels.Find("stories260K.gguf"), mmap: true, CancellationToken.None);
        foreach (var n in new[] { 16, 60, 150 })
        {
            var text = WorkerBenchRunner.PromptOf(model, n, $"Request {n}:", n);
            Assert.StartsWith($"Request {n}:", text, StringComparison.Ordinal);
            Assert.Equal(n, model.Tokenize(text).Length);
        }

        Assert.NotEqual(WorkerBenchRunner.PromptOf(model, 60, "Request 1:", 1), WorkerBenchRunner.PromptOf(model, 60, "Request 2:", 1));
    }

    [Theory]
    [InlineData(">=", 0.9, 0.95, true)]
    [InlineData(">=", 0.9, 0.85, false)]
    [InlineData("<=", 0.5, 0.5, true)]
    [InlineData("<=", 30, 31, false)]
    public void Judge_MedianAgainstThreshold_PassOrFail(string comparison, double threshold, double median, bool passed)
    {
        var t = TargetResult.Judge("x", "x", comparison, threshold, "×", Stat.Of([median - 1, median, median + 100]), "");
        Assert.Equal(passed, t.Passed);
        Assert.Equal(passed ? "✓ pass" : "✗ fail", t.Verdict);
        Assert.Null(TargetResult.Judge("x", "x", comparison, threshold, "×", null, "").Passed);
    }

    [Fact]
    public void SmallJob_Mix_CoversPromptsChatStopsAndSampling()
    {
        var jobs = Enumerable.Range(0, 50).Select(i => WorkerBenchRunner.SmallJob(i, $"id-{i}")).ToList();
        Assert.Contains(jobs, j => j.Messages is not null);
        Assert.Contains(jobs, j => j.Stop is not null);
        Assert.Contains(jobs, j => j.Temperature == 0);
        Assert.Contains(jobs, j => j.Temperature > 0);
        Assert.All(jobs, j => Assert.True((j.Prompt is null) != (j.Messages is null) && j.MaxTokens is >= 8 and <= 32));
    }

    private static BenchReport Report(WorkerBenchResult result, WorkerBenchPlan plan) =>
        new("qw bench", DateTimeOffset.UnixEpoch, 1, "qw bench --sections worker",
            MachineInfo.Collect(), "0 0 0", new BackendInfo("0.30.0", "avx512", "", [], false, "no BLAS"),
            new ModelInfo(plan.Model, "test", 1, 1, "F32"),
            new BenchPlan(true, 1, plan.Repetitions, plan.SingleJob, plan.Threads, 2048, [BenchRunner.Worker], [], [1], 0),
            result.Sections, [], [])
        {
            Targets = result.Targets,
            Worker = plan,
        };

    [GeneratedRegex(@"^\| \d \| [^|]+ \| [≥≤] [\d.]+ (×|MB) \| (?<measured>[^|]+) \| \*\*(✓ pass|✗ fail)\*\* \|", RegexOptions.Multiline)]
    private static partial Regex TargetRow();
}

/// <summary>The batching section's engine: the worker's LlamaEngine built by AddInference in a Generic Host, run for real.</summary>
[Trait("Category", "Integration")]
public sealed class EngineHostTests
{
    [Fact]
    public async Task CreateBatchRunnerAsync_Stories260K_RunsConcurrentJobsThroughTheRealEngine()
    {
        var path = TestModels.Find("stories260K.gguf");
        using var model = await BenchModel.LoadAsync(path, mmap: true, CancellationToken.None);
        var plan = new BenchPlan(true, 1, 1, new JobShape(16, 6), 2, 2048, [BenchRunner.Batch], [], [1, 2], 0);
        var runner = await EngineHost.CreateBatchRunnerAsync(path, model, plan, CancellationToken.None);
        try
        {
            Assert.Equal(2, runner.MaxJobs);
            Assert.Contains("Inference:Slots = 2", runner.Method);
            var r = await runner.RunAsync(2, plan.Job, 0, CancellationToken.None);
            Assert.Equal(2, r.Jobs);
            Assert.Equal(2, r.JobLatencyMs.Count);
            Assert.InRange(r.CompletionTokens, 2, 12);
            Assert.InRange(r.PromptTokensPerJob, 14, 18);
        }
        finally
        {
            // Stops the host: the engine is IAsyncDisposable only.
            await runner.DisposeAsync();
        }
    }

    [Fact]
    public async Task StartAsync_MissingModel_FailsNamingModelPath()
    {
        var e = await Assert.ThrowsAnyAsync<Exception>(() => EngineHost.StartAsync(
            new Dictionary<string, string?> { ["Model:Path"] = "/nonexistent/m.gguf" }, CancellationToken.None));
        Assert.True(e.Message.Contains("Model:Path", StringComparison.Ordinal), e.ToString());
    }
}
