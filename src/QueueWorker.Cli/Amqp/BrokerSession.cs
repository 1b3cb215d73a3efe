using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace QueueWorker.Cli.Amqp;

/// <summary>
/// One connection: a confirming publish channel, and a consume channel on an exclusive auto-delete
/// reply queue. It is lost as a whole (connection or either channel closes) and then replaced.
/// </summary>
internal sealed class BrokerSession
{
    private readonly IConnection _connection;
    private readonly IChannel _publish;
    private readonly IChannel _consume;
    // Publishes on one channel are serialised: concurrent confirm-tracked publishes on one channel have had bugs in 7.x.
    private readonly SemaphoreSlim _publishLock = new(1, 1);
    private readonly TaskCompletionSource _lost = new(TaskCreationOptions.RunContinuationsAsynchronously);
    // Ends a publish still waiting for its confirm when the connection goes.
    private readonly CancellationTokenSource _lostToken = new();
    private volatile string? _lostReason;

    private BrokerSession(IConnection connection, IChannel publish, IChannel consume, string replyQueue)
    {
        _connection = connection;
        _publish = publish;
        _consume = consume;
        ReplyQueue = replyQueue;
    }

    public string ReplyQueue { get; }
    public Task Lost => _lost.Task;
    public bool IsLost => _lost.Task.IsCompleted;
    public string? LostReason => _lostReason;

    public static async Task<BrokerSession> OpenAsync(IConnection connection, Func<BasicDeliverEventArgs, Task> onResult, CancellationToken cancellationToken)
    {
        var publish = await connection.CreateChannelAsync(
            new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
        var consume = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        var reply = await consume.QueueDeclareAsync(queue: "", durable: false, exclusive: true, autoDelete: true, arguments: null, cancellationToken: cancellationToken);
        var session = new BrokerSession(connection, publish, consume, reply.QueueName);

        connection.ConnectionShutdownAsync += (_, e) => session.OnShutdown(e);
        publish.ChannelShutdownAsync += (_, e) => session.OnShutdown(e);
        consume.ChannelShutdownAsync += (_, e) => session.OnShutdown(e);
        if (!connection.IsOpen) session.MarkLost(connection.CloseReason?.ReplyText ?? "connection closed");

        var consumer = new AsyncEventingBasicConsumer(consume);
        consumer.ReceivedAsync += (_, delivery) => onResult(delivery);
        // Auto-ack: a result lost with this client is recovered by publishing the job again.
        await consume.BasicConsumeAsync(reply.QueueName, autoAck: true, consumer, cancellationToken);
        return session;
    }

    public async Task PublishAsync(string queue, BasicProperties properties, ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _lostToken.Token);
        await _publishLock.WaitAsync(linked.Token);
        try
        {
            // Returns once the broker confirmed; throws PublishException on a nack or a return (mandatory, no such queue).
            await _publish.BasicPublishAsync(exchange: "", routingKey: queue, mandatory: true, basicProperties: properties, body: body, cancellationToken: linked.Token);
        }
        finally
        {
            _publishLock.Release();
        }
    }

    private Task OnShutdown(ShutdownEventArgs e)
    {
        MarkLost($"{e.ReplyCode} {e.ReplyText}".Trim());
        return Task.CompletedTask;
    }

    public void MarkLost(string reason)
    {
        _lostReason ??= reason;
        if (!_lost.TrySetResult()) return;
        try
        {
            _lostToken.Cancel();
        }
        catch (AggregateException)
        {
            // A callback of a cancelled publish threw: the publish is abandoned either way.
        }
    }

    /// <summary>Closes the connection; never throws (it may already be gone).</summary>
    public async Task DisposeQuietlyAsync()
    {
        MarkLost("closed by qw");
        try
        {
            if (_connection.IsOpen)
                await _connection.CloseAsync(TimeSpan.FromSeconds(2));
            await _connection.DisposeAsync();
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Closing a connection that is already going away: nothing left to do.
        }
    }
}
