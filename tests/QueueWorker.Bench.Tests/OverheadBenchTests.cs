namespace QueueWorker.Bench.Tests;

/// <summary>
/// The overhead section end to end at CI size on stories260K: the real worker binary, the raw loop as a child process
/// (qwbench raw-loop), the real broker (127.0.0.1, temporary queues). Speed is not asserted: the bench judges it.
/// </summary>
[Trait("Category", "Integration")]
public sealed class OverheadBenchTests
{
    private static string Find(string? dll, string what) => dll ?? throw new InvalidOperationException($"{what} was not found from {AppContext.BaseDirectory}");

    [Fact]
    public async Task RunAsync_Stories260K_SameWorkInBothPathsAndEveryNumberMeasured()
    {
        var stories = Path.GetFullPath(TestModels.Find("stories260K.gguf"));
        var plan = new OverheadBenchPlan(
            Find(WorkerProcess.FindWorkerDll(AppContext.BaseDirectory), "the worker binary"),
            Find(RawLoopProcess.FindBenchDll(AppContext.BaseDirectory), "qwbench.dll"),
            TestSettings.RabbitMqUri, stories, Threads: 2, Warmup: 1, Repetitions: 2,
            MaxTokens: 24, TinyJobs: 12, TimeoutSeconds: 300);

        var result = await new OverheadBenchRunner(plan, new NoProgress()).RunAsync(CancellationToken.None);

        Assert.Equal([OverheadBenchRunner.Single, OverheadBenchRunner.Throughput, OverheadBenchRunner.JobsPerSecond], result.Sections.Select(s => s.Id));
        // One job: the same prompt tokens on both sides (the worker may find its BOS cached), both rates measured.
        var (singleRaw, singleWorker) = (result.Sections[0].Configs[0].Metrics, result.Sections[0].Configs[1].Metrics);
        Assert.Equal(singleRaw[Metrics.PromptTokens].Samples, singleWorker[Metrics.PromptTokens].Samples);
        Assert.All(singleWorker[Metrics.CachedTokens].Samples, n => Assert.InRange(n, 0, 1));
        Assert.All(new[] { singleRaw[Metrics.PrefillTps], singleRaw[Metrics.DecodeTps], singleWorker[Metrics.PrefillTps], singleWorker[Metrics.DecodeTps] },
            s => Assert.True(s.N == plan.Repetitions && s.Min > 0 && double.IsFinite(s.Max), $"{s.Min}–{s.Max} over {s.N}"));
        var raw = result.Sections[1].Configs[0].Metrics;
        var worker = result.Sections[1].Configs[1].Metrics;
        // The same work on both sides: the worker's very prompt tokens, and the same greedy tokens until max_tokens or end of text.
        Assert.Equal(raw[Metrics.PromptTokens].Samples, worker[Metrics.PromptTokens].Samples);
        Assert.Equal(raw[Metrics.CompletionTokens].Samples, worker[Metrics.CompletionTokens].Samples);
        Assert.All(raw[Metrics.CompletionTokens].Samples, n => Assert.InRange(n, 1, plan.Slots * plan.MaxTokens));
        Assert.All(new[] { raw[Metrics.AggregateTps], worker[Metrics.AggregateTps], worker[Metrics.InProcessTps] },
            s => Assert.True(s.N == plan.Repetitions && s.Min > 0 && double.IsFinite(s.Max), $"{s.Min}–{s.Max} over {s.N}"));
        Assert.All(result.Sections[2].Configs, c => Assert.True(c.Metrics[Metrics.JobsPerS].Min > 0, c.Name));

        Assert.Equal(["single-prefill", "single-decode", "overhead-throughput", "overhead-jobs"], result.Targets.Select(t => t.Id));
        // Either a ratio with a verdict, or a refusal that says why: never a verdict on a baseline that lost to the worker.
        Assert.All(result.Targets.Take(3), t =>
            Assert.True(t.Measured is not null ? t.Passed is not null : t.Detail.StartsWith("refused", StringComparison.Ordinal), t.Detail));
        Assert.NotNull(result.Targets[3].Measured);
    }

    private sealed class NoProgress : IBenchProgress
    {
        public void BeginSection(string title, int steps)
        {
        }

        public void Step(string description)
        {
        }

        public void EndSection()
        {
        }
    }
}

[Trait("Category", "Unit")]
public sealed class OverheadRatioTests
{
    [Fact]
    public void SaneRatio_BaselineFasterOrEqual_RatioOfEachRound()
    {
        var (ratio, refused) = OverheadBenchRunner.SaneRatio(Stat.Of([80, 90, 100]), Stat.Of([100, 100, 100]));

        Assert.Null(refused);
        Assert.NotNull(ratio);
        Assert.Equal([0.8, 0.9, 1.0], ratio.Samples);
        Assert.Equal(0.9, ratio.Median, 6);
    }

    [Fact]
    public void SaneRatio_WorkerFasterWithinNoise_Reported()
    {
        // The baseline's own spread (90–110, 20%) covers a worker 10% ahead: noise, not a broken baseline.
        var (ratio, refused) = OverheadBenchRunner.SaneRatio(Stat.Of([110, 110, 110]), Stat.Of([90, 100, 110]));

        Assert.Null(refused);
        Assert.NotNull(ratio);
    }

    [Fact]
    public void SaneRatio_BaselineSlowerThanNoise_Refused()
    {
        // FACTS.md's case: a raw loop at 12.4 tok/s against a worker at 17.4 on the same work.
        var (ratio, refused) = OverheadBenchRunner.SaneRatio(Stat.Of([17.4, 17.0, 17.8]), Stat.Of([12.4, 12.2, 12.6]));

        Assert.Null(ratio);
        Assert.NotNull(refused);
        Assert.StartsWith("refused", refused, StringComparison.Ordinal);
    }

    [Fact]
    public void SaneRatio_SteadyBaselineFivePercentSlower_Refused()
    {
        // Noise is at least 5%: a steady baseline 8% behind the worker is refused.
        var (ratio, _) = OverheadBenchRunner.SaneRatio(Stat.Of([108, 108, 108]), Stat.Of([100, 100, 100]));

        Assert.Null(ratio);
    }
}
