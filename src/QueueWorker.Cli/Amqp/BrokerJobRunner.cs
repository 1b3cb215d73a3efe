using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using QueueWorker.Cli.Infrastructure;
using QueueWorker.Cli.Running;
using QueueWorker.Contracts;
using QueueWorker.Messaging;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace QueueWorker.Cli.Amqp;

/// <summary>
/// The producer side of the AMQP RPC convention. Each job is published persistent to the jobs queue
/// (the worker's, checked passively: qw never declares it, so it cannot disagree with the worker's
/// quorum arguments) with <c>message_id</c> = job id, a <c>correlation_id</c>, a timestamp and
/// <c>reply_to</c> = this client's exclusive reply queue, and confirmed by the broker. Results are
/// matched by correlation id; a second result for the same job is dropped.
/// When the connection is lost (broker restart), qw reconnects with back-off and publishes again
/// every job still waiting: its old reply queue died with the connection, so its result could never
/// arrive. Publishing again is safe because a job is keyed by its id (at-least-once, deduplicated here).
/// </summary>
internal sealed partial class BrokerJobRunner(RabbitMqOptions options, string connectionName, TimeProvider time, ILogger logger,
    RetryRandomizer? randomizer = null) : IJobRunner
{
    private readonly ConcurrentDictionary<string, Pending> _pending = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _disposed = new();
    private readonly Lock _gate = new();
    private Task<BrokerSession>? _session;


    private string QueueMissingStatus => $"{options.JobsQueue} does not exist; waiting for a worker to declare it";

    public string Description => $"{options.JobsQueue} on {SecretMasker.MaskUri(options.Uri)}";

    public RunnerCounters Counters { get; } = new();

    /// <summary>
    /// How long one job may keep being refused (the queue is full: <c>x-max-length</c> with <c>reject-publish</c>) before
    /// <see cref="RunAsync"/> gives up with <see cref="ExitCodes.QueueFull"/>; null: back off and retry for ever (batches).
    /// </summary>
    public TimeSpan? QueueFullTimeout { get; set; }

    /// <summary>Longest pause between publishes of a refused job.</summary>
    internal static readonly TimeSpan MaxFullBackoff = TimeSpan.FromSeconds(5);

    /// <summary>Consumers of the jobs queue when qw connected (0: no worker is running).</summary>
    public uint ConsumerCount { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // The first connection fails fast with a clear message: a wrong URI must not be retried forever.
        var session = await ConnectAsync(cancellationToken);
        lock (_gate) _session = Task.FromResult(session);
    }

    public async Task<JobResult> RunAsync(JobSubmission submission, CancellationToken cancellationToken)
    {
        if (_session is null) throw new InvalidOperationException("StartAsync first.");
        var pending = new Pending(submission.Id, "qw-" + Guid.NewGuid().ToString("N"));
        _pending[pending.CorrelationId] = pending;
        try
        {
            var attempt = 0;
            while (true)
            {
                var session = await GetSessionAsync(cancellationToken);
                // Checked before every publish, the first and each one after a reconnect: a job whose time is up is
                // answered here, not sent (the broker would only dead-letter it) and never dropped.
                if (submission.Expiry is { } expiry && expiry.HasPassed(time.GetUtcNow()))
                {
                    Counters.AddExpiredUnpublished();
                    LogExpiredBeforePublish(submission.Id, expiry.Source);
                    return expiry.NotPublished(submission.Id);
                }
                if (attempt++ > 0)
                {
                    Counters.AddResubmitted();
                    LogResubmitting(submission.Id);
                }
                if (!await TryPublishAsync(session, submission, pending, cancellationToken))
                    continue;

                await Task.WhenAny(pending.Result.Task, session.Lost).WaitAsync(cancellationToken);
                if (pending.Result.Task.IsCompleted)
                    return await pending.Result.Task;
                // The connection went before the result came: publish again on the next one.
            }
        }
        finally
        {
            _pending.TryRemove(pending.CorrelationId, out _);
        }
    }

    private async Task<bool> TryPublishAsync(BrokerSession session, JobSubmission submission, Pending pending, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var properties = new BasicProperties
        {
            Persistent = true,
            ContentType = "application/json",
            MessageId = submission.Id,
            CorrelationId = pending.CorrelationId,
            ReplyTo = session.ReplyQueue,
            Timestamp = new AmqpTimestamp(now.ToUnixTimeSeconds()),
            // Millisecond publish time for the worker's queued_ms (the AMQP timestamp has one-second resolution).
            Headers = new Dictionary<string, object?> { [DeliveryMapper.TimestampInMsHeader] = now.ToUnixTimeMilliseconds() },
            // The time left, from the same instant as the timestamp: the broker dead-letters the job when it runs out in the
            // queue (the worker answers it deadline_exceeded) and the worker's deadline rule ends it then if it runs.
            // A job out of time between the check in RunAsync and here still goes, with 1 ms: the worker answers it.
            Expiration = submission.Expiry is { } expiry ? expiry.AmqpExpiration(now) ?? "1" : null,
        };
        try
        {
            await session.PublishAsync(options.JobsQueue, properties, submission.Body, cancellationToken);
            if (Counters.Status == QueueMissingStatus || pending.RefusedSince is not null) Counters.Status = null;
            pending.RefusedSince = null;
            pending.Refusals = 0;
            return true;
        }
        catch (PublishException ex) when (ex.IsReturn)
        {
            // mandatory publish came back: the jobs queue is gone (deleted, or a broker that lost it). A worker will declare it again.
            Counters.Status = QueueMissingStatus;
            LogQueueMissing(options.JobsQueue);
            await Task.Delay(TimeSpan.FromSeconds(5), time, cancellationToken);
            return false;
        }
        catch (PublishException)
        {
            // A nack: the broker could not take the message right now, most often a full queue (RabbitMq:MaxQueuedJobs,
            // x-overflow reject-publish) or, on a cluster, a queue that has lost its quorum.
            // Back off (doubling, up to MaxFullBackoff) and try again, within QueueFullTimeout when set.
            pending.RefusedSince ??= time.GetTimestamp();
            var refusedFor = time.GetElapsedTime(pending.RefusedSince.Value);
            if (QueueFullTimeout is { } limit && refusedFor >= limit)
                throw new CliException(
                    $"the broker kept refusing job {submission.Id} for {refusedFor.TotalSeconds:F0} s: the jobs queue {options.JobsQueue} is full " +
                    "(its x-max-length, RabbitMq:MaxQueuedJobs, is reached) or has lost its quorum. Try again later, or raise --full-timeout.", ExitCodes.QueueFull);
            var delay = FullBackoff(pending.Refusals++);
            Counters.Status = $"{options.JobsQueue} refuses new jobs (full, or no quorum); retrying in {delay.TotalSeconds:F1} s";
            LogPublishNacked(submission.Id);
            if (QueueFullTimeout is { } max && refusedFor + delay > max) delay = max - refusedFor;
            await Task.Delay(delay, time, cancellationToken);
            return false;
        }
        catch (OperationCanceledException) when (session.IsLost && !cancellationToken.IsCancellationRequested)
        {
            // The connection went while the publish waited for its confirm.
            return false;
        }
        catch (Exception ex) when (ex is not OperationCanceledException && (session.IsLost || IsConnectionFault(ex)))
        {
            session.MarkLost(ex.Message);
            return false;
        }
    }

    /// <summary>0.25 s, 0.5 s, 1 s, … up to <see cref="MaxFullBackoff"/>.</summary>
    internal static TimeSpan FullBackoff(int refusals) =>
        TimeSpan.FromMilliseconds(Math.Min(MaxFullBackoff.TotalMilliseconds, 250 * Math.Pow(2, Math.Min(refusals, 16))));

    private static bool IsConnectionFault(Exception ex) =>
        ex is AlreadyClosedException or OperationInterruptedException or IOException or ObjectDisposedException;

    /// <summary>The live session, or the one being re-established (shared by every waiting job).</summary>
    private async Task<BrokerSession> GetSessionAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task<BrokerSession> current;
            lock (_gate)
            {
                current = _session!;
                if (current.IsCompletedSuccessfully && current.Result.IsLost)
                {
                    var lost = current.Result;
                    _ = lost.DisposeQuietlyAsync();
                    current = _session = ReconnectAsync(lost.LostReason ?? "connection lost");
                }
            }
            var session = await current.WaitAsync(cancellationToken);
            if (!session.IsLost) return session;
        }
    }

    private async Task<BrokerSession> ReconnectAsync(string reason)
    {
        LogConnectionLost(reason, _pending.Count);
        var attempt = 0;
        var pipeline = ResiliencePipelines.CreateReconnect<BrokerSession>(time, args =>
        {
            reason = args.Outcome.Exception?.Message ?? reason;
            LogReconnectFailed(args.AttemptNumber + 1, reason);
            return default;
        }, (randomizer ?? RetryRandomizer.Shared).Next);
        return await pipeline.ExecuteAsync(async ct =>
        {
            attempt++;
            Counters.Status = $"reconnecting to RabbitMQ (attempt {attempt}): {reason}";
            var session = await ConnectAsync(ct);
            Counters.AddReconnect();
            Counters.Status = null;
            LogReconnected(attempt);
            return session;
        }, _disposed.Token);
    }

    private async Task<BrokerSession> ConnectAsync(CancellationToken cancellationToken)
    {
        // A cluster's list of URIs: the client connects to the first node that answers; a reconnect tries them all again.
        var endpoints = BrokerEndpoints.Parse(options.Uri);
        var factory = new ConnectionFactory
        {
            ClientProvidedName = connectionName,
            // qw recovers by itself: it must publish again every job whose reply queue was lost.
            AutomaticRecoveryEnabled = false,
            TopologyRecoveryEnabled = false,
            RequestedHeartbeat = TimeSpan.FromSeconds(options.HeartbeatSeconds),
        };
        endpoints.ApplyTo(factory);
        IConnection connection;
        try
        {
            connection = await endpoints.ConnectAsync(factory, cancellationToken);
        }
        catch (BrokerUnreachableException ex)
        {
            throw new CliException($"cannot reach RabbitMQ at {SecretMasker.MaskUri(options.Uri)}: {Innermost(ex).Message}", ExitCodes.Broker, ex);
        }

        try
        {
            await CheckJobsQueueAsync(connection, cancellationToken);
            var session = await BrokerSession.OpenAsync(connection, OnResultAsync, cancellationToken);
            LogConnected(SecretMasker.MaskUri(options.Uri), session.ReplyQueue);
            return session;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private async Task CheckJobsQueueAsync(IConnection connection, CancellationToken cancellationToken)
    {
        // A passive declare on a throwaway channel: a missing queue closes the channel with 404.
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        try
        {
            var ok = await channel.QueueDeclarePassiveAsync(options.JobsQueue, cancellationToken);
            ConsumerCount = ok.ConsumerCount;
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
        {
            throw new CliException(
                $"no worker has declared {options.JobsQueue} yet; start the worker (queue RabbitMq:JobsQueue = \"{options.JobsQueue}\" does not exist on {SecretMasker.MaskUri(options.Uri)})",
                ExitCodes.Broker, ex);
        }
    }

    private Task OnResultAsync(BasicDeliverEventArgs delivery)
    {
        var correlationId = delivery.BasicProperties.CorrelationId;
        if (correlationId is null || !_pending.TryGetValue(correlationId, out var pending)
            || (delivery.BasicProperties.MessageId is { } messageId && messageId != pending.JobId))
        {
            Counters.AddDuplicateDropped();
            LogResultDropped(delivery.BasicProperties.MessageId, correlationId);
            return Task.CompletedTask;
        }

        JobResult result;
        try
        {
            result = JobSerializer.DeserializeResult(delivery.Body.Span);
        }
        catch (JsonException ex)
        {
            result = JobResult.Failed(pending.JobId, new JobError("invalid_result", $"The worker's result is not a valid result body: {ex.Message}"));
        }
        if (!pending.Result.TrySetResult(result))
        {
            // The same job answered twice (a redelivered job, or the job published again after a reconnect).
            Counters.AddDuplicateDropped();
            LogResultDropped(pending.JobId, correlationId);
        }
        return Task.CompletedTask;
    }

    private static Exception Innermost(Exception ex)
    {
        while (ex.InnerException is not null) ex = ex.InnerException;
        return ex;
    }

    public async ValueTask DisposeAsync()
    {
        await _disposed.CancelAsync();
        Task<BrokerSession>? session;
        lock (_gate) session = _session;
        if (session is { IsCompletedSuccessfully: true })
            await session.Result.DisposeQuietlyAsync();
        _disposed.Dispose();
    }

    private sealed class Pending(string jobId, string correlationId)
    {
        public string JobId { get; } = jobId;
        public string CorrelationId { get; } = correlationId;
        /// <summary>When the broker first refused the job in the current run of refusals (a timestamp), else null.</summary>
        public long? RefusedSince { get; set; }
        public int Refusals { get; set; }
        // Completed from the consumer's dispatch loop: never run the awaiting job's code there.
        public TaskCompletionSource<JobResult> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    [LoggerMessage(EventId = 5001, Level = LogLevel.Information, Message = "Connected to {Uri}; results come to {ReplyQueue}")]
    private partial void LogConnected(string uri, string replyQueue);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Warning, Message = "Broker connection lost ({Reason}); {Waiting} jobs wait for results and will be published again")]
    private partial void LogConnectionLost(string reason, int waiting);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Warning, Message = "Reconnect attempt {Attempt} failed: {Reason}")]
    private partial void LogReconnectFailed(int attempt, string reason);

    [LoggerMessage(EventId = 5004, Level = LogLevel.Information, Message = "Reconnected after {Attempt} attempts")]
    private partial void LogReconnected(int attempt);

    [LoggerMessage(EventId = 5005, Level = LogLevel.Debug, Message = "Publishing job {JobId} again after a reconnect")]
    private partial void LogResubmitting(string jobId);

    [LoggerMessage(EventId = 5006, Level = LogLevel.Debug, Message = "Dropped a result (message_id {MessageId}, correlation_id {CorrelationId}): already answered or not ours")]
    private partial void LogResultDropped(string? messageId, string? correlationId);

    [LoggerMessage(EventId = 5007, Level = LogLevel.Warning, Message = "The jobs queue {Queue} does not exist (publish returned); waiting for a worker to declare it")]
    private partial void LogQueueMissing(string queue);

    [LoggerMessage(EventId = 5010, Level = LogLevel.Warning, Message = "Job {JobId} not published: {Source} has ended; answered deadline_exceeded")]
    private partial void LogExpiredBeforePublish(string jobId, string source);

    [LoggerMessage(EventId = 5008, Level = LogLevel.Warning, Message = "The broker refused job {JobId} (nack: the queue is full or has no quorum); publishing it again after a pause")]
    private partial void LogPublishNacked(string jobId);
}
