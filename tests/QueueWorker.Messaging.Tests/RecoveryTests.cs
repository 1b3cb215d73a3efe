namespace QueueWorker.Messaging.Tests;

[Collection(RabbitMqCollection.Name)]
[Trait("Category", "Integration")]
public sealed class RecoveryTests(RabbitMqFixture broker, ITestOutputHelper output)
{
    [Fact]
    public async Task Start_BrokerUnreachable_HostKeepsRunningAndRetries()
    {
        // Nothing listens on port 1 of the loopback: connecting fails at once.
        var options = broker.NewOptions("unreachable", o => o.Uri = "amqp://guest:guest@127.0.0.1:1/");
        using var host = TestWorker.Build(options, new TestJobHandler(), output);

        await host.StartAsync();
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        var status = (IBrokerStatus)host.Services.GetService(typeof(IBrokerStatus))!;

        Assert.False(status.IsConnected);
        Assert.False(status.IsConsuming);
        using var timeout = new CancellationTokenSource(Waits.Seconds(20));
        await host.StopAsync(timeout.Token);
    }

    [Fact]
    public async Task ConnectionClosedByBroker_WorkerRecoversAndJobsStillGetResults()
    {
        var options = broker.NewOptions("recover", o => o.PublishRetries = 6);
        await using var worker = await TestWorker.StartAsync(options, output);
        await broker.PublishJobAsync(options.JobsQueue, RabbitMqFixture.JobBody("before"), p => p.MessageId = "before");
        Assert.Equal("before", (await broker.GetAsync(options.ResultsQueue)).BasicProperties.MessageId);
        var pidBefore = await ConnectionPidAsync(options.ClientName!);

        await Rabbitmqctl.Shared.RunAsync("close_connection", pidBefore, "test: recovery");
        await worker.WaitUntilAsync(() => !worker.Status.IsConnected, "the worker notices the closed connection", TimeSpan.FromSeconds(10));
        await worker.WaitUntilAsync(() => worker.Status.IsConsuming, "the worker consumes again", TimeSpan.FromSeconds(30));
        await broker.PublishJobAsync(options.JobsQueue, RabbitMqFixture.JobBody("after"), p => p.MessageId = "after");

        Assert.Equal("after", (await broker.GetAsync(options.ResultsQueue, TimeSpan.FromSeconds(30))).BasicProperties.MessageId);
        Assert.NotEqual(pidBefore, await ConnectionPidAsync(options.ClientName!));
        Assert.True(worker.Status.IsConnected);
    }

    [Fact]
    public async Task ConnectionClosedMidJob_JobStillGetsItsResult()
    {
        var options = broker.NewOptions("midjob", o => o.PublishRetries = 6);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new TestJobHandler();
        handler.Behaviour = async (job, ct) =>
        {
            if (handler.Received.Count == 1)
            {
                started.TrySetResult();
                await release.Task.WaitAsync(ct);
            }
            return TestJobHandler.Complete(job);
        };
        await using var worker = await TestWorker.StartAsync(options, output, handler);
        await broker.PublishJobAsync(options.JobsQueue, RabbitMqFixture.JobBody("mid"), p => p.MessageId = "mid");
        await started.Task.WaitAsync(Waits.Seconds(20));

        await Rabbitmqctl.Shared.RunAsync("close_connection", await ConnectionPidAsync(options.ClientName!), "test: mid-job");
        release.SetResult();

        // The broker requeued the unacked job when the connection closed: it may be finished twice, with the same message_id.
        Assert.Equal("mid", (await broker.GetAsync(options.ResultsQueue, TimeSpan.FromSeconds(30))).BasicProperties.MessageId);
        await worker.WaitUntilAsync(() => worker.Status.IsConsuming && worker.Status.InFlight == 0, "the worker is idle again", TimeSpan.FromSeconds(30));
        await worker.StopAsync();
        Assert.Equal(0u, await broker.ReadyCountAsync(options.JobsQueue));
        Assert.All(worker.Handler.Received, j => Assert.Equal("mid", j.MessageId));
    }

    [Fact]
    public async Task ChannelClosedByBroker_ConsumerReopenedAndJobsStillGetResults()
    {
        var options = broker.NewOptions("channel");
        await using var worker = await TestWorker.StartAsync(options, output);
        var channel = worker.Consumer.ConsumerChannel!;

        // Acking a delivery tag the broker never sent is a channel error (406 PRECONDITION_FAILED): the broker
        // closes that channel only, as it does on a consumer timeout. Automatic recovery does not re-open it.
        await channel.BasicAckAsync(424242, multiple: false);
        await worker.WaitUntilAsync(() => !channel.IsOpen, "the broker closes the channel", TimeSpan.FromSeconds(10));
        await worker.WaitUntilAsync(() => worker.Status.IsConsuming, "the worker consumes on a new channel", TimeSpan.FromSeconds(30));
        await broker.PublishJobAsync(options.JobsQueue, RabbitMqFixture.JobBody("after-channel"), p => p.MessageId = "after-channel");

        Assert.Equal("after-channel", (await broker.GetAsync(options.ResultsQueue)).BasicProperties.MessageId);
        Assert.NotSame(channel, worker.Consumer.ConsumerChannel);
        Assert.True(worker.Status.IsConnected);
    }

    [Fact]
    public async Task ChannelClosedByBrokerMidJob_ResubscribesAtOnceAndTheRequeuedJobIsDone()
    {
        // What a consumer timeout does: the broker closes the channel and requeues the unacked job while its handler still runs.
        var options = broker.NewOptions("timeout-like");
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new TestJobHandler();
        handler.Behaviour = async (job, ct) =>
        {
            if (handler.Received.Count == 1)
            {
                started.TrySetResult();
                await release.Task.WaitAsync(ct);
            }
            return TestJobHandler.Complete(job);
        };
        await using var worker = await TestWorker.StartAsync(options, output, handler);
        await broker.PublishJobAsync(options.JobsQueue, RabbitMqFixture.JobBody("slow"), p => p.MessageId = "slow");
        await started.Task.WaitAsync(Waits.Seconds(20));
        var channel = worker.Consumer.ConsumerChannel!;

        await channel.BasicAckAsync(424242, multiple: false);

        // The stuck first handler must not hold up the new subscription: the redelivered job is done meanwhile.
        var result = await broker.GetAsync(options.ResultsQueue, TimeSpan.FromSeconds(20));
        Assert.Equal("slow", result.BasicProperties.MessageId);
        Assert.False(release.Task.IsCompleted);
        Assert.True(worker.Handler.Received.Last().Redelivered);
        release.SetResult();
        // The first handler's result is published too (same message_id, a duplicate); its ack is skipped on the closed channel.
        Assert.Equal("slow", (await broker.GetAsync(options.ResultsQueue, TimeSpan.FromSeconds(20))).BasicProperties.MessageId);
        await worker.WaitUntilAsync(() => worker.Status.InFlight == 0, "both handlers settled");
        await worker.StopAsync();
        Assert.Equal(0u, await broker.ReadyCountAsync(options.JobsQueue));
    }

    /// <summary>The broker's pid for the connection named <paramref name="clientName"/>: only the test worker's connection is closed, never another helper's.</summary>
    private static Task<string> ConnectionPidAsync(string clientName) => Rabbitmqctl.Shared.ConnectionPidAsync(clientName, TimeSpan.FromSeconds(30));
}
