using System.Text;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace QueueWorker.Ops.Tests;

/// <summary>
/// The users of ops/rabbitmq/definitions.json on a real broker: the worker may read jobs and dead letters and
/// publish results (and parked jobs) only, the producer may publish jobs and read results and its reply queues, KEDA may do nothing
/// over AMQP. The passwords are the documented examples, so these tests also prove the hashes.
/// </summary>
[Collection(BrokerCollection.Name)]
[Trait("Category", "Integration")]
public sealed class LeastPrivilegeTests(DefinitionsFixture broker)
{
    private const ushort AccessRefused = 403;

    private static readonly Messaging.RabbitMqOptions Options = Definitions.WorkerOptions();

    private Task<IConnection> WorkerAsync() => broker.ConnectAsync(Definitions.WorkerUser, "ChangeMeWorker1");
    private Task<IConnection> ProducerAsync() => broker.ConnectAsync(Definitions.ProducerUser, "ChangeMeProducer1");
    private Task<IConnection> KedaAsync() => broker.ConnectAsync(Definitions.KedaUser, "ChangeMeKeda1");

    /// <summary>
    /// Redeclaring (not passively) needs configure permission, and the broker refuses it with 406 when the
    /// arguments differ from the queue's: success means definitions.json and the worker declare the same queues.
    /// </summary>
    [Fact]
    public async Task Worker_DeclaresItsQueuesWithItsOwnArguments_OverTheDefinitionsQueues()
    {
        await using var connection = await WorkerAsync();
        await using var channel = await connection.CreateChannelAsync();
        // The worker's own declarations (Topology), not a copy: a change there must be made in definitions.json too.
        var jobsArguments = Messaging.Topology.JobsQueueArguments(Options);
        await channel.QueueDeclareAsync(Options.EffectiveDeadLetterQueue, durable: true, exclusive: false, autoDelete: false, arguments: Messaging.Topology.QuorumQueueArguments());
        await channel.QueueDeclareAsync(Options.ResultsQueue, durable: true, exclusive: false, autoDelete: false, arguments: Messaging.Topology.QuorumQueueArguments());
        await channel.QueueDeclareAsync(Options.EffectiveParkedQueue, durable: true, exclusive: false, autoDelete: false, arguments: Messaging.Topology.ParkedQueueArguments);
        var ok = await channel.QueueDeclareAsync(Options.JobsQueue, durable: true, exclusive: false, autoDelete: false, arguments: jobsArguments);
        Assert.Equal(Options.JobsQueue, ok.QueueName);
    }

    [Fact]
    public async Task Worker_OtherDeliveryLimit_IsRefusedAsDifferentArguments()
    {
        // The check above could pass if the broker ignored arguments: it does not.
        await using var connection = await WorkerAsync();
        await using var channel = await connection.CreateChannelAsync();
        var ex = await Assert.ThrowsAsync<OperationInterruptedException>(() => channel.QueueDeclareAsync(Options.JobsQueue, true, false, false,
            new Dictionary<string, object?>(Messaging.Topology.JobsQueueArguments(Options)) { ["x-delivery-limit"] = Options.DeliveryLimit + 1 }));
        Assert.Equal((ushort)406, ex.ShutdownReason?.ReplyCode);
    }

    [Theory]
    [InlineData("results")]
    [InlineData("parked")]
    public async Task Worker_ReadsFromResultsOrParkedQueue_IsRefused(string which)
    {
        var queue = which == "results" ? Options.ResultsQueue : Options.EffectiveParkedQueue;
        await using var connection = await WorkerAsync();
        await ExpectRefusedAsync(connection, ch => ch.BasicGetAsync(queue, autoAck: true));
    }

    [Fact]
    public async Task Worker_ReadsTheDeadLetterQueue_Allowed()
    {
        // RabbitMq:AnswerDeadLetters: the worker consumes the DLQ to answer and park what it holds.
        await using var connection = await WorkerAsync();
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueueDeclarePassiveAsync(Options.EffectiveDeadLetterQueue);
        var ok = await channel.BasicConsumeAsync(Options.EffectiveDeadLetterQueue, autoAck: false, new AsyncDefaultBasicConsumer(channel));
        await channel.BasicCancelAsync(ok);
        Assert.True(channel.IsOpen);
    }

    [Fact]
    public async Task Worker_DeclaresAQueueNotItsOwn_IsRefused()
    {
        await using var connection = await WorkerAsync();
        await ExpectRefusedAsync(connection, ch => ch.QueueDeclareAsync("qw-ops-other", false, false, true, null));
    }

    [Fact]
    public async Task Worker_PublishesToAnotherExchange_IsRefused()
    {
        await using var connection = await WorkerAsync();
        await ExpectRefusedAsync(connection, async ch =>
        {
            await ch.BasicPublishAsync("amq.topic", "x", Encoding.UTF8.GetBytes("{}"));
            await ch.QueueDeclarePassiveAsync(Options.JobsQueue); // a round trip: the refusal closes the channel
        });
    }

    [Fact]
    public async Task ProducerAndWorker_JobAndResultRoundTrip_WithServerNamedReplyQueue()
    {
        await using var producer = await ProducerAsync();
        await using var worker = await WorkerAsync();
        await using var p = await producer.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
        await using var w = await worker.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));

        var reply = await p.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true);
        Assert.StartsWith("amq.gen-", reply.QueueName, StringComparison.Ordinal);

        var id = Guid.NewGuid().ToString("N");
        await p.BasicPublishAsync("", Options.JobsQueue, mandatory: true,
            new BasicProperties { MessageId = id, ReplyTo = reply.QueueName, CorrelationId = "c-" + id, Persistent = true },
            Encoding.UTF8.GetBytes($$"""{"id":"{{id}}","prompt":"hi"}"""));

        var job = await GetAsync(w, Options.JobsQueue);
        Assert.Equal(id, job.BasicProperties.MessageId);
        await w.BasicPublishAsync("", job.BasicProperties.ReplyTo!, mandatory: true,
            new BasicProperties { MessageId = id, CorrelationId = job.BasicProperties.CorrelationId }, Encoding.UTF8.GetBytes("{}"));
        await w.BasicPublishAsync("", Options.ResultsQueue, mandatory: true, new BasicProperties { MessageId = id }, Encoding.UTF8.GetBytes("{}"));
        await w.BasicAckAsync(job.DeliveryTag, multiple: false);

        Assert.Equal("c-" + id, (await GetAsync(p, reply.QueueName)).BasicProperties.CorrelationId);
        Assert.Equal(id, (await GetAsync(p, Options.ResultsQueue)).BasicProperties.MessageId);
    }

    [Theory]
    [InlineData("jobs")]
    [InlineData("dlq")]
    public async Task Producer_ReadsJobsOrDeadLetters_IsRefused(string which)
    {
        var queue = which == "jobs" ? Options.JobsQueue : Options.EffectiveDeadLetterQueue;
        await using var connection = await ProducerAsync();
        await ExpectRefusedAsync(connection, ch => ch.BasicGetAsync(queue, autoAck: false));
    }

    [Fact]
    public async Task Producer_DeclaresTheJobsQueue_IsRefused()
    {
        await using var connection = await ProducerAsync();
        await ExpectRefusedAsync(connection, ch => ch.QueueDeclareAsync(Options.JobsQueue, true, false, false, null));
    }

    [Fact]
    public async Task Keda_HasNoAmqpRights()
    {
        await using var connection = await KedaAsync();
        await ExpectRefusedAsync(connection, ch => ch.BasicGetAsync(Options.JobsQueue, autoAck: false));
        await ExpectRefusedAsync(connection, async ch =>
        {
            await ch.BasicPublishAsync("", Options.JobsQueue, Encoding.UTF8.GetBytes("{}"));
            await ch.QueueDeclarePassiveAsync(Options.JobsQueue);
        });
    }

    [Fact]
    public async Task WrongPassword_IsRejected()
    {
        await Assert.ThrowsAnyAsync<Exception>(() => broker.ConnectAsync(Definitions.WorkerUser, "ChangeMeWorker1-wrong"));
    }

    [Fact]
    public async Task ApplyUsersScript_TwiceOnANewVhost_GrantsWhatDefinitionsGrant()
    {
        var environment = new Dictionary<string, string>
        {
            ["RABBITMQ_NODENAME"] = DefinitionsFixture.Node,
            ["QW_VHOST"] = broker.ScriptVirtualHost,
            ["QW_USER_PREFIX"] = broker.ScriptUserPrefix,
        };
        var script = Repo.PathOf("ops/rabbitmq/apply-users.sh");
        for (var run = 1; run <= 2; run++)
        {
            var result = await ProcessRunner.RunAsync("bash", [script], environment);
            Assert.True(result.Code == 0, $"apply-users.sh run {run} failed: {result.Output}");
        }

        var granted = await DefinitionsFixture.PermissionsAsync(broker.ScriptVirtualHost);
        Assert.Equal(Definitions.Permissions(Definitions.WorkerUser), granted[$"{broker.ScriptUserPrefix}-worker"]);
        Assert.Equal(Definitions.Permissions(Definitions.ProducerUser), granted[$"{broker.ScriptUserPrefix}-producer"]);
        Assert.Equal(Definitions.Permissions(Definitions.KedaUser), granted[$"{broker.ScriptUserPrefix}-keda"]);

        // The script's default passwords are the documented examples.
        var factory = new ConnectionFactory { HostName = "127.0.0.1", VirtualHost = broker.ScriptVirtualHost, UserName = $"{broker.ScriptUserPrefix}-worker", Password = "ChangeMeWorker1" };
        await using var connection = await factory.CreateConnectionAsync();
        await ExpectRefusedAsync(connection, ch => ch.BasicGetAsync(Options.ResultsQueue, autoAck: true));
    }

    private static async Task<BasicGetResult> GetAsync(IChannel channel, string queue)
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            if (await channel.BasicGetAsync(queue, autoAck: false) is { } result)
            {
                if (queue.StartsWith("amq.gen-", StringComparison.Ordinal) || queue == Options.ResultsQueue)
                    await channel.BasicAckAsync(result.DeliveryTag, false);
                return result;
            }
            await Task.Delay(100);
        }
        throw new Xunit.Sdk.XunitException($"no message arrived in {queue}");
    }

    /// <summary>Runs an operation on a fresh channel and expects the broker to close it with 403 ACCESS_REFUSED.</summary>
    private static async Task ExpectRefusedAsync(IConnection connection, Func<IChannel, Task> operation)
    {
        await using var channel = await connection.CreateChannelAsync();
        var ex = await Assert.ThrowsAnyAsync<Exception>(() => operation(channel));
        var reason = (ex as OperationInterruptedException)?.ShutdownReason ?? channel.CloseReason;
        Assert.True(reason?.ReplyCode == AccessRefused, $"expected 403 ACCESS_REFUSED, got {reason?.ReplyCode} {reason?.ReplyText} ({ex.GetType().Name}: {ex.Message})");
    }
}
