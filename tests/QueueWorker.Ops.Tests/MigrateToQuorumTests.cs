using System.Text;
using QueueWorker.Messaging;
using RabbitMQ.Client;

namespace QueueWorker.Ops.Tests;

/// <summary>
/// ops/rabbitmq/migrate-to-quorum.sh on a private node (with the shovel plugin): the queues an older version declared
/// (classic results and dead-letter queues, a quorum jobs queue without the newer arguments) make the worker's declare
/// fail with a line naming the script; park, the worker's declare, restore: every message is back, in quorum queues.
/// </summary>
[Trait("Category", "Integration")]
public sealed class MigrateToQuorumTests(PrivateRabbitNode node) : IClassFixture<PrivateRabbitNode>
{
    [Fact]
    public async Task ParkDeclareRestore_OldClassicAndOldJobsQueues_EveryMessageKeptInQuorumQueues()
    {
        var options = new RabbitMqOptions { JobsQueue = "mig.jobs-" + Guid.NewGuid().ToString("N")[..8], ResultsQueue = "mig.results-" + Guid.NewGuid().ToString("N")[..8] };
        var queues = new[] { options.EffectiveDeadLetterQueue, options.ResultsQueue, options.JobsQueue };
        var factory = new ConnectionFactory { Uri = new Uri(node.Uri) };
        await using var connection = await factory.CreateConnectionAsync();

        // What the previous version declared, with messages in each queue.
        await using (var channel = await connection.CreateChannelAsync(new CreateChannelOptions(true, true)))
        {
            await channel.QueueDeclareAsync(options.EffectiveDeadLetterQueue, true, false, false);
            await channel.QueueDeclareAsync(options.ResultsQueue, true, false, false);
            await channel.QueueDeclareAsync(options.JobsQueue, true, false, false, new Dictionary<string, object?>
            {
                ["x-queue-type"] = "quorum",
                ["x-delivery-limit"] = options.DeliveryLimit,
                ["x-dead-letter-exchange"] = "",
                ["x-dead-letter-routing-key"] = options.EffectiveDeadLetterQueue,
            });
            foreach (var (queue, count) in queues.Zip(new[] { 2, 3, 4 }))
                for (var i = 0; i < count; i++)
                    await channel.BasicPublishAsync("", queue, true, new BasicProperties { MessageId = $"{queue}-{i}", Persistent = true }, Encoding.UTF8.GetBytes($"{{\"n\":{i}}}"));
        }

        // The worker's declare: refused, with the way out named.
        var mismatch = await Assert.ThrowsAsync<TopologyMismatchException>(() => Topology.DeclareAsync(connection, options, CancellationToken.None));
        Assert.Equal(options.EffectiveDeadLetterQueue, mismatch.Queue);
        Assert.Contains($"{Topology.MigrationScript} park {options.EffectiveDeadLetterQueue}", mismatch.Message);

        var park = await RunScriptAsync(["park", .. queues]);
        Assert.True(park.Code == 0, park.Output);
        var parked = await node.Ctl.RunAsync("list_queues", "-q", "--no-table-headers", "name");
        Assert.DoesNotContain(options.ResultsQueue + "\n", parked + "\n", StringComparison.Ordinal);

        // A worker of this version starts: its declare now works.
        await Topology.DeclareAsync(connection, options, CancellationToken.None);
        var restore = await RunScriptAsync(["restore", .. queues]);
        Assert.True(restore.Code == 0, restore.Output);
        // Again: nothing left to restore, no harm.
        var again = await RunScriptAsync(["restore", .. queues]);
        Assert.True(again.Code == 0, again.Output);

        var table = await node.Ctl.RunAsync("list_queues", "-q", "--no-table-headers", "name", "type");
        foreach (var queue in queues)
        {
            Assert.Contains($"{queue}\tquorum", table, StringComparison.Ordinal);
            Assert.DoesNotContain($"{queue}.migrating", table, StringComparison.Ordinal);
        }
        await using var reader = await connection.CreateChannelAsync();
        foreach (var (queue, count) in queues.Zip(new[] { 2, 3, 4 }))
        {
            var ids = new List<string>();
            while (await reader.BasicGetAsync(queue, autoAck: true) is { } message)
                ids.Add(message.BasicProperties.MessageId!);
            Assert.Equal(Enumerable.Range(0, count).Select(i => $"{queue}-{i}"), ids.Order(StringComparer.Ordinal));
        }
    }

    [Fact]
    public async Task Declare_JobsQueueOfTheOlderVersion_RefusedNamingTheQueueAndTheScript()
    {
        // The older jobs queue was already a quorum queue, without x-dead-letter-strategy and x-overflow: the broker
        // compares those too, so it needs the same migration.
        var options = new RabbitMqOptions { JobsQueue = "mig.oldjobs-" + Guid.NewGuid().ToString("N")[..8], ResultsQueue = "mig.res-" + Guid.NewGuid().ToString("N")[..8] };
        var factory = new ConnectionFactory { Uri = new Uri(node.Uri) };
        await using var connection = await factory.CreateConnectionAsync();
        await using (var channel = await connection.CreateChannelAsync())
        {
            await channel.QueueDeclareAsync(options.JobsQueue, true, false, false, new Dictionary<string, object?>
            {
                ["x-queue-type"] = "quorum",
                ["x-delivery-limit"] = options.DeliveryLimit,
                ["x-dead-letter-exchange"] = "",
                ["x-dead-letter-routing-key"] = options.EffectiveDeadLetterQueue,
            });
        }

        var mismatch = await Assert.ThrowsAsync<TopologyMismatchException>(() => Topology.DeclareAsync(connection, options, CancellationToken.None));

        Assert.Equal(options.JobsQueue, mismatch.Queue);
        Assert.Contains($"{Topology.MigrationScript} park {options.JobsQueue}", mismatch.Message);
    }

    [Fact]
    public async Task Restore_BeforeTheWorkerDeclaredTheQueue_FailsSayingWhatToDo()
    {
        var missing = "mig.none-" + Guid.NewGuid().ToString("N")[..8];
        var result = await RunScriptAsync(["restore", missing]);
        Assert.NotEqual(0, result.Code);
        Assert.Contains($"{missing} does not exist yet: start one worker", result.Output);
    }

    private Task<ProcessResult> RunScriptAsync(string[] arguments) =>
        ProcessRunner.RunAsync("bash", [Repo.PathOf("ops/rabbitmq/migrate-to-quorum.sh"), .. arguments],
            new Dictionary<string, string> { ["RABBITMQ_NODENAME"] = node.Node, ["QW_TIMEOUT"] = "120" }, Waits.Seconds(300));
}
