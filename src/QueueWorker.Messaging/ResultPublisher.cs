using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using QueueWorker.Contracts;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace QueueWorker.Messaging;

/// <summary>
/// Publishes results with publisher confirms: <see cref="PublishAsync"/> completes only once the broker has confirmed
/// the message (so the job may then be acked), retrying transient failures with backoff (<see cref="ResiliencePipelines.CreatePublish"/>).
/// <para>
/// Routing: to the job's <c>reply_to</c> through the default exchange when set and allowed by <see cref="ReplyToPolicy"/>
/// (server-named queues, the direct reply-to pseudo-queue <c>amq.rabbitmq.reply-to</c>, names matching
/// <c>RabbitMq:ReplyToPattern</c>), else to <c>RabbitMq:ResultsQueue</c>; a result whose <c>reply_to</c> was refused carries a
/// warning saying so. Messages are mandatory: when the broker returns a
/// result because the <c>reply_to</c> queue no longer exists, the producer is gone and retrying cannot help, so the result
/// goes to the results queue instead (logged), keeping the promise that every job ends with a result somewhere. A result
/// the results queue itself cannot take (it does not exist) fails the publish: the job is nacked and requeued.
/// </para>
/// </summary>
public sealed class ResultPublisher : IAsyncDisposable
{
    public const string ResultType = "queueworker.result.v1";
    public const string JsonContentType = "application/json";
    /// <summary>RabbitMQ's direct reply-to: replies go straight to the caller's channel, no queue, not persisted.</summary>
    public const string DirectReplyToPrefix = "amq.rabbitmq.reply-to";

    private readonly RabbitMqConnection _connection;
    private readonly RabbitMqOptions _options;
    private readonly ILogger<ResultPublisher> _logger;
    private readonly TimeProvider _timeProvider;
    private readonly ResiliencePipeline _pipeline;
    private readonly ReplyToPolicy _replyTo;
    // Guards only which channel is current (opening or replacing it). The publishes themselves overlap: the client
    // numbers and sends each one under its own lock and every caller awaits its own confirm, so results of jobs that
    // end together wait for the broker once, not one confirm after another (measured: with one publish at a time a
    // 4-slot worker's tiny jobs reached about the rate of a loop publishing one at a time, 2–3× below the broker's).
    private readonly SemaphoreSlim _lock = new(1, 1);
    private IChannel? _channel;

    public ResultPublisher(RabbitMqConnection connection, IOptions<RabbitMqOptions> options, ILogger<ResultPublisher> logger, TimeProvider timeProvider,
        RetryRandomizer randomizer)
    {
        _connection = connection;
        _options = options.Value;
        _logger = logger;
        _timeProvider = timeProvider;
        _replyTo = new ReplyToPolicy(_options);
        _pipeline = ResiliencePipelines.CreatePublish(_options.PublishRetries, timeProvider, logger, randomizer: randomizer.Next);
    }

    /// <summary>Publishes <paramref name="result"/> for <paramref name="job"/> and waits for the broker's confirm. Returns the queue it went to.</summary>
    public async Task<string> PublishAsync(JobResult result, IncomingJob job, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(job);
        if (job.ReplyTo is { Length: > 0 } refused && !_replyTo.IsAllowed(refused))
        {
            Log.ReplyToNotAllowed(_logger, refused, result.Id, _options.ResultsQueue);
            result = result with { Warnings = [.. result.Warnings ?? [], ReplyToPolicy.Warning(refused)] };
            var refusedBody = JobSerializer.Serialize(result);
            await PublishToAsync(_options.ResultsQueue, result.Id, job.CorrelationId, persistent: true, refusedBody, cancellationToken).ConfigureAwait(false);
            return _options.ResultsQueue;
        }
        var body = JobSerializer.Serialize(result);
        if (job.ReplyTo is not { Length: > 0 } replyTo)
        {
            await PublishToAsync(_options.ResultsQueue, result.Id, job.CorrelationId, persistent: true, body, cancellationToken).ConfigureAwait(false);
            return _options.ResultsQueue;
        }
        var direct = replyTo.StartsWith(DirectReplyToPrefix, StringComparison.Ordinal);
        try
        {
            await PublishToAsync(replyTo, result.Id, job.CorrelationId, persistent: !direct, body, cancellationToken).ConfigureAwait(false);
            return replyTo;
        }
        catch (PublishReturnException)
        {
            Log.ReplyQueueMissing(_logger, replyTo, result.Id, _options.ResultsQueue);
            await PublishToAsync(_options.ResultsQueue, result.Id, job.CorrelationId, persistent: true, body, cancellationToken).ConfigureAwait(false);
            return _options.ResultsQueue;
        }
    }

    private Task PublishToAsync(string queue, string resultId, string? correlationId, bool persistent, byte[] body, CancellationToken cancellationToken)
    {
        var properties = new BasicProperties
        {
            MessageId = resultId,
            CorrelationId = correlationId,
            ContentType = JsonContentType,
            Type = ResultType,
            DeliveryMode = persistent ? DeliveryModes.Persistent : DeliveryModes.Transient,
            Timestamp = new AmqpTimestamp(_timeProvider.GetUtcNow().ToUnixTimeSeconds()),
        };
        return PublishMessageAsync(queue, properties, body, resultId, cancellationToken);
    }

    /// <summary>
    /// Publishes any message to <paramref name="queue"/> through the default exchange, mandatory, on the same confirm
    /// channel and retry pipeline as results, and waits for the broker's confirm: how a job is parked or put back at the
    /// end of the jobs queue. Throws when it cannot be published (a missing queue: <see cref="PublishReturnException"/>).
    /// </summary>
    /// <param name="logId">The id the retry log lines name.</param>
    public async Task PublishMessageAsync(string queue, BasicProperties properties, ReadOnlyMemory<byte> body, string logId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(properties);
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(ResiliencePipelines.ResultIdKey, logId);
        try
        {
            await _pipeline.ExecuteAsync(static async (ctx, state) =>
            {
                await state.Self.PublishOnceAsync(state.Queue, state.Properties, state.Body, ctx.CancellationToken).ConfigureAwait(false);
            }, context, (Self: this, Queue: queue, Properties: properties, Body: body)).ConfigureAwait(false);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private async Task PublishOnceAsync(string queue, BasicProperties properties, ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
    {
        IChannel channel;
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            channel = await GetChannelAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
        // With confirmation tracking this completes on the broker's ack, throws PublishException on a nack and
        // PublishReturnException when the mandatory message could not be routed. A channel closed meanwhile fails this
        // attempt (AlreadyClosedException, transient): the retry takes the replacement.
        await channel.BasicPublishAsync(string.Empty, queue, mandatory: true, properties, body, cancellationToken).ConfigureAwait(false);
    }

    private async Task<IChannel> GetChannelAsync(CancellationToken cancellationToken)
    {
        if (_channel is { IsOpen: true } open)
            return open;
        var connection = _connection.Current ?? await _connection.GetConnectionAsync(cancellationToken).ConfigureAwait(false);
        if (!connection.IsOpen || _connection.IsRecovering)
            throw new BrokerNotReadyException("the RabbitMQ connection is down; the client is reconnecting");
        if (_channel is { } closed)
        {
            // Closed while the connection is up: the broker closed the channel (a channel error), which automatic
            // recovery does not undo. Replace it.
            _channel = null;
            await closed.DisposeAsync().ConfigureAwait(false);
        }
        var channel = await connection.CreateChannelAsync(
            new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true),
            cancellationToken).ConfigureAwait(false);
        channel.ChannelShutdownAsync += OnChannelShutdownAsync;
        _channel = channel;
        return channel;
    }

    private Task OnChannelShutdownAsync(object sender, ShutdownEventArgs args)
    {
        if (args.Initiator == ShutdownInitiator.Peer && _connection.Current is { IsOpen: true })
            Log.PublisherChannelClosed(_logger, args.ReplyCode, args.ReplyText);
        return Task.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        if (_channel is { } channel)
        {
            _channel = null;
            try
            {
                if (channel.IsOpen)
                    await channel.CloseAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException or IOException)
            {
                // Already gone with its connection.
            }
            await channel.DisposeAsync().ConfigureAwait(false);
        }
        _lock.Dispose();
    }
}
