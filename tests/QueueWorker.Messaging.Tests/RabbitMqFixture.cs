using QueueWorker.Contracts;
using RabbitMQ.Client;

namespace QueueWorker.Messaging.Tests;

/// <summary>
/// The shared <see cref="BrokerFixture"/> (a connection to the real broker, temporary queues deleted at the end) with
/// what the messaging tests add: worker options on fresh queues, and jobs. An unreachable broker FAILS the tests.
/// </summary>
public sealed class RabbitMqFixture : BrokerFixture
{
    public const string UriVariable = TestSettings.RabbitMqUriVariable;

    private const string FixtureClientName = "queueworker-messaging-tests";

    public RabbitMqFixture()
        : base(TestSettings.RabbitMqUri, FixtureClientName)
    {
    }

    // Not public: xunit requires a collection fixture to have a single public constructor (a second one failed every test of the collection).
    internal RabbitMqFixture(string uri)
        : base(uri, FixtureClientName)
    {
    }

    /// <summary>Options on fresh, unique queues, with short timings for tests.</summary>
    public RabbitMqOptions NewOptions(string role, Action<RabbitMqOptions>? configure = null)
    {
        var jobs = NewQueueName(role + ".jobs");
        var options = new RabbitMqOptions
        {
            Uri = Uri,
            JobsQueue = jobs,
            ResultsQueue = NewQueueName(role + ".results"),
            DeadLetterQueue = NewQueueName(role + ".dlq"),
            DeliveryLimit = 3,
            Prefetch = 1,
            PublishRetries = 3,
            ShutdownGraceSeconds = 5,
            HeartbeatSeconds = 10,
            ClientName = $"qw-test-worker-{Guid.NewGuid():N}",
        };
        configure?.Invoke(options);
        Own(options.EffectiveParkedQueue); // declared by the worker under test
        return options;
    }

    /// <summary>Publishes a job (persistent, confirmed, a fresh message_id unless <paramref name="configure"/> sets one) to <paramref name="queue"/>.</summary>
    public Task PublishJobAsync(string queue, byte[] body, Action<BasicProperties>? configure = null) =>
        PublishAsync(queue, body, p =>
        {
            p.MessageId = Guid.NewGuid().ToString("N");
            configure?.Invoke(p);
        });

    public static byte[] JobBody(string id, string prompt = "Once upon a time") =>
        JobSerializer.Serialize(new JobRequest { Id = id, Prompt = prompt });

    /// <summary>Messages ready in <paramref name="queue"/> (not those delivered and unacked).</summary>
    public Task<uint> ReadyCountAsync(string queue) => MessageCountAsync(queue);

    /// <summary>Declares a durable (or auto-delete) classic queue, deleted at the end.</summary>
    public Task DeclareClassicQueueAsync(string queue, bool autoDelete = false) => DeclareQueueAsync(queue, autoDelete);
}

[CollectionDefinition(Name)]
public sealed class RabbitMqCollection : ICollectionFixture<RabbitMqFixture>
{
    public const string Name = "RabbitMQ";
}
