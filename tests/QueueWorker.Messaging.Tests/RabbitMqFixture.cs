using System.Collections.Concurrent;
using QueueWorker.Contracts;
using RabbitMQ.Client;

namespace QueueWorker.Messaging.Tests;

/// <summary>
/// A connection to the real broker shared by the integration tests, and uniquely named queues that it deletes at the
/// end (other helpers share this broker: only queues this fixture named are ever deleted). An unreachable broker FAILS
/// the tests with a clear message; they never skip.
/// </summary>
public sealed class RabbitMqFixture : IAsyncLifetime, IAsyncDisposable
{
    public const string UriVariable = "QW_TEST_RABBITMQ_URI";

    private readonly ConcurrentBag<string> _queues = [];
    private IConnection? _connection;

    public RabbitMqFixture()
        : this(Environment.GetEnvironmentVariable(UriVariable) is { Length: > 0 } uri ? uri : "amqp://guest:guest@127.0.0.1:5672/")
    {
    }

    // Not public: xunit requires a collection fixture to have a single public constructor (a second one failed every test of the collection).
    internal RabbitMqFixture(string uri) => Uri = uri;

    public string Uri { get; }

    public IConnection Connection => _connection ?? throw new InvalidOperationException("The fixture is not initialised.");

    public async Task InitializeAsync()
    {
        var factory = new ConnectionFactory { Uri = new Uri(Uri), ClientProvidedName = "queueworker-messaging-tests" };
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            _connection = await factory.CreateConnectionAsync(timeout.Token);
        }
        catch (Exception ex)
        {
            throw new InvalidOperationException(
                $"RabbitMQ is not reachable at {SecretMasker.MaskUri(Uri)} ({ex.GetBaseException().Message}). " +
                $"These integration tests need a real broker: start one with ops/rabbitmq/start-local.sh, or point {UriVariable} at one.", ex);
        }
    }

    /// <summary>A unique queue name, deleted when the tests end.</summary>
    public string NewQueueName(string role)
    {
        var name = $"qw-test.{role}.{Guid.NewGuid():N}";
        _queues.Add(name);
        return name;
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
        return options;
    }

    public async Task<IChannel> OpenChannelAsync(bool confirms = true) =>
        await Connection.CreateChannelAsync(new CreateChannelOptions(confirms, confirms));

    /// <summary>Publishes a job (persistent, confirmed) to <paramref name="queue"/>.</summary>
    public async Task PublishJobAsync(string queue, byte[] body, Action<BasicProperties>? configure = null)
    {
        await using var channel = await OpenChannelAsync();
        var properties = new BasicProperties { DeliveryMode = DeliveryModes.Persistent, ContentType = "application/json", MessageId = Guid.NewGuid().ToString("N") };
        configure?.Invoke(properties);
        await channel.BasicPublishAsync(string.Empty, queue, mandatory: true, properties, body);
    }

    public static byte[] JobBody(string id, string prompt = "Once upon a time") =>
        JobSerializer.Serialize(new JobRequest { Id = id, Prompt = prompt });

    /// <summary>Polls <paramref name="queue"/> until a message arrives (acked on receipt) or the timeout passes (then fails).</summary>
    public async Task<BasicGetResult> GetAsync(string queue, TimeSpan? timeout = null)
    {
        await using var channel = await OpenChannelAsync(confirms: false);
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (DateTime.UtcNow < deadline)
        {
            if (await channel.BasicGetAsync(queue, autoAck: true) is { } message)
            {
                // The body buffer belongs to the client: keep a copy.
                return new BasicGetResult(message.DeliveryTag, message.Redelivered, message.Exchange, message.RoutingKey,
                    message.MessageCount, message.BasicProperties, message.Body.ToArray());
            }
            await Task.Delay(50);
        }
        throw new TimeoutException($"No message arrived in queue '{queue}' within {(timeout ?? TimeSpan.FromSeconds(20)).TotalSeconds} s.");
    }

    /// <summary>Messages ready in <paramref name="queue"/> (not those delivered and unacked).</summary>
    public async Task<uint> ReadyCountAsync(string queue)
    {
        await using var channel = await OpenChannelAsync(confirms: false);
        var ok = await channel.QueueDeclarePassiveAsync(queue);
        return ok.MessageCount;
    }

    public async Task DeclareClassicQueueAsync(string queue, bool autoDelete = false)
    {
        await using var channel = await OpenChannelAsync(confirms: false);
        await channel.QueueDeclareAsync(queue, durable: !autoDelete, exclusive: false, autoDelete: autoDelete);
    }

    ValueTask IAsyncDisposable.DisposeAsync() => new(DisposeAsync());

    public async Task DisposeAsync()
    {
        if (_connection is null)
            return;
        foreach (var queue in _queues)
        {
            try
            {
                await using var channel = await _connection.CreateChannelAsync();
                await channel.QueueDeleteAsync(queue, ifUnused: false, ifEmpty: false);
            }
            catch (Exception)
            {
                // Never declared (or already gone): nothing to clean.
            }
        }
        await _connection.CloseAsync();
        await _connection.DisposeAsync();
        _connection = null;
    }
}

[CollectionDefinition(Name)]
public sealed class RabbitMqCollection : ICollectionFixture<RabbitMqFixture>
{
    public const string Name = "RabbitMQ";
}
