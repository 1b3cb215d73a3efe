using System.Collections.Concurrent;
using System.Text;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using QueueWorker.Contracts;

namespace QueueWorker.IntegrationTests;

/// <summary>
/// The producer's side of the tests: a real broker connection, temporary queues it deletes at the end,
/// publishing jobs and collecting results. Fails (never skips) when the broker is unreachable.
/// </summary>
public sealed class TestBroker : IAsyncDisposable
{
    private readonly IConnection _connection;
    private readonly IChannel _channel;
    private readonly List<string> _ownedQueues = [];

    private TestBroker(IConnection connection, IChannel channel)
    {
        _connection = connection;
        _channel = channel;
    }

    public IChannel Channel => _channel;

    public static Task<TestBroker> ConnectAsync() => ConnectAsync(TestEnvironment.RabbitMqUri);

    /// <summary>Connects to the broker at <paramref name="uri"/> (e.g. a test's private broker). The client recovers the connection by itself.</summary>
    public static async Task<TestBroker> ConnectAsync(string uri)
    {
        var factory = new ConnectionFactory { Uri = new Uri(uri), ClientProvidedName = "queueworker-tests", NetworkRecoveryInterval = TimeSpan.FromSeconds(1) };
        IConnection connection;
        try
        {
            connection = await factory.CreateConnectionAsync();
        }
        catch (Exception ex)
        {
            throw new InvalidOperationException(
                $"RabbitMQ is not reachable at {uri} ({ex.Message}). Start it with ops/rabbitmq/start-local.sh (test.sh does).", ex);
        }
        var channel = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
        return new TestBroker(connection, channel);
    }

    public static string UniqueName(string prefix) => $"{prefix}.test-{Guid.NewGuid().ToString("N")[..12]}";

    /// <summary>A durable queue for this test run, deleted on dispose.</summary>
    public async Task<string> DeclareQueueAsync(string name)
    {
        await _channel.QueueDeclareAsync(name, durable: true, exclusive: false, autoDelete: false);
        _ownedQueues.Add(name);
        return name;
    }

    /// <summary>Deleted on dispose even if someone else (the worker) declared it.</summary>
    public void Own(string queue) => _ownedQueues.Add(queue);

    public async Task PublishAsync(string queue, byte[] body, Action<BasicProperties>? configure = null)
    {
        var props = new BasicProperties
        {
            ContentType = "application/json",
            DeliveryMode = DeliveryModes.Persistent,
            Timestamp = new AmqpTimestamp(DateTimeOffset.UtcNow.ToUnixTimeSeconds()),
        };
        configure?.Invoke(props);
        await _channel.BasicPublishAsync("", queue, mandatory: true, props, body);
    }

    public Task PublishAsync(string queue, string json, Action<BasicProperties>? configure = null) =>
        PublishAsync(queue, Encoding.UTF8.GetBytes(json), configure);

    /// <summary>Collects the results arriving on <paramref name="queue"/> until disposed.</summary>
    public async Task<ResultCollector> CollectAsync(string queue)
    {
        var channel = await _connection.CreateChannelAsync();
        var collector = new ResultCollector(channel);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += async (_, ea) =>
        {
            collector.Add(new ReceivedResult(JobSerializer.DeserializeResult(ea.Body.Span), ea.BasicProperties.MessageId, ea.BasicProperties.CorrelationId,
                ea.BasicProperties.ContentType, ea.BasicProperties.DeliveryMode == DeliveryModes.Persistent));
            // Acked once recorded: a result in flight when the connection drops is redelivered, not lost to the test.
            try { await channel.BasicAckAsync(ea.DeliveryTag, multiple: false); } catch (Exception) { /* redelivered after recovery */ }
        };
        await channel.BasicConsumeAsync(queue, autoAck: false, consumer);
        return collector;
    }

    public async Task<uint> MessageCountAsync(string queue) => (await _channel.QueueDeclarePassiveAsync(queue)).MessageCount;

    /// <summary>Reads the first message of <paramref name="queue"/> and puts it back (as an operator inspecting a queue would), or null when it is empty.</summary>
    public async Task<BasicGetResult?> PeekAsync(string queue)
    {
        await using var channel = await _connection.CreateChannelAsync();
        var message = await channel.BasicGetAsync(queue, autoAck: false);
        if (message is null) return null;
        var copy = new BasicGetResult(message.DeliveryTag, message.Redelivered, message.Exchange, message.RoutingKey,
            message.MessageCount, message.BasicProperties, message.Body.ToArray());
        await channel.BasicNackAsync(message.DeliveryTag, multiple: false, requeue: true);
        return copy;
    }

    /// <summary>Takes one message from <paramref name="queue"/> (acked at once), or null when it is empty.</summary>
    public async Task<BasicGetResult?> GetAsync(string queue)
    {
        await using var channel = await _connection.CreateChannelAsync();
        var message = await channel.BasicGetAsync(queue, autoAck: true);
        // The body buffer belongs to the client: keep a copy.
        return message is null ? null : new BasicGetResult(message.DeliveryTag, message.Redelivered, message.Exchange, message.RoutingKey,
            message.MessageCount, message.BasicProperties, message.Body.ToArray());
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var queue in _ownedQueues)
        {
            try { await _channel.QueueDeleteAsync(queue); } catch { /* already gone */ }
        }
        await _channel.CloseAsync();
        await _connection.CloseAsync();
    }
}

public sealed record ReceivedResult(JobResult Result, string? MessageId, string? CorrelationId, string? ContentType, bool Persistent);

public sealed class ResultCollector(IChannel channel) : IAsyncDisposable
{
    private readonly ConcurrentQueue<ReceivedResult> _results = new();
    private readonly SemaphoreSlim _arrived = new(0);

    public IReadOnlyCollection<ReceivedResult> All => _results.ToArray();

    internal void Add(ReceivedResult result)
    {
        _results.Enqueue(result);
        _arrived.Release();
    }

    /// <summary>Waits until <paramref name="count"/> results have arrived in total.</summary>
    public async Task<IReadOnlyList<ReceivedResult>> WaitForAsync(int count, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (_results.Count < count) await _arrived.WaitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"Expected {count} results within {timeout.TotalSeconds:F0} s, got {_results.Count}.");
        }
        return _results.ToArray();
    }

    /// <summary>Waits until every one of <paramref name="ids"/> has at least one result.</summary>
    public async Task WaitForIdsAsync(IReadOnlyCollection<string> ids, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            var seen = _results.Select(r => r.Result.Id).ToHashSet(StringComparer.Ordinal);
            var missing = ids.Count(id => !seen.Contains(id));
            if (missing == 0) return;
            try { await _arrived.WaitAsync(cts.Token); }
            catch (OperationCanceledException) { throw new TimeoutException($"{missing} of {ids.Count} jobs still without a result after {timeout.TotalSeconds:F0} s ({_results.Count} results in all)."); }
        }
    }

    public async Task<ReceivedResult> WaitForIdAsync(string id, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            var found = _results.FirstOrDefault(r => r.Result.Id == id);
            if (found is not null) return found;
            try { await _arrived.WaitAsync(cts.Token); }
            catch (OperationCanceledException) { throw new TimeoutException($"No result for job {id} within {timeout.TotalSeconds:F0} s ({_results.Count} other results)."); }
        }
    }

    public async ValueTask DisposeAsync() => await channel.CloseAsync();
}
