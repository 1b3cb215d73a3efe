using Microsoft.Extensions.Logging;
using RabbitMQ.Client;

namespace QueueWorker.Messaging;

/// <summary>
/// Consumes the dead-letter queue (<c>RabbitMq:AnswerDeadLetters</c>): each dead-lettered job gets its <c>failed</c>
/// result (<see cref="DeadLetters"/> maps the broker's reason to the code) and is parked for replay, then acked; when
/// either publish fails it is nacked with requeue (a classic queue: no count, nothing lost) after a pause. Runs on its
/// own channel with a small prefetch; <see cref="JobConsumerService"/> keeps it subscribed and stops it.
/// </summary>
internal sealed class DeadLetterConsumer(JobParking parking, RabbitMqOptions options, ILogger logger, TimeProvider time, Action onClosed)
{
    public const ushort Prefetch = 2;
    private static readonly TimeSpan RetryPause = TimeSpan.FromSeconds(1);

    private readonly CancellationTokenSource _cts = new();
    private IChannel? _channel;
    private Consumer? _consumer;
    private IReadOnlyList<string> _tags = [];
    private int _inFlight;
    private bool _failing;

    public bool NeedsSubscription(IConnection connection, bool recovering)
    {
        if (_cts.IsCancellationRequested)
            return false;
        if (_channel is null)
            return true;
        if (!connection.IsOpen || recovering)
            return false;
        return !_channel.IsOpen || _consumer is not { CancelledByBroker: false };
    }

    /// <summary>Subscribes on a new channel; a failure (no read permission on the DLQ, …) is logged once per streak, never thrown.</summary>
    public async Task TrySubscribeAsync(IConnection connection, CancellationToken cancellationToken)
    {
        var old = _channel;
        _channel = null;
        _consumer = null;
        if (old is not null)
            await CloseAsync(old).ConfigureAwait(false);
        IChannel? channel = null;
        try
        {
            channel = await connection.CreateChannelAsync(new CreateChannelOptions(false, false, consumerDispatchConcurrency: 1),
                cancellationToken).ConfigureAwait(false);
            channel.ChannelShutdownAsync += (_, _) =>
            {
                onClosed();
                return Task.CompletedTask;
            };
            await channel.BasicQosAsync(0, Prefetch, global: false, cancellationToken).ConfigureAwait(false);
            var consumer = new Consumer(channel, this);
            // Every lane's dead-letter queue (one, the jobs queue's, without lanes), all answered and parked the same way.
            List<string> tags = [];
            foreach (var lane in options.LaneQueues)
                tags.Add(await channel.BasicConsumeAsync(lane.DeadLetterQueue, autoAck: false, consumer, cancellationToken).ConfigureAwait(false));
            _tags = tags;
            _channel = channel;
            _consumer = consumer;
            _failing = false;
            foreach (var lane in options.LaneQueues)
                Log.ConsumingDeadLetters(logger, lane.DeadLetterQueue, Prefetch, options.EffectiveParkedQueue);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            if (!_failing)
                Log.DeadLetterSubscribeFailed(logger, options.EffectiveDeadLetterQueue, ResiliencePipelines.Describe(ex), options.EffectiveParkedQueue);
            _failing = true;
            if (channel is not null)
                await CloseAsync(channel).ConfigureAwait(false);
        }
    }

    private void OnDelivered(IChannel channel, ulong deliveryTag, bool redelivered, IReadOnlyBasicProperties properties, ReadOnlyMemory<byte> body)
    {
        Interlocked.Increment(ref _inFlight);
        // Copied here: the client reuses the delivery's buffers once the callback returns.
        var copy = DeadLetters.RequeueProperties(properties, 0);
        copy.Headers = properties.Headers is { } h ? new Dictionary<string, object?>(h, StringComparer.Ordinal) : null;
        var job = DeliveryMapper.ToIncomingJob(properties, body, redelivered, time.GetUtcNow());
        _ = Task.Run(async () =>
        {
            try
            {
                await HandleAsync(channel, deliveryTag, job, copy).ConfigureAwait(false);
            }
            finally
            {
                Interlocked.Decrement(ref _inFlight);
            }
        });
    }

    private async Task HandleAsync(IChannel channel, ulong deliveryTag, IncomingJob job, BasicProperties properties)
    {
        var reason = DeadLetters.ReadReason(properties.Headers);
        var error = DeadLetters.ErrorFor(reason, options, properties.Expiration ?? DeadLetters.ReadOriginalExpiration(properties.Headers));
        var done = await parking.AnswerAndParkAsync(job, properties, reason, error, _cts.Token).ConfigureAwait(false);
        try
        {
            if (!channel.IsOpen)
                return; // the broker has put it back in the DLQ itself
            if (done)
            {
                await channel.BasicAckAsync(deliveryTag, multiple: false, CancellationToken.None).ConfigureAwait(false);
                return;
            }
            // Not at once: the DLQ hands it straight back, and the publish pipeline has just retried for a while.
            await Task.Delay(RetryPause, time, _cts.Token).ConfigureAwait(false);
            await channel.BasicNackAsync(deliveryTag, multiple: false, requeue: true, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Channel gone or stopping: the broker requeues the unsettled delivery; nothing is lost.
        }
    }

    /// <summary>Cancels the consumer, gives messages in hand up to <paramref name="wait"/> to be settled, closes the channel.</summary>
    public async Task StopAsync(TimeSpan wait)
    {
        if (_channel is { IsOpen: true } channel && _consumer is { CancelledByBroker: false })
        {
            foreach (var tag in _tags)
            {
                try
                {
                    await channel.BasicCancelAsync(tag, noWait: false, CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception)
                {
                    // Closing below settles it anyway.
                }
            }
        }
        var until = time.GetUtcNow() + wait;
        while (Volatile.Read(ref _inFlight) > 0 && time.GetUtcNow() < until)
            await Task.Delay(TimeSpan.FromMilliseconds(50), time).ConfigureAwait(false);
        await _cts.CancelAsync().ConfigureAwait(false);
        if (_channel is { } open)
        {
            _channel = null;
            await CloseAsync(open).ConfigureAwait(false);
        }
        _cts.Dispose();
    }

    private static async Task CloseAsync(IChannel channel)
    {
        try
        {
            if (channel.IsOpen)
                await channel.CloseAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Its connection is gone.
        }
        await channel.DisposeAsync().ConfigureAwait(false);
    }

    private sealed class Consumer(IChannel channel, DeadLetterConsumer owner) : AsyncDefaultBasicConsumer(channel)
    {
        private volatile bool _cancelledByBroker;

        public bool CancelledByBroker => _cancelledByBroker;

        public override Task HandleBasicDeliverAsync(string consumerTag, ulong deliveryTag, bool redelivered, string exchange,
            string routingKey, IReadOnlyBasicProperties properties, ReadOnlyMemory<byte> body, CancellationToken cancellationToken = default)
        {
            owner.OnDelivered(Channel, deliveryTag, redelivered, properties, body);
            return Task.CompletedTask;
        }

        public override async Task HandleBasicCancelAsync(string consumerTag, CancellationToken cancellationToken = default)
        {
            _cancelledByBroker = true;
            await base.HandleBasicCancelAsync(consumerTag, cancellationToken).ConfigureAwait(false);
            owner.OnClosedByBroker();
        }
    }

    private void OnClosedByBroker() => onClosed();
}
