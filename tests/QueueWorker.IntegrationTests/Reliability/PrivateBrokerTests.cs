using System.Diagnostics;
using System.Text.RegularExpressions;
using QueueWorker.Contracts;
using RabbitMQ.Client;
using Xunit.Abstractions;

namespace QueueWorker.IntegrationTests.Reliability;

/// <summary>
/// Faults that hit the whole broker (app restart, consumer timeout, message size limit), tried on a private node
/// started with ops/rabbitmq/start-local.sh so that no other user of the shared broker is disturbed.
/// </summary>
[Collection(ReliabilityCollection.Name)]
[Trait("Category", "Integration")]
public sealed class PrivateBrokerTests(PrivateRabbitNode broker, ITestOutputHelper output) : IClassFixture<PrivateRabbitNode>, IAsyncLifetime
{
    // The app restarts here can leave the node unable to declare the worker's queues (a RabbitMQ bug, see the method).
    public async Task InitializeAsync() => await broker.RestartIfDeadLetterSupervisorGoneAsync(output.WriteLine);

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task BrokerAppRestarted_MidRun_WorkerRecoversAndEveryJobGetsItsResult()
    {
        await using var h = await ReliabilityHarness.CreateAsync(output, broker.Uri, broker.Ctl);
        var worker = await h.StartWorkerAsync();
        const int Jobs = 10;
        var ids = await h.PublishJobsAsync(Jobs, await h.CalibrateMaxTokensAsync(), prefix: "restart");
        await ReliabilityHarness.WaitUntilAsync(async () =>
            h.JobResults.Count >= 1 && await worker.MetricAsync("queueworker_jobs_in_flight") >= 1,
            "a first result while jobs are in flight", TimeSpan.FromSeconds(180), TimeSpan.FromMilliseconds(50));

        await broker.Ctl.RunAsync("stop_app");
        var stoppedAt = Stopwatch.StartNew();
        try
        {
            h.Log($"broker app stopped with {h.JobResults.Count} of {Jobs} results in");
            await ReliabilityHarness.WaitUntilAsync(async () => (await worker.GetBodyAsync("/readyz")).Contains("\"broker_connected\":false"),
                "the worker sees the broker go", TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(100));
            await Task.Delay(TimeSpan.FromSeconds(5)); // several failed recovery attempts while the app is down
        }
        finally
        {
            await broker.Ctl.RunAsync("start_app");
        }
        h.Log($"broker app started again after {stoppedAt.Elapsed.TotalSeconds:F1} s");
        var startedAt = Stopwatch.StartNew();

        await ReliabilityHarness.WaitUntilAsync(async () => (await worker.GetBodyAsync("/readyz")).Contains("\"consumer_running\":true"),
            "the worker consumes again (/readyz)", TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(250));
        h.Log($"worker consuming again {startedAt.Elapsed.TotalSeconds:F1} s after start_app");
        await h.Results.WaitForIdsAsync(ids, TimeSpan.FromMinutes(10));
        h.Log($"all {Jobs} jobs done {startedAt.Elapsed.TotalSeconds:F1} s after start_app");
        h.AssertEveryJobCompletedOnce(ids, "broker app restart");
        Assert.False(worker.HasExited, "the worker must not exit when the broker restarts");
        await h.WaitForJobsQueueAsync(0, 0, "no job left ready or unacked");
        Assert.Equal(0u, await h.Broker.MessageCountAsync(h.DeadLetterQueue));
    }

    [Fact]
    public async Task BrokerDownLongerThanMaxRecovery_WorkerExitsWithCode5()
    {
        await using var h = await ReliabilityHarness.CreateAsync(output, broker.Uri, broker.Ctl);
        h.Settings["RabbitMq:MaxRecoverySeconds"] = "3";
        var worker = await h.StartWorkerAsync();

        await broker.Ctl.RunAsync("stop_app");
        int code;
        try
        {
            var stoppedAt = Stopwatch.StartNew();
            code = await worker.WaitForExitAsync(TimeSpan.FromSeconds(120));
            h.Log($"the worker exited with {code} {stoppedAt.Elapsed.TotalSeconds:F1} s after stop_app");
        }
        finally
        {
            await broker.Ctl.RunAsync("start_app");
        }
        Assert.Equal(5, code);
        Assert.Contains("the broker connection has been lost", worker.Output);
    }

    [Fact]
    public async Task ConsumerTimeout_BrokerClosesChannel_WorkerReopensItAndJobCompletes()
    {
        await using var h = await ReliabilityHarness.CreateAsync(output, broker.Uri, broker.Ctl, classicResults: true);
        h.Settings["Inference:Slots"] = "1";
        h.Settings["RabbitMq:DeliveryLimit"] = "50";
        h.Settings["RabbitMq:PublishRetries"] = "100"; // keeps retrying (so holds the job) while results are refused
        // A 4 s consumer timeout, checked every second (channels read both when they open).
        await broker.Ctl.SetEnvAsync("channel_tick_interval", 1000);
        await broker.Ctl.SetEnvAsync("consumer_timeout", 4000);
        var policy = "qw-rel-full-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            var worker = await h.StartWorkerAsync();
            // The job is held longer than the timeout: its result cannot be published yet (the results queue refuses it).
            await broker.Ctl.RunAsync("set_policy", "--apply-to", "queues", "--priority", "1000", policy,
                "^" + Regex.Escape(h.ResultsQueue) + "$", """{"max-length":0,"overflow":"reject-publish"}""");
            var id = (await h.PublishJobsAsync(1, maxTokens: 8, prefix: "held")).Single();

            await ReliabilityHarness.WaitUntilAsync(() => worker.Output.Contains("The broker closed the consumer channel: 406"),
                "the broker's consumer timeout closes the channel", TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(200));
            var closedAt = Stopwatch.StartNew();
            await broker.Ctl.SetEnvAsync("consumer_timeout", 3_600_000);
            await ReliabilityHarness.WaitUntilAsync(() => Regex.Matches(worker.Output, $"Job {Regex.Escape(id)} received").Count >= 2,
                "the job delivered again on a re-opened channel", TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(200));
            h.Log($"consumer channel closed by the broker, re-opened, job redelivered {closedAt.Elapsed.TotalSeconds:F1} s later");

            await broker.Ctl.RunAsync("clear_policy", policy);
            var result = await h.Results.WaitForIdAsync(id, TimeSpan.FromSeconds(120));
            Assert.Equal(JobStatus.Completed, result.Result.Status);
            Assert.False(worker.HasExited);
            Assert.True(Regex.Matches(worker.Output, "Consuming '").Count >= 2, "the consumer was re-subscribed");
            // The first delivery's result may also arrive (same message_id): a consumer drops it by message_id.
            await h.WaitForJobsQueueAsync(0, 0, "the job acked on the new channel", TimeSpan.FromSeconds(90));
            h.AssertEveryJobCompletedOnce([id], "consumer timeout");
            Assert.Equal(0u, await h.Broker.MessageCountAsync(h.DeadLetterQueue));
        }
        finally
        {
            await broker.Ctl.TryRunAsync("clear_policy", policy);
            await broker.Ctl.SetEnvAsync("consumer_timeout", 3_600_000);
            await broker.Ctl.SetEnvAsync("channel_tick_interval", 60_000);
        }
    }

    [Fact]
    public async Task BodyOverBrokerMaxMessageSize_RefusedByBroker_WorkerKeepsServing()
    {
        await using var h = await ReliabilityHarness.CreateAsync(output, broker.Uri, broker.Ctl);
        var worker = await h.StartWorkerAsync();
        var limit = long.Parse(Regex.Match(await broker.Ctl.RunAsync("eval", "application:get_env(rabbit, max_message_size)."), @"\d+").Value);
        Assert.Equal(16L * 1024 * 1024, limit); // ops/rabbitmq/rabbitmq.conf, below the client's 64 MiB

        // 2 MiB: accepted by the broker, over the worker's RabbitMq:MaxJobBytes (1 MiB) → body_too_large result.
        var big = "big-" + Guid.NewGuid().ToString("N")[..8];
        await h.Broker.PublishAsync(h.JobsQueue, Padded(2 * 1024 * 1024), p => p.MessageId = big);
        var failed = await h.Results.WaitForIdAsync(big, TimeSpan.FromSeconds(60));
        Assert.Equal(ErrorCodes.BodyTooLarge, failed.Result.Error!.Code);
        Assert.Contains("RabbitMq:MaxJobBytes", failed.Result.Error.Message);

        // 17 MiB: the broker refuses it (a channel error for the producer); it never reaches the worker, whose
        // connection would otherwise be dropped by the client's 64 MiB limit.
        var factory = new ConnectionFactory { Uri = new Uri(broker.Uri), ClientProvidedName = "qw-rel-oversize-producer" };
        await using (var connection = await factory.CreateConnectionAsync())
        {
            var channel = await connection.CreateChannelAsync(new CreateChannelOptions(true, true));
            var refused = await Assert.ThrowsAnyAsync<Exception>(async () =>
                await channel.BasicPublishAsync("", h.JobsQueue, mandatory: true, new BasicProperties { MessageId = "huge" }, Padded(17 * 1024 * 1024)));
            h.Log("17 MiB publish: " + refused.GetType().Name + ": " + refused.Message);
            Assert.Contains("max", (channel.CloseReason?.ReplyText ?? refused.Message), StringComparison.OrdinalIgnoreCase);
        }

        var ids = await h.PublishJobsAsync(1, maxTokens: 4, prefix: "after-huge");
        await h.Results.WaitForIdsAsync(ids, TimeSpan.FromMinutes(10));
        Assert.DoesNotContain(h.JobResults, r => r.Result.Id == "huge");
        Assert.False(worker.HasExited);
        Assert.DoesNotContain("RabbitMQ connection lost", worker.Output);
    }

    [Fact]
    public async Task DeadLetteredJob_ReplayedWithShovel_Completes()
    {
        await using var h = await ReliabilityHarness.CreateAsync(output, broker.Uri, broker.Ctl, classicResults: true);
        h.Settings["Inference:Slots"] = "1";
        h.Settings["RabbitMq:DeliveryLimit"] = "1";
        h.Settings["RabbitMq:PublishRetries"] = "1";
        // The DLQ kept as the broker left it (a worker answering dead letters would park it: CrashTests).
        h.Settings["RabbitMq:AnswerDeadLetters"] = "false";
        var worker = await h.StartWorkerAsync();
        // Jobs end in the DLQ the quickest way: the results queue refuses their results (2 deliveries, then dead-lettered).
        var full = "qw-rel-full-" + Guid.NewGuid().ToString("N")[..8];
        await broker.Ctl.RunAsync("set_policy", "--apply-to", "queues", "--priority", "1000", full,
            "^" + Regex.Escape(h.ResultsQueue) + "$", """{"max-length":0,"overflow":"reject-publish"}""");
        try
        {
            async Task<string> DeadLetterOneAsync(string prefix)
            {
                var id = (await h.PublishJobsAsync(1, maxTokens: 4, prefix: prefix)).Single();
                await ReliabilityHarness.WaitUntilAsync(async () => await h.Broker.MessageCountAsync(h.DeadLetterQueue) == 1,
                    $"job {id} in the DLQ", TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(250));
                return id;
            }

            // The replay the README (Reliability) gives: a shovel moves what the DLQ holds back to the jobs queue, then deletes itself.
            var replayed = await DeadLetterOneAsync("shovel-replay");
            await broker.Ctl.RunAsync("clear_policy", full); // the cause is fixed
            var shovel = "qw-rel-dlq-replay-" + Guid.NewGuid().ToString("N")[..8];
            var replayAt = Stopwatch.StartNew();
            await broker.Ctl.RunAsync("set_parameter", "shovel", shovel, $$"""
                {"src-protocol":"amqp091","src-uri":"amqp://","src-queue":"{{h.DeadLetterQueue}}","src-delete-after":"queue-length",
                 "dest-protocol":"amqp091","dest-uri":"amqp://","dest-queue":"{{h.JobsQueue}}"}
                """);
            var result = await h.Results.WaitForIdAsync(replayed, TimeSpan.FromSeconds(120));
            h.Log($"shovel replay: job {replayed} completed {replayAt.Elapsed.TotalSeconds:F1} s after the shovel was declared");
            Assert.Equal(JobStatus.Completed, result.Result.Status);
            Assert.Equal(replayed, result.MessageId);
            Assert.Equal(0u, await h.Broker.MessageCountAsync(h.DeadLetterQueue));
            await ReliabilityHarness.WaitUntilAsync(async () => !(await broker.Ctl.RunAsync("list_parameters", "-q")).Contains(shovel),
                "the shovel deletes itself once the DLQ's messages are moved", TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(500));
            Assert.Single(h.JobResults);
        }
        finally
        {
            await broker.Ctl.TryRunAsync("clear_policy", full);
        }
    }

    /// <summary>A valid job whose metadata pads the body to <paramref name="bytes"/>.</summary>
    private static byte[] Padded(int bytes)
    {
        const string Head = """{"prompt":"Once upon a time","max_tokens":4,"metadata":{"pad":""";
        const string Tail = "\"}}";
        return System.Text.Encoding.UTF8.GetBytes(Head + new string('x', bytes - Head.Length - Tail.Length) + Tail);
    }
}
