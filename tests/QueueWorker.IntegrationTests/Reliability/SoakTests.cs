using System.Diagnostics;
using Xunit.Abstractions;

namespace QueueWorker.IntegrationTests.Reliability;

/// <summary>Soak: 2000 small jobs through one worker: none lost, none doubled, memory flat.</summary>
[Collection(ReliabilityCollection.Name)]
[Trait("Category", "Integration")]
public sealed class SoakTests(ITestOutputHelper output)
{
    [Fact]
    public async Task TwoThousandSmallJobs_NoLossNoDuplicatesFlatMemory()
    {
        await using var h = await ReliabilityHarness.CreateAsync(output);
        h.Settings["Inference:Slots"] = "4";
        // Per-job debug lines would make the log (kept in memory by the test) the biggest thing here.
        h.Settings["Logging:LogLevel:QueueWorker.Messaging"] = "Information";
        h.Settings["Logging:LogLevel:QueueWorker.Processing"] = "Warning";
        var worker = await h.StartWorkerAsync();
        var rssReady = worker.ResidentKib();
        const int Jobs = 2000;

        var clock = Stopwatch.StartNew();
        var publishing = h.PublishJobsAsync(Jobs, maxTokens: 4, prefix: "soak");
        long? rssAt200 = null;
        await ReliabilityHarness.WaitUntilAsync(() =>
        {
            if (rssAt200 is null && h.JobResults.Count >= 200) rssAt200 = worker.ResidentKib();
            return h.JobResults.Count >= Jobs;
        }, $"{Jobs} results", TimeSpan.FromMinutes(10), TimeSpan.FromMilliseconds(100));
        var ids = await publishing;
        var seconds = clock.Elapsed.TotalSeconds;
        await Task.Delay(TimeSpan.FromSeconds(2)); // a duplicate would arrive here
        var rssAt2000 = worker.ResidentKib();

        var report = h.AssertEveryJobCompletedOnce(ids, "soak");
        h.Log($"soak: {Jobs} jobs in {seconds:F1} s ({Jobs / seconds:F1} jobs/s); RSS {rssReady / 1024.0:F1} MiB ready, " +
              $"{rssAt200 / 1024.0:F1} MiB at 200 results, {rssAt2000 / 1024.0:F1} MiB at 2000");
        Assert.Equal(0, report.Duplicates);
        Assert.Equal(Jobs, report.Received);
        // Flat: the last 1800 jobs add less than 32 MiB (GC and allocator noise, not per-job growth).
        Assert.True(rssAt2000 - rssAt200 < 32 * 1024, $"RSS grew by {(rssAt2000 - rssAt200) / 1024.0:F1} MiB between 200 and 2000 jobs");
        await h.WaitForJobsQueueAsync(0, 0, "every job acked");
    }
}
