using QueueWorker.Contracts;
using System.Diagnostics;
using Xunit.Abstractions;

namespace QueueWorker.IntegrationTests.Reliability;

/// <summary>
/// A worker killed outright (SIGKILL: no shutdown code runs) loses nothing; a job that kills every worker is answered
/// <c>poison_job</c> and parked, and the jobs held beside it complete.
/// </summary>
[Collection(ReliabilityCollection.Name)]
[Trait("Category", "Integration")]
public sealed class CrashTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Sigkill_MidJob_HeldJobsRedeliveredAndFinishedAfterRestart()
    {
        await using var h = await ReliabilityHarness.CreateAsync(output);
        const int Jobs = 6;
        var first = await h.StartWorkerAsync();
        var ids = await h.PublishJobsAsync(Jobs, await h.CalibrateMaxTokensAsync(), prefix: "kill");

        // Kill while the worker holds unacked jobs (in flight) and some results are still to come.
        double inFlight = 0;
        await ReliabilityHarness.WaitUntilAsync(async () =>
            h.JobResults.Count >= 1 && (inFlight = await first.MetricAsync("queueworker_jobs_in_flight")) >= 1,
            "a first result while jobs are in flight", TimeSpan.FromSeconds(180), TimeSpan.FromMilliseconds(50));
        first.Kill();
        var killedAt = Stopwatch.StartNew();
        var resultsAtKill = h.JobResults.Select(r => r.Result.Id).Distinct().Count();
        await first.WaitForExitAsync(TimeSpan.FromSeconds(30));
        h.Log($"SIGKILL with {inFlight} job(s) in flight and {resultsAtKill} of {Jobs} results in");
        Assert.InRange(resultsAtKill, 1, Jobs - 1);

        await h.StartWorkerAsync();
        await h.Results.WaitForIdsAsync(ids, TimeSpan.FromMinutes(10));
        h.Log($"all {Jobs} jobs done {killedAt.Elapsed.TotalSeconds:F1} s after the kill (worker restart included)");
        h.AssertEveryJobCompletedOnce(ids, "SIGKILL mid-job");
        // The jobs the dead worker held came back marked as redelivered.
        Assert.Contains("redelivered True", h.Workers[1].Output);
        Assert.Equal(0u, await h.Broker.MessageCountAsync(h.JobsQueue));
        Assert.Equal(0u, await h.Broker.MessageCountAsync(h.DeadLetterQueue));
    }

    /// <summary>
    /// The scenario: 4 slots, DeliveryLimit 2, one job that kills the worker process (test-only
    /// Inference:KillProcessOnPrompt, Environment.FailFast) among three good ones, all prefetched together; the test
    /// restarts workers as they die. A job delivered before runs alone, the others wait at the end of the queue, so only
    /// the killer spends its attempts: three completed results and one poison_job, the killer parked, the DLQ empty.
    /// </summary>
    [Fact]
    public async Task PoisonJob_KillsEveryWorkerThatTakesIt_AnsweredPoisonJobAndParkedGoodJobsComplete()
    {
        await using var h = await ReliabilityHarness.CreateAsync(output);
        const int DeliveryLimit = 2; // FACTS.md: x-delivery-limit 2 → delivered 3 times, then dead-lettered
        var marker = "KILL-" + Guid.NewGuid().ToString("N")[..8];
        h.Settings["RabbitMq:DeliveryLimit"] = DeliveryLimit.ToString(System.Globalization.CultureInfo.InvariantCulture);
        h.Settings["Inference:Slots"] = "4";
        h.Settings["Inference:KillProcessOnPrompt"] = marker;
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var killerId = "killer-" + suffix;
        var goodIds = Enumerable.Range(0, 3).Select(i => $"good-{i}-{suffix}").ToList();
        var killerBody = ReliabilityHarness.JobJson(killerId, maxTokens: 48, prompt: "Once upon a time " + marker);

        var worker = await h.StartWorkerAsync();
        // Published together behind a good one, so the first worker holds all four when the killer runs.
        var order = new List<(string Id, string Body)> { (goodIds[0], ReliabilityHarness.JobJson(goodIds[0], 48)), (killerId, killerBody) };
        order.AddRange(goodIds.Skip(1).Select(id => (id, ReliabilityHarness.JobJson(id, 48))));
        foreach (var (id, body) in order)
            await h.Broker.PublishAsync(h.JobsQueue, body, p => { p.MessageId = id; p.CorrelationId = "corr-" + id; });

        var killed = 0;
        // A restarted worker may take the killer before it reports ready (consuming starts first): that is a death too.
        async Task<WorkerProcess> StartSurvivingAsync()
        {
            while (true)
            {
                try
                {
                    return await h.StartWorkerAsync();
                }
                catch (InvalidOperationException ex) when (ex.Message.Contains("exited with code 134", StringComparison.Ordinal))
                {
                    killed++;
                    h.Log($"worker {h.Workers.Count} died before it was ready (exit code 134) with {h.JobResults.Count} result(s) in");
                    Assert.True(killed <= DeliveryLimit + 1, $"{killed} workers died: the killer should be answered after {DeliveryLimit + 1} deliveries");
                }
            }
        }
        var all = goodIds.Append(killerId).ToList();
        var started = Stopwatch.StartNew();
        while (true)
        {
            await ReliabilityHarness.WaitUntilAsync(() => worker.HasExited || all.All(id => h.JobResults.Any(r => r.Result.Id == id)),
                "every job answered, or the worker dead", TimeSpan.FromSeconds(180), TimeSpan.FromMilliseconds(50));
            if (!worker.HasExited)
                break;
            killed++;
            h.Log($"worker {h.Workers.Count} died (exit code {worker.ExitCode}) with {h.JobResults.Count} result(s) in");
            Assert.True(killed <= DeliveryLimit + 1, $"{killed} workers died: the killer should be answered after {DeliveryLimit + 1} deliveries");
            worker = await StartSurvivingAsync();
        }
        h.Log($"all four answered {started.Elapsed.TotalSeconds:F1} s after publishing, {killed} worker(s) killed");

        // The killer's answer leaves before its park and ack: wait for both, then for anything late.
        await ReliabilityHarness.WaitUntilAsync(async () => await h.Broker.MessageCountAsync(h.ParkedQueue) == 1
                && await h.Broker.MessageCountAsync(h.DeadLetterQueue) == 0 && await h.Broker.MessageCountAsync(h.JobsQueue) == 0,
            "the killer parked, the DLQ and the jobs queue empty", TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(250));
        await Task.Delay(TimeSpan.FromSeconds(1));

        Assert.InRange(killed, 1, DeliveryLimit + 1);
        Assert.False(worker.HasExited);
        var results = h.JobResults;
        h.Log("results: " + string.Join(", ", results.Select(r => $"{r.Result.Id}={r.Result.Status}/{r.Result.Error?.Code}")));
        Assert.Equal(4, results.Count);
        foreach (var id in goodIds)
        {
            var good = Assert.Single(results, r => r.Result.Id == id);
            Assert.Equal(JobStatus.Completed, good.Result.Status);
            Assert.Equal("corr-" + id, good.CorrelationId);
        }
        var poison = Assert.Single(results, r => r.Result.Id == killerId);
        Assert.Equal(JobStatus.Failed, poison.Result.Status);
        Assert.Equal(ErrorCodes.PoisonJob, poison.Result.Error!.Code);
        Assert.Contains(h.ParkedQueue, poison.Result.Error.Message, StringComparison.Ordinal);
        Assert.Equal(killerId, poison.MessageId);
        Assert.Equal("corr-" + killerId, poison.CorrelationId);

        // What an operator finds in the parked queue: the job as it was sent, replayable (no delivery counts on it).
        var parked = await h.Broker.PeekAsync(h.ParkedQueue);
        Assert.NotNull(parked);
        Assert.Equal(killerId, parked.BasicProperties.MessageId);
        Assert.Equal("corr-" + killerId, parked.BasicProperties.CorrelationId);
        Assert.Equal(killerBody, System.Text.Encoding.UTF8.GetString(parked.Body.Span));
        var headers = new Dictionary<string, object?>(parked.BasicProperties.Headers ?? new Dictionary<string, object?>());
        h.Log("parked headers: " + string.Join(", ", headers.Select(kv => $"{kv.Key}={Describe(kv.Value)}")));
        Assert.Equal("delivery_limit", Describe(headers.GetValueOrDefault("x-qw-parked-reason")));
        Assert.False(headers.ContainsKey("x-qw-deliveries"));
        // The good jobs ran at most twice: once beside the killer in the first worker, once to completion.
        foreach (var id in goodIds)
            Assert.InRange(h.Workers.Sum(w => CountOf(w.Output, $"Job {id} received")), 1, 2);
    }

    /// <summary>A job whose AMQP expiration passes in the queue is dead-lettered by the broker (reason expired); the worker answers it.</summary>
    [Fact]
    public async Task JobExpiredInQueue_DeadLetteredThenAnsweredDeadlineExceededAndParked()
    {
        await using var h = await ReliabilityHarness.CreateAsync(output);
        var first = await h.StartWorkerAsync(); // declares the queues
        first.Terminate();
        await first.WaitForExitAsync(TimeSpan.FromSeconds(60));

        var id = "expired-" + Guid.NewGuid().ToString("N")[..8];
        await h.Broker.PublishAsync(h.JobsQueue, ReliabilityHarness.JobJson(id, 8), p => { p.MessageId = id; p.CorrelationId = "corr-" + id; p.Expiration = "1"; });
        await Task.Delay(TimeSpan.FromMilliseconds(200));
        await h.StartWorkerAsync();

        var result = await h.Results.WaitForIdAsync(id, TimeSpan.FromSeconds(120));
        Assert.Equal(ErrorCodes.DeadlineExceeded, result.Result.Error!.Code);
        Assert.Equal("expiration", result.Result.Error.Field);
        Assert.Equal("corr-" + id, result.CorrelationId);
        Assert.Contains("expiration 1 ms", result.Result.Error.Message, StringComparison.Ordinal);
        h.Log("expired job answered: " + result.Result.Error.Message);
        await ReliabilityHarness.WaitUntilAsync(async () => await h.Broker.MessageCountAsync(h.ParkedQueue) == 1
                && await h.Broker.MessageCountAsync(h.DeadLetterQueue) == 0,
            "the expired job parked, the DLQ empty", TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(250));
        var parked = await h.Broker.PeekAsync(h.ParkedQueue);
        Assert.Equal(id, parked!.BasicProperties.MessageId);
        Assert.Null(parked.BasicProperties.Expiration); // a replay must not expire again on the way
        Assert.Single(h.JobResults);
    }

    private static int CountOf(string text, string value)
    {
        var count = 0;
        for (var i = text.IndexOf(value, StringComparison.Ordinal); i >= 0; i = text.IndexOf(value, i + value.Length, StringComparison.Ordinal))
            count++;
        return count;
    }

    private static string Describe(object? value) => value switch
    {
        null => "",
        byte[] bytes => System.Text.Encoding.UTF8.GetString(bytes),
        IDictionary<string, object?> table => "{" + string.Join(", ", table.Select(kv => $"{kv.Key}={Describe(kv.Value)}")) + "}",
        System.Collections.IEnumerable list and not string => "[" + string.Join(", ", list.Cast<object?>().Select(Describe)) + "]",
        _ => value.ToString() ?? "",
    };
}
