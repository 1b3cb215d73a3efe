using System.Collections.Concurrent;
using System.Diagnostics;
using QueueWorker.Contracts;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace QueueWorker.Bench;

/// <summary>The queues of one benchmark worker (unique names; the worker declares them, the bench deletes them).</summary>
public sealed record WorkerQueues(string Jobs, string Results)
{
    public string DeadLetter => Jobs + ".dlq";

    /// <summary>The queue of a priority lane (<c>RabbitMq:Lanes</c>): <c>{Jobs}.{lane}</c>, as the worker names it.</summary>
    public string Lane(string lane) => QueueWorker.Messaging.RabbitMqOptions.LaneQueueName(Jobs, lane);
}

/// <summary>A result as it arrived: <see cref="ArrivedAt"/> is a <see cref="Stopwatch"/> timestamp taken on receipt; <see cref="Bytes"/> the message body's size.</summary>
public sealed record ArrivedResult(JobResult Result, long ArrivedAt, int Bytes = 0);

/// <summary>
/// The producer's side of the worker benchmark: one connection to the broker, uniquely named temporary queues per
/// worker (deleted at the end, and only those), jobs published as a producer would, results collected by job id.
/// </summary>
public sealed class BenchBroker : IAsyncDisposable
{
    private readonly IConnection _connection;
    private readonly IChannel _publish;
    private readonly List<string> _owned = [];
    private readonly List<string> _ownedExchanges = [];
    private readonly List<ResultStream> _streams = [];
    private readonly string _run = Guid.NewGuid().ToString("N")[..10];
    private readonly ConcurrentDictionary<string, ResultStream> _returnsTo = new();

    private BenchBroker(IConnection connection, IChannel publish, string uri)
    {
        _connection = connection;
        _publish = publish;
        Uri = uri;
        // An unroutable job (its queue gone) comes back instead of vanishing: fail its wait at once.
        _publish.BasicReturnAsync += (_, ea) =>
        {
            if (ea.BasicProperties.MessageId is { } id && _returnsTo.TryRemove(id, out var stream))
            {
                stream.Fail(id, new InvalidOperationException($"job {id} was returned by the broker: {ea.ReplyText} (queue '{ea.RoutingKey}')"));
            }

            return Task.CompletedTask;
        };
    }

    /// <summary>What every queue and exchange of this run is named with (<c>qw-bench.{run}.</c>): all of them are deleted at the end.</summary>
    public string Prefix => $"qw-bench.{_run}.";

    /// <summary>The broker address, without its password (for reports).</summary>
    public string Uri { get; }

    public static async Task<BenchBroker> ConnectAsync(string uri, CancellationToken cancellationToken)
    {
        var factory = new ConnectionFactory { Uri = new Uri(uri), ClientProvidedName = "qw-bench" };
        IConnection connection;
        try
        {
            connection = await factory.CreateConnectionAsync(cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new InvalidOperationException(
                $"RabbitMQ is not reachable at {QueueWorker.Messaging.SecretMasker.MaskUri(uri)} ({e.Message}). The worker benchmark needs a broker: start one (ops/rabbitmq/start-local.sh) " +
                "or point --broker-uri (or RabbitMq:Uri / RabbitMq__Uri) at one.", e);
        }

        // No publisher confirms: a job is published as fast as a producer can, so the wall time starts at the first publish.
        var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        return new BenchBroker(connection, channel, QueueWorker.Messaging.SecretMasker.MaskUri(uri));
    }

    /// <summary>Fresh queue names for one worker (and its <paramref name="lanes"/>' queues); they are deleted when the broker is disposed.</summary>
    public WorkerQueues NewQueues(string tag, IReadOnlyList<string>? lanes = null)
    {
        var prefix = Prefix + tag;
        var queues = new WorkerQueues(prefix + ".jobs", prefix + ".results");
        _owned.AddRange([queues.Jobs, queues.DeadLetter, queues.Jobs + ".parked", queues.Results]);
        foreach (var lane in lanes ?? [])
        {
            _owned.AddRange([queues.Lane(lane), queues.Lane(lane) + ".dlq"]);
        }

        return queues;
    }

    /// <summary>
    /// A control exchange of this run alone (<c>RabbitMq:ControlExchange</c> of its workers), deleted when the broker is
    /// disposed: the workers declare it, so a run leaves no <c>llm.control</c> behind on a broker that had none.
    /// </summary>
    public string NewControlExchange()
    {
        var name = Prefix + "control";
        if (!_ownedExchanges.Contains(name))
        {
            _ownedExchanges.Add(name);
        }

        return name;
    }

    /// <summary>Collects the results arriving on <paramref name="queue"/> (which must exist: the worker declares it at start).</summary>
    public async Task<ResultStream> ConsumeAsync(string queue, CancellationToken cancellationToken)
    {
        var channel = await _connection.CreateChannelAsync(cancellationToken: cancellationToken);
        var stream = new ResultStream(channel, queue);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += (_, ea) =>
        {
            var arrived = Stopwatch.GetTimestamp();
            stream.Deliver(ea.Body.Span, arrived);
            return Task.CompletedTask;
        };
        await channel.BasicConsumeAsync(queue, autoAck: true, consumer, cancellationToken);
        _streams.Add(stream);
        return stream;
    }

    /// <summary>Publishes one job (persistent, JSON, message id = job id) and returns the wait for its result.</summary>
    public async Task<Task<ArrivedResult>> PublishAsync(string queue, ResultStream results, JobRequest job, CancellationToken cancellationToken)
    {
        var id = job.Id ?? throw new ArgumentException("a benchmark job needs an id", nameof(job));
        var wait = results.Expect(id);
        _returnsTo[id] = results;
        var now = TimeProvider.System.GetUtcNow();
        var props = new BasicProperties
        {
            MessageId = id,
            ContentType = "application/json",
            DeliveryMode = DeliveryModes.Persistent,
            Timestamp = new AmqpTimestamp(now.ToUnixTimeSeconds()),
            // Millisecond publish time, as qw sends it: the worker's timings.queued_ms (the AMQP timestamp has whole seconds).
            Headers = new Dictionary<string, object?> { [QueueWorker.Messaging.DeliveryMapper.TimestampInMsHeader] = now.ToUnixTimeMilliseconds() },
        };
        await _publish.BasicPublishAsync("", queue, mandatory: true, props, JobSerializer.Serialize(job), cancellationToken);
        return wait;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var stream in _streams)
        {
            await stream.DisposeAsync();
        }

        foreach (var queue in _owned)
        {
            try
            {
                await _publish.QueueDeleteAsync(queue);
            }
            catch (Exception e) when (e is RabbitMQ.Client.Exceptions.OperationInterruptedException or RabbitMQ.Client.Exceptions.AlreadyClosedException)
            {
                // Already gone (or never declared because its worker failed to start).
            }
        }

        foreach (var exchange in _ownedExchanges)
        {
            try
            {
                await _publish.ExchangeDeleteAsync(exchange);
            }
            catch (Exception e) when (e is RabbitMQ.Client.Exceptions.OperationInterruptedException or RabbitMQ.Client.Exceptions.AlreadyClosedException)
            {
                // Never declared (no worker started).
            }
        }

        await _publish.CloseAsync();
        await _connection.CloseAsync();
        _connection.Dispose();
    }
}

/// <summary>Results of one results queue, matched to the jobs waiting for them by id.</summary>
public sealed class ResultStream(IChannel channel, string queue) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource<ArrivedResult>> _pending = new();
    private int _unexpected;

    public string Queue { get; } = queue;

    /// <summary>Results that matched no waiting job (e.g. of a job given up on earlier).</summary>
    public int Unexpected => Volatile.Read(ref _unexpected);

    internal Task<ArrivedResult> Expect(string id)
    {
        var tcs = new TaskCompletionSource<ArrivedResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_pending.TryAdd(id, tcs))
        {
            throw new InvalidOperationException($"job id {id} is already waiting for a result");
        }

        return tcs.Task;
    }

    internal void Deliver(ReadOnlySpan<byte> body, long arrivedAt)
    {
        JobResult result;
        try
        {
            result = JobSerializer.DeserializeResult(body);
        }
        catch (System.Text.Json.JsonException)
        {
            Interlocked.Increment(ref _unexpected);
            return;
        }

        if (_pending.TryRemove(result.Id, out var tcs))
        {
            tcs.TrySetResult(new ArrivedResult(result, arrivedAt, body.Length));
        }
        else
        {
            Interlocked.Increment(ref _unexpected);
        }
    }

    internal void Fail(string id, Exception error)
    {
        if (_pending.TryRemove(id, out var tcs))
        {
            tcs.TrySetException(error);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var (_, tcs) in _pending)
        {
            tcs.TrySetCanceled();
        }

        await channel.CloseAsync();
    }
}
