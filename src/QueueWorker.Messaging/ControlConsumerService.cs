using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using QueueWorker.Contracts;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace QueueWorker.Messaging;

/// <summary>
/// Hears control messages: binds an exclusive queue of its own, <c>{ControlExchange}.worker-{random}</c> (named, so a
/// least-privilege user can be granted exactly these names), to the <c>RabbitMq:ControlExchange</c>
/// fanout exchange (so every worker hears every message) and hands each cancel to <see cref="IControlHandler"/>. Auto-ack:
/// the queue lives and dies with this worker's connection, so a message could not outlive it anyway; a worker that was
/// not listening when a cancel was published does not know it (the README says so). Never stops the worker: a failure
/// is logged and the subscription tried again.
/// </summary>
public sealed class ControlConsumerService(RabbitMqConnection connection, IControlHandler handler, IOptions<RabbitMqOptions> options,
    ILogger<ControlConsumerService> logger, TimeProvider time) : BackgroundService
{
    private static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(5);
    private readonly RabbitMqOptions _options = options.Value;
    private readonly string _queueName = ControlQueueName(options.Value.ControlExchange);
    private IChannel? _channel;

    /// <summary>The exclusive queue bound to the control exchange; null until subscribed (for tests).</summary>
    public string? Queue { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        try
        {
            var conn = await connection.GetConnectionAsync(stoppingToken).ConfigureAwait(false);
            while (!stoppingToken.IsCancellationRequested)
            {
                // The client's recovery restores the queue, its binding and the consumer after a connection loss; a
                // channel closed for any other reason is opened again here.
                if (_channel is not { IsOpen: true } && conn.IsOpen && !connection.IsRecovering)
                {
                    try
                    {
                        await SubscribeAsync(conn, stoppingToken).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        Log.ControlSubscribeFailed(logger, _options.ControlExchange, ResiliencePipelines.Describe(ex));
                    }
                }
                await Task.Delay(RetryInterval, time, stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    private async Task SubscribeAsync(IConnection conn, CancellationToken cancellationToken)
    {
        if (_channel is { } old)
        {
            _channel = null;
            await old.DisposeAsync().ConfigureAwait(false);
        }
        var channel = await conn.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        try
        {
            if (_options.DeclareTopology)
                await Topology.DeclareControlExchangeAsync(channel, _options, cancellationToken).ConfigureAwait(false);
            var queue = await channel.QueueDeclareAsync(_queueName, durable: false, exclusive: true, autoDelete: true,
                cancellationToken: cancellationToken).ConfigureAwait(false);
            await channel.QueueBindAsync(queue.QueueName, _options.ControlExchange, "", cancellationToken: cancellationToken).ConfigureAwait(false);
            var consumer = new AsyncEventingBasicConsumer(channel);
            consumer.ReceivedAsync += (_, delivery) =>
            {
                OnMessage(delivery.Body.Span);
                return Task.CompletedTask;
            };
            await channel.BasicConsumeAsync(queue.QueueName, autoAck: true, consumer, cancellationToken).ConfigureAwait(false);
            _channel = channel;
            Queue = queue.QueueName;
            Log.ControlSubscribed(logger, _options.ControlExchange, queue.QueueName);
        }
        catch
        {
            await channel.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>This worker's control queue: <c>{exchange}.worker-{12 hex digits}</c>, new for each process.</summary>
    public static string ControlQueueName(string exchange) => $"{exchange}.worker-{Guid.NewGuid().ToString("N")[..12]}";

    /// <summary>Parses one control message and hands it over; never throws (the client's dispatcher calls it).</summary>
    internal void OnMessage(ReadOnlySpan<byte> body)
    {
        var (request, error) = ControlMessage.Parse(body);
        if (request is null)
        {
            Log.ControlMessageInvalid(logger, error!);
            return;
        }
        try
        {
            var stopped = handler.Cancel(request);
            Log.CancelReceived(logger, request.JobIds.Count, request.BatchId ?? "-", stopped);
        }
        catch (Exception ex)
        {
            Log.ControlHandlerFailed(logger, ex);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        if (_channel is { } channel)
        {
            _channel = null;
            try
            {
                if (channel.IsOpen) await channel.CloseAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // The connection is going away too.
            }
            await channel.DisposeAsync().ConfigureAwait(false);
        }
    }
}

/// <summary>The handler when the host registers none: cancels nothing.</summary>
internal sealed class NullControlHandler : IControlHandler
{
    public int Cancel(CancelRequest request) => 0;
}
