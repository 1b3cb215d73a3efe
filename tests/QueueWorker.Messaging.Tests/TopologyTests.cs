using System.Diagnostics;
using RabbitMQ.Client;

namespace QueueWorker.Messaging.Tests;

[Collection(RabbitMqCollection.Name)]
public sealed class TopologyTests(RabbitMqFixture broker)
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

        var line = (await Rabbitmqctl.RunAsync("list_queues", "-q", "name", "type", "durable", "arguments"))
            .Split('\n').Single(l => l.StartsWith(options.JobsQueue + "\t", StringComparison.Ordinal));
        Assert.Contains("\tquorum\t", line);
        Assert.Contains("\ttrue\t", line);
        Assert.Contains("x-delivery-limit", line);
        Assert.Contains(",7}", line);
        Assert.Contains(options.EffectiveDeadLetterQueue, line);
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
    public async Task DeclareAsync_OtherDeliveryLimit_ThrowsMismatch()
    {
        var options = broker.NewOptions("limit");
        await Topology.DeclareAsync(broker.Connection, options, CancellationToken.None);
        options.DeliveryLimit = options.DeliveryLimit + 1;

        var ex = await Assert.ThrowsAsync<TopologyMismatchException>(() => Topology.DeclareAsync(broker.Connection, options, CancellationToken.None));

        Assert.Contains("x-delivery-limit", ex.Message);
    }
}

/// <summary>Runs rabbitmqctl against the test broker's node (QW_TEST_RABBITMQ_NODE, default rabbit@localhost).</summary>
public static class Rabbitmqctl
{
    public static string Node => Environment.GetEnvironmentVariable("QW_TEST_RABBITMQ_NODE") is { Length: > 0 } node ? node : "rabbit@localhost";

    public static async Task<string> RunAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo("rabbitmqctl") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("-n");
        start.ArgumentList.Add(Node);
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        using var process = Process.Start(start) ?? throw new InvalidOperationException("rabbitmqctl did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"rabbitmqctl {string.Join(' ', arguments)} exited {process.ExitCode}: {await stderr}");
        return await stdout;
    }
}
