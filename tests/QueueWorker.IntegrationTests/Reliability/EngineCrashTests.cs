using Xunit.Abstractions;

namespace QueueWorker.IntegrationTests.Reliability;

/// <summary>
/// A crashed engine stops the worker: liveness fails, consumption stops, the jobs it held are requeued (not answered
/// with an error they did not cause, not drained into the DLQ), and the process exits non-zero so it is restarted.
/// The crash is injected in the scheduler by the test-only setting Inference:CrashSchedulerOnPrompt.
/// </summary>
[Collection(ReliabilityCollection.Name)]
[Trait("Category", "Integration")]
public sealed class EngineCrashTests(ITestOutputHelper output)
{
    private const string Marker = "CRASH-THE-SCHEDULER";
    private const string StallMarker = "HANG-THE-SCHEDULER";

    [Fact]
    public async Task SchedulerCrash_WorkerExitsNonZeroAndHeldJobsAreRequeuedNotFailed()
    {
        await using var h = await ReliabilityHarness.CreateAsync(output);
        h.Settings["Inference:Slots"] = "4";
        var crashing = await h.StartWorkerAsync(new Dictionary<string, string> { ["Inference:CrashSchedulerOnPrompt"] = Marker });

        // Good jobs long enough to be in flight when the crash comes, then the job that crashes the scheduler.
        var ids = await h.PublishJobsAsync(3, maxTokens: 400, prefix: "innocent");
        var crashId = "crash-" + Guid.NewGuid().ToString("N")[..8];
        await h.Broker.PublishAsync(h.JobsQueue, ReliabilityHarness.JobJson(crashId, maxTokens: 4, prompt: "Once upon a time " + Marker),
            p => p.MessageId = crashId);

        var code = await crashing.WaitForExitAsync(TimeSpan.FromSeconds(120));
        h.Log($"the crashing worker exited with {code}");
        Assert.Equal(3, code);
        Assert.Contains("the inference engine crashed", crashing.Output);
        // Nothing it held was answered with an error it did not cause.
        Assert.DoesNotContain(h.JobResults, r => r.Result.Status == "failed");

        // A healthy worker (no fault injection) finishes every job, the crashing one included, each once.
        var healthy = await h.StartWorkerAsync();
        var all = ids.Append(crashId).ToList();
        try
        {
            await h.Results.WaitForIdsAsync(all, TimeSpan.FromMinutes(2));
        }
        finally
        {
            output.WriteLine("--- crashing worker ---\n" + crashing.Output + "\n--- healthy worker ---\n" + healthy.Output);
        }
        h.AssertEveryJobCompletedOnce(all, "scheduler crash");
        // No bounce: the crashing worker stopped consuming before its nacks, so each job was delivered to it once.
        Assert.DoesNotContain("(delivery 2,", healthy.Output);
        Assert.Equal(0u, await h.Broker.MessageCountAsync(h.DeadLetterQueue));
    }

    [Fact]
    public async Task SchedulerStalls_WorkerExitsWithCode4AndHeldJobsAreDoneByTheNextWorker()
    {
        await using var h = await ReliabilityHarness.CreateAsync(output);
        h.Settings["Inference:Slots"] = "4";
        h.Settings["RabbitMq:ShutdownGraceSeconds"] = "2";
        var hung = await h.StartWorkerAsync(new Dictionary<string, string>
        {
            ["Inference:StallSchedulerOnPrompt"] = StallMarker,
            ["Inference:StallSeconds"] = "3",
        });

        var ids = await h.PublishJobsAsync(2, maxTokens: 400, prefix: "waiting");
        var stallId = "stall-" + Guid.NewGuid().ToString("N")[..8];
        await h.Broker.PublishAsync(h.JobsQueue, ReliabilityHarness.JobJson(stallId, maxTokens: 4, prompt: "Once upon a time " + StallMarker),
            p => p.MessageId = stallId);

        var code = await hung.WaitForExitAsync(TimeSpan.FromSeconds(120));
        h.Log($"the hung worker exited with {code}");
        Assert.Equal(4, code);
        Assert.Contains("made no progress", hung.Output);

        var healthy = await h.StartWorkerAsync();
        var all = ids.Append(stallId).ToList();
        try
        {
            await h.Results.WaitForIdsAsync(all, TimeSpan.FromMinutes(2));
        }
        finally
        {
            output.WriteLine("--- hung worker ---\n" + hung.Output + "\n--- healthy worker ---\n" + healthy.Output);
        }
        var ledger = h.AssertEveryJobCompletedOnce(all, "scheduler stall");
        h.Log(ledger.ToString());
        Assert.Equal(0u, await h.Broker.MessageCountAsync(h.DeadLetterQueue));
    }
}
