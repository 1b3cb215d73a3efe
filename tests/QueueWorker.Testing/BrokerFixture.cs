using System.Collections.Concurrent;
using RabbitMQ.Client;

namespace QueueWorker.Testing;

/// <summary>
/// A connection to a real broker (the shared one, <c>QW_TEST_RABBITMQ_URI</c>, unless given another URI such as a
/// private node's) and the temporary queues of the tests: every queue it names or is told it owns is deleted at the
/// end, and no other (other test runs share the broker). Usable as a class or collection fixture. An unreachable
/// broker FAILS the tests with how to start one; they never skip.
/// </summary>
public class BrokerFixture : IAsyncLifetime, IAsyncDisposable
{
    private readonly ConcurrentQueue<string> _queues = new();
    private readonly SemaphoreSlim _publisherLock = new(1, 1);
    private IConnection? _connection;
    private IChannel? _publisher;

    /// <summary>The shared broker (xunit's constructor for a fixture).</summary>
    public BrokerFixture()
        : this(TestSettings.RabbitMqUri)
    {
    }

    /// <summary>Another broker, e.g. a <see cref="PrivateRabbitNode"/>; call <see cref="InitializeAsync"/> (or use <see cref="ConnectAsync"/>).</summary>
    protected BrokerFixture(string uri, string clientName = "queueworker-tests")
    {
        Uri = uri;
        ClientName = clientName;
    }

    public string Uri { get; }

    /// <summary>The connection's client-provided name, as rabbitmqctl list_connections shows it.</summary>
    public string ClientName { get; }

    public IConnection Connection => _connection ?? throw new InvalidOperationException("The broker fixture is not initialised.");

    /// <summary>A connected fixture on <paramref name="uri"/> (default: the shared broker), to dispose when done.</summary>
    public static async Task<BrokerFixture> ConnectAsync(string? uri = null, string clientName = "queueworker-tests")
    {
        var fixture = new BrokerFixture(uri ?? TestSettings.RabbitMqUri, clientName);
        await fixture.InitializeAsync();
        return fixture;
    }

    public async Task InitializeAsync()
    {
        // The client recovers the connection by itself, quickly: tests restart brokers under it.
        var factory = new ConnectionFactory { Uri = new Uri(Uri), ClientProvidedName = ClientName, NetworkRecoveryInterval = TimeSpan.FromSeconds(1) };
        try
        {
            using var timeout = new CancellationTokenSource(Waits.BrokerConnect);
            _connection = await factory.CreateConnectionAsync(timeout.Token);
        }
        catch (Exception ex)
        {
            throw new InvalidOperationException(
                $"RabbitMQ is not reachable at {Where(Uri)} ({ex.GetBaseException().Message}). These integration tests need a real broker: " +
                $"run ./test.sh (it starts one with ops/rabbitmq/start-local.sh), or point {TestSettings.RabbitMqUriVariable} at one.", ex);
        }
    }

    /// <summary>A queue name no other test (or test run) uses: <c>&lt;prefix&gt;.test-&lt;12 hex&gt;</c>. Not owned: see <see cref="NewQueueName"/>.</summary>
    public static string UniqueName(string prefix) => $"{prefix}.test-{Guid.NewGuid().ToString("N")[..12]}";

    /// <summary>A unique queue name, deleted when the fixture is disposed.</summary>
    public string NewQueueName(string role) => Own($"qw-test.{role}.{Guid.NewGuid():N}");

    /// <summary>Deletes <paramref name="queue"/> on dispose, whoever declares it (often the worker under test).</summary>
    public string Own(string queue)
    {
        _queues.Enqueue(queue);
        return queue;
    }

    /// <summary>Declares a durable classic queue (or an auto-delete one), deleted on dispose.</summary>
    public async Task<string> DeclareQueueAsync(string name, bool autoDelete = false)
    {
        await using var channel = await OpenChannelAsync(confirms: false);
        await channel.QueueDeclareAsync(Own(name), durable: !autoDelete, exclusive: false, autoDelete: autoDelete);
        return name;
    }

    /// <summary>Declares a durable quorum queue as the worker declares its results and dead-letter queues, deleted on dispose.</summary>
    public async Task<string> DeclareQuorumQueueAsync(string name)
    {
        await using var channel = await OpenChannelAsync(confirms: false);
        await channel.QueueDeclareAsync(Own(name), durable: true, exclusive: false, autoDelete: false,
            new Dictionary<string, object?> { ["x-queue-type"] = "quorum" });
        return name;
    }

    public async Task<IChannel> OpenChannelAsync(bool confirms = true) =>
        await Connection.CreateChannelAsync(new CreateChannelOptions(confirms, confirms));

    /// <summary>
    /// Publishes a message to <paramref name="queue"/> through the default exchange: persistent, JSON, mandatory,
    /// confirmed. No message_id or timestamp unless <paramref name="configure"/> sets them: tests of a job without them need that.
    /// </summary>
    public async Task PublishAsync(string queue, ReadOnlyMemory<byte> body, Action<BasicProperties>? configure = null)
    {
        var properties = new BasicProperties { ContentType = "application/json", DeliveryMode = DeliveryModes.Persistent };
        configure?.Invoke(properties);
        await (await PublisherAsync()).BasicPublishAsync(string.Empty, queue, mandatory: true, properties, body);
    }

    // One confirming channel for every publish (a channel per message is slow in a soak test); opened again when a
    // failed publish closed it, so one test's refused message does not fail the next one's.
    private async Task<IChannel> PublisherAsync()
    {
        await _publisherLock.WaitAsync();
        try
        {
            if (_publisher is { IsClosed: true })
            {
                await _publisher.DisposeAsync();
                _publisher = null;
            }
            return _publisher ??= await OpenChannelAsync(confirms: true);
        }
        finally
        {
            _publisherLock.Release();
        }
    }

    /// <summary>Takes one message from <paramref name="queue"/> (acked at once), or null when it is empty.</summary>
    public async Task<BasicGetResult?> TryGetAsync(string queue)
    {
        await using var channel = await OpenChannelAsync(confirms: false);
        return Copy(await channel.BasicGetAsync(queue, autoAck: true));
    }

    /// <summary>Polls <paramref name="queue"/> until a message arrives (acked on receipt); fails after the timeout (default <see cref="Waits.Message"/>; a given one is scaled as every wait is).</summary>
    public async Task<BasicGetResult> GetAsync(string queue, TimeSpan? timeout = null)
    {
        var limit = timeout is { } given ? Waits.Scale(given) : Waits.Message;
        await using var channel = await OpenChannelAsync(confirms: false);
        var deadline = DateTime.UtcNow + limit;
        while (DateTime.UtcNow < deadline)
        {
            if (Copy(await channel.BasicGetAsync(queue, autoAck: true)) is { } message)
                return message;
            await Task.Delay(50);
        }
        throw new TimeoutException($"No message arrived in queue '{queue}' within {limit.TotalSeconds} s.");
    }

    /// <summary>Reads the first message of <paramref name="queue"/> and puts it back (as an operator inspecting a queue would), or null when it is empty.</summary>
    public async Task<BasicGetResult?> PeekAsync(string queue)
    {
        await using var channel = await OpenChannelAsync(confirms: false);
        var message = await channel.BasicGetAsync(queue, autoAck: false);
        if (message is null)
            return null;
        var copy = Copy(message);
        await channel.BasicNackAsync(message.DeliveryTag, multiple: false, requeue: true);
        return copy;
    }

    /// <summary>Messages ready in <paramref name="queue"/> (not those delivered and unacked).</summary>
    public async Task<uint> MessageCountAsync(string queue)
    {
        await using var channel = await OpenChannelAsync(confirms: false);
        return (await channel.QueueDeclarePassiveAsync(queue)).MessageCount;
    }

    // Host, port and virtual host only: a message never needs the credentials, so nothing has to be masked.
    private static string Where(string uri) =>
        System.Uri.TryCreate(uri, UriKind.Absolute, out var parsed) ? $"{parsed.Host}:{(parsed.IsDefaultPort ? 5672 : parsed.Port)}{parsed.AbsolutePath}" : "an unparsable URI";

    // The body buffer belongs to the client until the handler returns: keep a copy.
    private static BasicGetResult? Copy(BasicGetResult? message) => message is null ? null :
        new BasicGetResult(message.DeliveryTag, message.Redelivered, message.Exchange, message.RoutingKey,
            message.MessageCount, message.BasicProperties, message.Body.ToArray());

    async ValueTask IAsyncDisposable.DisposeAsync() => await DisposeAsync();

    /// <summary>Deletes the owned queues (already gone is fine) and closes the connection.</summary>
    public virtual async Task DisposeAsync()
    {
        if (_connection is null)
            return;
        if (_publisher is not null)
        {
            try
            {
                await _publisher.CloseAsync();
            }
            catch (Exception)
            {
                // Already closed with its connection: nothing to close.
            }
            await _publisher.DisposeAsync();
            _publisher = null;
        }
        foreach (var queue in _queues)
        {
            try
            {
                await using var channel = await _connection.CreateChannelAsync();
                await channel.QueueDeleteAsync(queue, ifUnused: false, ifEmpty: false);
            }
            catch (Exception)
            {
                // Never declared, or already gone: nothing to clean.
            }
        }
        await _connection.CloseAsync();
        await _connection.DisposeAsync();
        _connection = null;
        GC.SuppressFinalize(this);
    }
}
