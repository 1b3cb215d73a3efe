using System.Diagnostics;
using Xunit.Abstractions;

namespace QueueWorker.IntegrationTests.Reliability;

/// <summary>The broker link breaks under a running worker (the broker closes its connection), or could starve under CPU load (heartbeats).</summary>
[Collection(ReliabilityCollection.Name)]
[Trait("Category", "Integration")]
public sealed class ConnectionFaultTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ConnectionClosedByBroker_MidRun_WorkerReconnectsAndEveryJobGetsItsResult()
    {
        await using var h = await ReliabilityHarness.CreateAsync(output);
        var worker = await h.StartWorkerAsync();
        var pidBefore = await h.Ctl.ConnectionPidAsync(h.ClientName);
        const int Jobs = 10;
        var ids = await h.PublishJobsAsync(Jobs, await h.CalibrateMaxTokensAsync(), prefix: "close");

        await ReliabilityHarness.WaitUntilAsync(async () =>
            h.JobResults.Count >= 1 && await worker.MetricAsync("queueworker_jobs_in_flight") >= 1,
            "a first result while jobs are in flight", TimeSpan.FromSeconds(180), TimeSpan.FromMilliseconds(50));
        // Only this worker's connection: other helpers share the broker.
        await h.Ctl.RunAsync("close_connection", pidBefore, "reliability test: broker closes the worker's connection");
        var closedAt = Stopwatch.StartNew();
        h.Log($"closed connection {pidBefore} with {h.JobResults.Count} of {Jobs} results in");

        string? pidAfter = null;
        await ReliabilityHarness.WaitUntilAsync(async () => (pidAfter = await h.Ctl.FindConnectionPidAsync(h.ClientName)) is { } p && p != pidBefore,
            "the worker's new connection", TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(250));
        h.Log($"reconnected as {pidAfter} after {closedAt.Elapsed.TotalSeconds:F1} s");
        await ReliabilityHarness.WaitUntilAsync(async () => (await worker.GetBodyAsync("/readyz")).Contains("\"consumer_running\":true"),
            "the worker consumes again (/readyz)", TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(250));
        h.Log($"ready again after {closedAt.Elapsed.TotalSeconds:F1} s");

        await h.Results.WaitForIdsAsync(ids, TimeSpan.FromMinutes(10));
        h.Log($"all {Jobs} jobs done {closedAt.Elapsed.TotalSeconds:F1} s after the close");
        h.AssertEveryJobCompletedOnce(ids, "connection closed by broker");
        Assert.False(worker.HasExited, "the worker must not exit when the broker closes its connection");
        Assert.Contains("RabbitMQ connection lost", worker.Output);
        Assert.Contains("RabbitMQ connection recovered", worker.Output);
        await AssertQueueSettledAsync(h);
        // Still serving on the recovered connection.
        var later = await h.PublishJobsAsync(2, maxTokens: 4, prefix: "after-close");
        await h.Results.WaitForIdsAsync(later, TimeSpan.FromSeconds(120));
    }

    [Fact]
    public async Task JobsQueueDeletedUnderTheWorker_WarnsWhyItIsNotConsuming_ConsumesAgainOnceItIsBack()
    {
        await using var h = await ReliabilityHarness.CreateAsync(output);
        var worker = await h.StartWorkerAsync();
        await using (var channel = await h.Broker.OpenChannelAsync(confirms: false))
            await channel.QueueDeleteAsync(h.JobsQueue, ifUnused: false, ifEmpty: false);

        // Connected, model loaded, consumer down (each re-subscribe is refused: no such queue): after
        // WorkerWatchdog.ConsumerDownWarning the worker says which condition fails and where its supervisor is.
        await ReliabilityHarness.WaitUntilAsync(() => worker.Output.Contains("The jobs consumer has not been running for", StringComparison.Ordinal),
            "the worker's warning that its consumer is down", Waits.Seconds(90), TimeSpan.FromMilliseconds(250));
        var warning = worker.Problems(50).Split('\n').Last(l => l.Contains("has not been running", StringComparison.Ordinal));
        h.Log(warning);
        Assert.Contains("supervisor: subscribing since", warning, StringComparison.Ordinal);
        Assert.Contains("stopping=False", warning, StringComparison.Ordinal);
        Assert.False(worker.HasExited);

        // The queue back (as an operator would restore it): the supervisor's next try consumes it.
        await ReliabilityHarness.DeclareViaAsync(h.Uri, h.JobsQueue, ReliabilityHarness.JobsQueueArguments(h.DeadLetterQueue));
        await ReliabilityHarness.WaitUntilAsync(async () => (await worker.GetBodyAsync("/readyz")).Contains("\"consumer_running\":true", StringComparison.Ordinal),
            "the worker consumes again (/readyz)", Waits.Seconds(90), TimeSpan.FromMilliseconds(250));
        var ids = await h.PublishJobsAsync(1, maxTokens: 4, prefix: "queue-back");
        await h.Results.WaitForIdsAsync(ids, TimeSpan.FromSeconds(60));
        h.AssertEveryJobCompletedOnce(ids, "jobs queue deleted and declared again");
    }

    [Fact]
    public async Task LongGenerationOnAllCores_HeartbeatsKeepTheConnection()
    {
        await using var h = await ReliabilityHarness.CreateAsync(output);
        const int Heartbeat = 2;
        h.Settings["RabbitMq:HeartbeatSeconds"] = Heartbeat.ToString();
        h.Settings["Inference:Threads"] = Environment.ProcessorCount.ToString();
        h.Settings["Inference:BatchThreads"] = Environment.ProcessorCount.ToString();
        h.Settings["Inference:Slots"] = "2";
        var worker = await h.StartWorkerAsync();
        var pid = await h.Ctl.ConnectionPidAsync(h.ClientName);
        var table = await h.Ctl.RunAsync("list_connections", "-q", "pid", "timeout");
        Assert.Contains($"{pid}\t{Heartbeat}", table); // the broker agreed to the short heartbeat

        // Generation on every core for well over ten heartbeat intervals, in jobs of a few seconds each.
        var maxTokens = await h.CalibrateMaxTokensAsync(secondsPerJob: 3);
        var busy = Stopwatch.StartNew();
        var ids = new List<string>();
        var minimum = TimeSpan.FromSeconds(12 * Heartbeat);
        while (busy.Elapsed < minimum)
        {
            var batch = await h.PublishJobsAsync(2, maxTokens, prefix: "busy");
            ids.AddRange(batch);
            await h.Results.WaitForIdsAsync(batch, TimeSpan.FromMinutes(10));
        }
        h.Log($"{ids.Count} jobs of {maxTokens} tokens on {Environment.ProcessorCount} threads kept the CPU busy for {busy.Elapsed.TotalSeconds:F1} s (heartbeat {Heartbeat} s)");

        h.AssertEveryJobCompletedOnce(ids, "heartbeats under load");
        Assert.Equal(pid, await h.Ctl.FindConnectionPidAsync(h.ClientName));
        Assert.DoesNotContain("RabbitMQ connection lost", worker.Output);
        Assert.DoesNotContain("missed heartbeats", worker.Output, StringComparison.OrdinalIgnoreCase);
    }

    private static async Task AssertQueueSettledAsync(ReliabilityHarness h)
    {
        await h.WaitForJobsQueueAsync(0, 0, "no job left ready or unacked");
        Assert.Equal(0u, await h.Broker.MessageCountAsync(h.DeadLetterQueue));
    }
}
