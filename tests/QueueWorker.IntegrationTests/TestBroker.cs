using System.Collections.Concurrent;
using System.Text;
using QueueWorker.Contracts;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace QueueWorker.IntegrationTests;

/// <summary>
/// The producer's side of the tests: the shared <see cref="BrokerFixture"/> (a real broker connection, temporary queues
/// deleted at the end) plus publishing jobs as producers do and collecting results. Fails (never skips) when the broker
/// is unreachable.
/// </summary>
public sealed class TestBroker : BrokerFixture
{
    private TestBroker(string uri)
        : base(uri)
    {
    }

    public static Task<TestBroker> ConnectAsync() => ConnectAsync(TestSettings.RabbitMqUri);

    /// <summary>Connects to the broker at <paramref name="uri"/> (e.g. a test's private broker). The client recovers the connection by itself.</summary>
    public static async Task<TestBroker> ConnectAsync(string uri)
    {
        var broker = new TestBroker(uri);
        await broker.InitializeAsync();
        return broker;
    }

    /// <summary>Publishes a job as a producer does: persistent, JSON, with a timestamp, confirmed.</summary>
    public Task PublishAsync(string queue, byte[] body, Action<BasicProperties>? configure = null) =>
        base.PublishAsync(queue, body, props =>
        {
            props.Timestamp = new AmqpTimestamp(DateTimeOffset.UtcNow.ToUnixTimeSeconds());
            configure?.Invoke(props);
        });

    public Task PublishAsync(string queue, string json, Action<BasicProperties>? configure = null) =>
        PublishAsync(queue, Encoding.UTF8.GetBytes(json), configure);

    /// <summary>Collects the results arriving on <paramref name="queue"/> until disposed.</summary>
    public async Task<ResultCollector> CollectAsync(string queue)
    {
        var channel = await Connection.CreateChannelAsync();
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
}

public sealed record ReceivedResult(JobResult Result, string? MessageId, string? CorrelationId, string? ContentType, bool Persistent);

/// <summary>The results arriving on one queue; its waits are scaled by <see cref="Waits"/> (longer on CI).</summary>
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
        timeout = Waits.Scale(timeout);
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
        timeout = Waits.Scale(timeout);
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
        timeout = Waits.Scale(timeout);
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
