using System.Text.RegularExpressions;

namespace QueueWorker.Bench.Tests;

/// <summary>
/// The scheduling section (issue 14's figures) end to end at CI size: four real worker processes on stories260K, the
/// real broker, every configuration measured, reported, and the broker left clean. Its targets are not asserted: speed
/// is judged by a benchmark run (qwbench --sections scheduling), not by a test on a shared machine.
/// </summary>
[Trait("Category", "Integration")]
public sealed partial class SchedulingBenchTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private sealed class Recorder : IBenchProgress
    {
        public List<string> Events { get; } = [];
        public void BeginSection(string title, int steps) => Events.Add($"begin {title} {steps}");
        public void Step(string description) => Events.Add(description);
        public void EndSection() => Events.Add("end");
    }

    private static SchedulingBenchPlan TinyPlan() => new(
        WorkerProcess.FindWorkerDll(AppContext.BaseDirectory)
            ?? throw new InvalidOperationException($"the worker binary was not found from {AppContext.BaseDirectory}: build src/QueueWorker (this project references it)"),
        TestSettings.RabbitMqUri, TestModels.Find("stories260K.gguf"), Threads: 1, Slots: 2, Warmup: 1, Repetitions: 2,
        Job: new JobShape(8, 4), BatchJobs: 8, InteractiveJobs: 3, InteractiveSpread: 0.5,
        FloodJobs: 6, TenantJobs: 2, SmallPrefetch: 4, TimeoutSeconds: 300);

    [Fact]
    public async Task RunAsync_TinyCounts_ReportsEveryConfigurationAndCleansUp()
    {
        var plan = TinyPlan();
        var progress = new Recorder();

        var result = await new SchedulingBenchRunner(plan, progress).RunAsync(CancellationToken.None);

        Assert.Equal([SchedulingBenchRunner.LanesSection, SchedulingBenchRunner.FairnessSection], result.Sections.Select(s => s.Id));
        var lanes = result.Sections[0];
        Assert.Equal([SchedulingBenchRunner.Alone, SchedulingBenchRunner.WithLanes, SchedulingBenchRunner.SingleQueue], lanes.Configs.Select(c => c.Name));
        foreach (var c in lanes.Configs)
        {
            foreach (var metric in new[] { Metrics.QueueWaitP50Ms, Metrics.QueueWaitP95Ms, Metrics.QueueWaitMaxMs, Metrics.ServiceMs })
            {
                var st = c.Metrics[metric];
                Assert.Equal(plan.Repetitions, st.N);
                Assert.True(st.Samples.All(v => double.IsFinite(v) && v >= 0), $"{c.Name} {metric}: {string.Join(", ", st.Samples)}");
            }

            // End of text is suppressed: every job generates exactly its tokens, so the service times compare.
            Assert.Equal(plan.Job.GenTokens, c.Metrics[Metrics.CompletionTokens].Median);
            Assert.True(c.Metrics[Metrics.QueueWaitP50Ms].Max <= c.Metrics[Metrics.QueueWaitMaxMs].Max);
        }

        Assert.All(lanes.Configs.Skip(1), c => Assert.InRange(c.Metrics[Metrics.BatchDoneBeforeLast].Max, 0, plan.BatchJobs));

        var fairness = result.Sections[1];
        Assert.Equal(
            [SchedulingBenchRunner.TenantAlone, SchedulingBenchRunner.FirstCome, SchedulingBenchRunner.FairShare(8, true), SchedulingBenchRunner.FairShare(4, false)],
            fairness.Configs.Select(c => c.Name));
        Assert.Equal(1.0, fairness.Configs[0].Metrics[Metrics.TenantBVsAlone].Median);
        Assert.Equal(plan.TenantJobs, fairness.Configs[0].Metrics[Metrics.TenantBLastPosition].Median);
        foreach (var c in fairness.Configs.Skip(1))
        {
            Assert.Equal(plan.Repetitions, c.Metrics[Metrics.TenantBVsAlone].N);
            Assert.InRange(c.Metrics[Metrics.TenantBLastPosition].Max, 1, plan.FloodJobs + plan.TenantJobs);
            Assert.True(c.Metrics[Metrics.TenantBFinishMs].Min > 0);
        }

        Assert.Equal([SchedulingBenchRunner.InteractiveTargetId, SchedulingBenchRunner.FairnessTargetId], result.Targets.Select(t => t.Id));
        Assert.All(result.Targets, t =>
        {
            Assert.NotNull(t.Measured);
            Assert.Equal(plan.Repetitions, t.Measured.N);
            Assert.NotNull(t.Passed);
        });
        Assert.Contains("single queue", result.Targets[0].Detail);
        Assert.Contains("first come", result.Targets[1].Detail);

        // The report: the figures' table, a row per figure with its number and verdict, and both measurement tables.
        var report = new BenchReport("qwbench", DateTimeOffset.UnixEpoch, 1, "qwbench --sections scheduling",
            MachineInfo.Collect(), "0 0 0", new BackendInfo("0.30.0", "avx512", "", [], false, "no BLAS"),
            new ModelInfo(plan.Model, "test", 1, 1, "F32"),
            new BenchPlan(true, 1, plan.Repetitions, plan.Job, plan.Threads, 2048, [BenchRunner.Scheduling], [], [1], 0),
            result.Sections, [], [])
        {
            SchedulingTargets = result.Targets,
            Scheduling = plan,
        };
        await ReportWriter.WriteAsync(report, _dir.Path, chartWritten: false, CancellationToken.None);
        var md = await File.ReadAllTextAsync(_dir.File(ReportWriter.MarkdownFile));
        Assert.StartsWith("# qwbench: scheduling", md);
        Assert.DoesNotContain("## The seed's predictions", md);
        Assert.Contains("## Issue 14's scheduling figures", md);
        Assert.Equal(2, FigureRow().Matches(md).Count);
        Assert.Contains($"| {SchedulingBenchRunner.SingleQueue} |", md);
        Assert.Contains($"| {SchedulingBenchRunner.FirstCome} |", md);

        // Nothing of the run is left on the broker: its queues (lanes and their dead-letter queues too) and its control exchange.
        var queues = await QueueWorker.Testing.Rabbitmqctl.Shared.RunAsync("list_queues", "-q", "name");
        var exchanges = await QueueWorker.Testing.Rabbitmqctl.Shared.RunAsync("list_exchanges", "-q", "name");
        Assert.StartsWith("qw-bench.", result.BrokerPrefix, StringComparison.Ordinal);
        Assert.DoesNotContain(result.BrokerPrefix, queues, StringComparison.Ordinal);
        Assert.DoesNotContain(result.BrokerPrefix, exchanges, StringComparison.Ordinal);

        Assert.Equal(1, progress.Events.Count(e => e == "end"));
    }

    [GeneratedRegex(@"^\| \d \| [^|]+ \| ≤ [\d.]+ × \| -?\d+\.\d\d( \[-?\d+\.\d\d–-?\d+\.\d\d\])? × \| \*\*(✓ pass|✗ fail)\*\* \|", RegexOptions.Multiline)]
    private static partial Regex FigureRow();
}

/// <summary>The scheduling section's arithmetic: nearest-rank percentiles and when each interactive job is published.</summary>
[Trait("Category", "Unit")]
public sealed class SchedulingBenchMathTests
{
    [Theory]
    [InlineData(new double[] { 5 }, 0.95, 5)]
    [InlineData(new double[] { 1, 2, 3, 4 }, 0.5, 2)]
    [InlineData(new double[] { 4, 3, 2, 1 }, 0.95, 4)]
    [InlineData(new double[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20 }, 0.95, 19)]
    public void Percentile_NearestRank_SmallestSampleCoveringTheFraction(double[] samples, double p, double expected) =>
        Assert.Equal(expected, SchedulingBenchRunner.Percentile(samples, p));

    [Fact]
    public void InteractiveTrigger_HalfSpread_FirstAtOnceLastBeforeHalfTheBatch()
    {
        var triggers = Enumerable.Range(0, 20).Select(k => SchedulingBenchRunner.InteractiveTrigger(k, 500, 20, 0.5)).ToList();
        Assert.Equal(0, triggers[0]);
        Assert.Equal(237, triggers[^1]);
        Assert.Equal(triggers.Order(), triggers);
    }
}
