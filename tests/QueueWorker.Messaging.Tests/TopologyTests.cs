namespace QueueWorker.Messaging.Tests;

[Collection(RabbitMqCollection.Name)]
[Trait("Category", "Integration")]
public sealed class TopologyTests(RabbitMqFixture broker, ITestOutputHelper output)
{
    [Fact]
    public async Task DeclareAsync_Twice_IsIdempotentAndQueuesExist()
    {
        var options = broker.NewOptions("topology");

        await Topology.DeclareAsync(broker.Connection, options, CancellationToken.None);
        await Topology.DeclareAsync(broker.Connection, options, CancellationToken.None);

        Assert.Equal(0u, await broker.ReadyCountAsync(options.JobsQueue));
        Assert.Equal(0u, await broker.ReadyCountAsync(options.ResultsQueue));
        Assert.Equal(0u, await broker.ReadyCountAsync(options.EffectiveDeadLetterQueue));
    }

    [Fact]
    public async Task DeclareAsync_JobsQueue_IsQuorumWithDeliveryLimitAndDeadLetterQueue()
    {
        var options = broker.NewOptions("topology-args", o => o.DeliveryLimit = 7);

        await Topology.DeclareAsync(broker.Connection, options, CancellationToken.None);

        var line = (await Rabbitmqctl.Shared.RunAsync("list_queues", "-q", "name", "type", "durable", "arguments"))
            .Split('\n').Single(l => l.StartsWith(options.JobsQueue + "\t", StringComparison.Ordinal));
        Assert.Contains("\tquorum\t", line);
        Assert.Contains("\ttrue\t", line);
        Assert.Contains("x-delivery-limit", line);
        Assert.Contains(",7}", line);
        Assert.Contains(options.EffectiveDeadLetterQueue, line);
        Assert.Contains("at-least-once", line);
        Assert.Contains("reject-publish", line);
    }

    [Fact]
    public async Task DeclareAsync_ResultsAndDeadLetterQueues_AreDurableQuorumQueues()
    {
        var options = broker.NewOptions("topology-quorum");

        await Topology.DeclareAsync(broker.Connection, options, CancellationToken.None);

        var lines = (await Rabbitmqctl.Shared.RunAsync("list_queues", "-q", "name", "type", "durable")).Split('\n');
        foreach (var queue in new[] { options.ResultsQueue, options.EffectiveDeadLetterQueue })
            Assert.Equal($"{queue}\tquorum\ttrue", lines.Single(l => l.StartsWith(queue + "\t", StringComparison.Ordinal)).TrimEnd());
    }

    [Fact]
    public async Task DeclareAsync_ExistingClassicResultsQueue_ThrowsMismatchNamingQueueAndMigration()
    {
        var options = broker.NewOptions("classic-results");
        await broker.DeclareClassicQueueAsync(options.ResultsQueue);

        var ex = await Assert.ThrowsAsync<TopologyMismatchException>(() => Topology.DeclareAsync(broker.Connection, options, CancellationToken.None));

        Assert.Equal(options.ResultsQueue, ex.Queue);
        Assert.Contains("x-queue-type", ex.Message);
        Assert.Contains($"ops/rabbitmq/migrate-to-quorum.sh park {options.ResultsQueue}", ex.Message);
        Assert.Contains($"migrate-to-quorum.sh restore {options.ResultsQueue}", ex.Message);
    }

    [Fact]
    public async Task DeclareAsync_ExistingClassicJobsQueue_ThrowsMismatchNamingQueueAndArgument()
    {
        var options = broker.NewOptions("mismatch");
        await broker.DeclareClassicQueueAsync(options.JobsQueue);

        var ex = await Assert.ThrowsAsync<TopologyMismatchException>(() => Topology.DeclareAsync(broker.Connection, options, CancellationToken.None));

        Assert.Equal(options.JobsQueue, ex.Queue);
        Assert.Contains($"Queue '{options.JobsQueue}' already exists with other settings", ex.Message);
        Assert.Contains("x-queue-type", ex.Message);
        Assert.Contains("RabbitMq:DeclareTopology=false", ex.Message);
        // The shared connection survives: a 406 closes only the declaring channel.
        Assert.True(broker.Connection.IsOpen);
    }

    [Fact]
    public async Task Worker_JobsQueueWithOtherSettings_LogsOneClearLineAndStopsTheHost()
    {
        var options = broker.NewOptions("worker-mismatch");
        await broker.DeclareClassicQueueAsync(options.JobsQueue);
        var logs = new System.Collections.Concurrent.ConcurrentQueue<(Microsoft.Extensions.Logging.LogLevel Level, int EventId, string Message)>();
        using var host = TestWorker.Build(options, new TestJobHandler(), output, logs);
        var lifetime = (Microsoft.Extensions.Hosting.IHostApplicationLifetime)host.Services.GetService(typeof(Microsoft.Extensions.Hosting.IHostApplicationLifetime))!;
        var stopping = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lifetime.ApplicationStopping.Register(() => stopping.TrySetResult());

        try
        {
            await host.StartAsync();
            await stopping.Task.WaitAsync(Waits.Seconds(20));

            var critical = Assert.Single(logs, l => l.Level == Microsoft.Extensions.Logging.LogLevel.Critical);
            Assert.Equal(2011, critical.EventId);
            Assert.Contains($"Queue '{options.JobsQueue}' already exists with other settings", critical.Message);
            Assert.Contains("x-queue-type", critical.Message);
            Assert.Equal(1, Environment.ExitCode);
        }
        finally
        {
            Environment.ExitCode = 0; // the test process's own exit code is not the worker's
            using var timeout = new CancellationTokenSource(Waits.Seconds(20));
            await host.StopAsync(timeout.Token);
        }
    }

    [Fact]
    public async Task Worker_DeclareTopologyOffAndQueueMissing_WaitsThenConsumesOnceDeclared()
    {
        var options = broker.NewOptions("late-queue", o => o.DeclareTopology = false);
        await using var worker = await StartWithoutWaitingAsync(options);
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        Assert.True(worker.Status.IsConnected);
        Assert.False(worker.Status.IsConsuming);

        await Topology.DeclareAsync(broker.Connection, options, CancellationToken.None);
        await worker.WaitUntilAsync(() => worker.Status.IsConsuming, "the worker consumes the queue an operator declared", TimeSpan.FromSeconds(30));
        await broker.PublishJobAsync(options.JobsQueue, RabbitMqFixture.JobBody("late"), p => p.MessageId = "late");

        Assert.Equal("late", (await broker.GetAsync(options.ResultsQueue)).BasicProperties.MessageId);
    }

    private async Task<TestWorker> StartWithoutWaitingAsync(RabbitMqOptions options)
    {
        var worker = TestWorker.Create(options, output);
        await worker.StartHostAsync();
        return worker;
    }

    [Fact]
    public async Task DeclareAsync_OtherDeliveryLimit_ThrowsMismatch()
    {
        var options = broker.NewOptions("limit");
        await Topology.DeclareAsync(broker.Connection, options, CancellationToken.None);
        options.DeliveryLimit = options.DeliveryLimit + 1;

        var ex = await Assert.ThrowsAsync<TopologyMismatchException>(() => Topology.DeclareAsync(broker.Connection, options, CancellationToken.None));

        Assert.Contains("x-delivery-limit", ex.Message);
    }
}
