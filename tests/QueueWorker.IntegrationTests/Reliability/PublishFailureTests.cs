using System.Diagnostics;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace QueueWorker.IntegrationTests.Reliability;

/// <summary>A result the broker will not confirm is retried with backoff; the job is nacked with requeue, never acked without a result.</summary>
[Collection(ReliabilityCollection.Name)]
[Trait("Category", "Integration")]
public sealed class PublishFailureTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ResultsQueueRejectsPublishes_JobRetriedAndRequeuedNotAcked_CompletesOnceQueueAcceptsAgain()
    {
        await using var h = await ReliabilityHarness.CreateAsync(output, classicResults: true);
        h.Settings["RabbitMq:PublishRetries"] = "3";
        // Room for several nack/redelivery rounds before the quorum queue would dead-letter the job.
        h.Settings["RabbitMq:DeliveryLimit"] = "50";
        h.Settings["Inference:Slots"] = "1";
        var worker = await h.StartWorkerAsync();

        // The results queue is "full" (an operator's max-length policy): the broker nacks every publish to it.
        var policy = "qw-rel-full-" + Guid.NewGuid().ToString("N")[..8];
        await h.Ctl.RunAsync("set_policy", "--apply-to", "queues", "--priority", "1000", policy,
            "^" + Regex.Escape(h.ResultsQueue) + "$", """{"max-length":0,"overflow":"reject-publish"}""");
        try
        {
            var id = (await h.PublishJobsAsync(1, maxTokens: 8, prefix: "unpublishable")).Single();
            await ReliabilityHarness.WaitUntilAsync(() => worker.Output.Contains($"Could not publish the result {id}"),
                "the worker gives up publishing the result and nacks the job", TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(200));

            // Retried with backoff (3 attempts: 2 retries), then nacked with requeue: the job is still in the queue.
            var retries = Regex.Matches(worker.Output, $@"Publishing result {Regex.Escape(id)} failed \(attempt \d+\): .*retrying in (\d+) ms").ToList();
            h.Log("publish retries before the nack: " + string.Join(", ", retries.Select(m => m.Groups[1].Value + " ms")));
            Assert.True(retries.Count >= 2, $"expected 2 retries before the nack, saw {retries.Count}");
            await ReliabilityHarness.WaitUntilAsync(async () => await h.Ctl.QueueCountsAsync(h.JobsQueue) is (1, 0) or (0, 1),
                "the job still in the jobs queue (ready or held), not acked", TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(500));
            Assert.Empty(h.JobResults);
            Assert.Equal(0u, await h.Broker.MessageCountAsync(h.DeadLetterQueue));
            await ReliabilityHarness.WaitUntilAsync(() => worker.Output.Contains($"Job {id} received (delivery 1,"),
                "the requeued job is delivered again", TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(200));

            // The queue accepts results again: the job completes, once.
            await h.Ctl.RunAsync("clear_policy", policy);
            var fixedAt = Stopwatch.StartNew();
            await h.Results.WaitForIdsAsync([id], TimeSpan.FromSeconds(120));
            h.Log($"result confirmed {fixedAt.Elapsed.TotalSeconds:F1} s after the results queue accepted messages again");
            await Task.Delay(TimeSpan.FromSeconds(2)); // a duplicate would show up here
            h.AssertEveryJobCompletedOnce([id], "results queue rejecting publishes");
            Assert.Single(h.JobResults);
            await h.WaitForJobsQueueAsync(0, 0, "the job acked");
            Assert.Equal(0u, await h.Broker.MessageCountAsync(h.DeadLetterQueue));
        }
        finally
        {
            await h.Ctl.TryRunAsync("clear_policy", policy);
        }
    }

    [Fact]
    public async Task ResultsQueueRejectsLongerThanDeliveryLimit_JobDeadLetteredIntactNeverAcked()
    {
        await using var h = await ReliabilityHarness.CreateAsync(output, classicResults: true);
        h.Settings["RabbitMq:PublishRetries"] = "2";
        h.Settings["RabbitMq:DeliveryLimit"] = "1";
        h.Settings["Inference:Slots"] = "1";
        // The broker's side alone: a worker answering dead letters would take the job out of the DLQ (CrashTests covers that).
        h.Settings["RabbitMq:AnswerDeadLetters"] = "false";
        var worker = await h.StartWorkerAsync();
        var policy = "qw-rel-full-" + Guid.NewGuid().ToString("N")[..8];
        await h.Ctl.RunAsync("set_policy", "--apply-to", "queues", "--priority", "1000", policy,
            "^" + Regex.Escape(h.ResultsQueue) + "$", """{"max-length":0,"overflow":"reject-publish"}""");
        try
        {
            var started = Stopwatch.StartNew();
            var id = (await h.PublishJobsAsync(1, maxTokens: 8, prefix: "outage")).Single();
            // Each delivery ends in a nack with requeue, and a nack counts as a delivery: after DeliveryLimit + 1 of them
            // the broker dead-letters the job. It is not lost: the DLQ holds it for an operator to replay.
            await ReliabilityHarness.WaitUntilAsync(async () => await h.Broker.MessageCountAsync(h.DeadLetterQueue) == 1,
                "the job in the dead-letter queue", TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(250));
            h.Log($"results outage: job dead-lettered after {started.Elapsed.TotalSeconds:F1} s " +
                  $"({Regex.Matches(worker.Output, $"Could not publish the result {Regex.Escape(id)}").Count} nacks)");
            Assert.Empty(h.JobResults);
            Assert.Equal(0u, await h.Broker.MessageCountAsync(h.JobsQueue));
            var dead = await h.Broker.GetAsync(h.DeadLetterQueue);
            Assert.Equal(id, dead!.BasicProperties.MessageId);
            Assert.Equal(ReliabilityHarness.JobJson(id, 8), System.Text.Encoding.UTF8.GetString(dead.Body.Span));
        }
        finally
        {
            await h.Ctl.TryRunAsync("clear_policy", policy);
        }
    }
}
