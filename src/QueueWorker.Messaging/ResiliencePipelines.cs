using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using Polly.Timeout;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace QueueWorker.Messaging;

/// <summary>
/// Every retry of the broker link, in the worker and in qw, is one of these Polly pipelines. Time comes from the injected
/// <see cref="TimeProvider"/> and jitter from the injected randomizer (<see cref="RetryStrategyOptions{TResult}.Randomizer"/>, a value
/// in [0, 1)), so a test with a fake clock and a fixed randomizer knows every delay in advance. A null randomizer means
/// <see cref="RetryRandomizer.Shared"/>.
/// </summary>
public static class ResiliencePipelines
{
    /// <summary>The id of the result being published, for retry logs.</summary>
    public static readonly ResiliencePropertyKey<string> ResultIdKey = new("queueworker.result-id");

    /// <summary>
    /// Publishing a result: <paramref name="attempts"/> tries in all (<c>RabbitMq:PublishRetries</c>), exponential backoff
    /// with jitter from <paramref name="baseDelay"/> (default 500 ms) capped at 15 s, each try bounded by
    /// <paramref name="attemptTimeout"/> (default 30 s) so a confirm that never comes is retried too.
    /// With the defaults (6 attempts) the retries span ≈15 s, longer than a broker restart or a connection recovery.
    /// </summary>
    public static ResiliencePipeline CreatePublish(int attempts, TimeProvider timeProvider, ILogger logger,
        TimeSpan? baseDelay = null, TimeSpan? attemptTimeout = null, Func<double>? randomizer = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(attempts, 1);
        var builder = new ResiliencePipelineBuilder { TimeProvider = timeProvider };
        if (attempts > 1)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = attempts - 1,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Randomizer = randomizer ?? RetryRandomizer.Shared.Next,
                Delay = baseDelay ?? TimeSpan.FromMilliseconds(500),
                MaxDelay = TimeSpan.FromSeconds(15),
                ShouldHandle = new PredicateBuilder().Handle<Exception>(IsTransient),
                OnRetry = args =>
                {
                    var id = args.Context.Properties.GetValue(ResultIdKey, "?");
                    Log.PublishRetry(logger, id, args.AttemptNumber + 1, Describe(args.Outcome.Exception), args.RetryDelay.TotalMilliseconds);
                    return default;
                },
            });
        }
        return builder.AddTimeout(attemptTimeout ?? TimeSpan.FromSeconds(30)).Build();
    }

    /// <summary>The first connection: retried until it works or the host stops, backoff 1 s doubling to 30 s with jitter.</summary>
    public static ResiliencePipeline CreateConnect(TimeProvider timeProvider, ILogger logger, string maskedUri, Func<double>? randomizer = null) =>
        new ResiliencePipelineBuilder { TimeProvider = timeProvider }
            .AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Randomizer = randomizer ?? RetryRandomizer.Shared.Next,
                Delay = TimeSpan.FromSeconds(1),
                MaxDelay = TimeSpan.FromSeconds(30),
                // Everything but the host's stop, including the client's own handshake timeouts (TaskCanceledException).
                ShouldHandle = args => ValueTask.FromResult(IsFailureButNotStop(args.Outcome.Exception, args.Context)),
                OnRetry = args =>
                {
                    Log.ConnectFailed(logger, maskedUri, args.AttemptNumber + 1, Describe(args.Outcome.Exception), args.RetryDelay.TotalMilliseconds);
                    return default;
                },
            })
            .Build();

    /// <summary>
    /// Declaring the queues: retried until it works or the host stops, 1 s doubling to 30 s, ±20% jitter
    /// (<see cref="SupervisorDelay"/>). A queue that exists with other settings (<see cref="TopologyMismatchException"/>)
    /// is not retried: the caller stops the worker.
    /// </summary>
    public static ResiliencePipeline CreateTopology(TimeProvider timeProvider, ILogger logger, Func<double>? randomizer = null) =>
        CreateSupervised(timeProvider, randomizer,
            // Includes the client's own timeouts (TaskCanceledException): only the host's stop ends the retries.
            (ex, context) => ex is not TopologyMismatchException && IsFailureButNotStop(ex, context),
            (ex, delay) => Log.TopologyFailed(logger, Describe(ex), delay.TotalMilliseconds));

    /// <summary>
    /// Subscribing the consumer (a new channel, its prefetch, <c>basic.consume</c>): retried until it works or the host
    /// stops, with the same schedule as <see cref="CreateTopology"/>. Each execution starts the schedule again, so a
    /// subscription that worked resets the backoff.
    /// </summary>
    public static ResiliencePipeline CreateSubscribe(TimeProvider timeProvider, ILogger logger, string queue, Func<double>? randomizer = null) =>
        CreateSupervised(timeProvider, randomizer,
            // Includes the client's own RPC timeouts (TaskCanceledException), which must not end the service.
            IsFailureButNotStop,
            (ex, delay) => Log.SubscribeFailed(logger, queue, Describe(ex), delay.TotalMilliseconds));

    /// <summary>The supervisor schedule shared by topology and subscription: forever, <see cref="SupervisorDelay"/> apart.</summary>
    private static ResiliencePipeline CreateSupervised(TimeProvider timeProvider, Func<double>? randomizer,
        Func<Exception?, ResilienceContext, bool> shouldRetry, Action<Exception?, TimeSpan> onRetry)
    {
        var random = randomizer ?? RetryRandomizer.Shared.Next;
        return new ResiliencePipelineBuilder { TimeProvider = timeProvider }
            .AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = int.MaxValue,
                // Constant, so Polly's own formula never overflows in a long outage; the delay comes from the generator.
                BackoffType = DelayBackoffType.Constant,
                Randomizer = random,
                DelayGenerator = args => ValueTask.FromResult<TimeSpan?>(SupervisorDelay(args.AttemptNumber, random)),
                ShouldHandle = args => ValueTask.FromResult(shouldRetry(args.Outcome.Exception, args.Context)),
                OnRetry = args =>
                {
                    onRetry(args.Outcome.Exception, args.RetryDelay);
                    return default;
                },
            })
            .Build();
    }

    /// <summary>
    /// qw's reconnect after a lost connection: retried until it works or qw is disposed, 1, 2, 4, 8, then 10 s between
    /// attempts (a broker restart takes about ten seconds), no jitter: one qw is no herd. Cancellation is not retried.
    /// The caller logs in <paramref name="onRetry"/> (its own event ids).
    /// </summary>
    public static ResiliencePipeline<T> CreateReconnect<T>(TimeProvider timeProvider, Func<OnRetryArguments<T>, ValueTask> onRetry,
        Func<double>? randomizer = null) =>
        new ResiliencePipelineBuilder<T> { TimeProvider = timeProvider }
            .AddRetry(new RetryStrategyOptions<T>
            {
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Constant,
                Randomizer = randomizer ?? RetryRandomizer.Shared.Next,
                DelayGenerator = args => ValueTask.FromResult<TimeSpan?>(ReconnectDelay(args.AttemptNumber)),
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } ex && ex is not OperationCanceledException),
                OnRetry = onRetry,
            })
            .Build();

    /// <summary>
    /// The worker's supervisor backoff (queue declaration, consumer subscription): 1 s doubling to 30 s, then ±20% from
    /// <paramref name="randomizer"/> so replicas restarted together do not retry in step. <paramref name="attempt"/> is 0-based.
    /// </summary>
    public static TimeSpan SupervisorDelay(int attempt, Func<double> randomizer)
    {
        var ms = Math.Min(30_000, 1000 * Math.Pow(2, Math.Min(attempt, 5)));
        return TimeSpan.FromMilliseconds(ms * (0.8 + randomizer() * 0.4));
    }

    /// <summary>qw's reconnect backoff: 1, 2, 4, 8, then 10 s. <paramref name="attempt"/> is 0-based.</summary>
    public static TimeSpan ReconnectDelay(int attempt) => TimeSpan.FromSeconds(Math.Min(10, Math.Pow(2, Math.Min(attempt, 4))));

    // A failure to retry: any exception but the caller's own stop (the client's handshake and RPC timeouts are
    // TaskCanceledExceptions too, and must be retried).
    private static bool IsFailureButNotStop(Exception? ex, ResilienceContext context) =>
        ex is not null && !(ex is OperationCanceledException && context.CancellationToken.IsCancellationRequested);

    /// <summary>Failures that may pass: the broker or the link is down, restarting, or slow to confirm. A <c>basic.return</c> is not one.</summary>
    public static bool IsTransient(Exception ex) => ex switch
    {
        PublishReturnException => false,
        PublishException => true, // a broker nack
        AlreadyClosedException or OperationInterruptedException or BrokerUnreachableException => true,
        BrokerNotReadyException or TimeoutRejectedException or TimeoutException => true,
        // The client's own RPC timeout (e.g. opening a channel). When the caller's token is the cause, the retry's
        // delay observes that token and ends the retries.
        OperationCanceledException => true,
        IOException or SocketException => true,
        _ => false,
    };

    /// <summary>One line for a log: the exception's type and message, no stack.</summary>
    public static string Describe(Exception? ex) => ex switch
    {
        null => "no exception",
        AggregateException { InnerExceptions.Count: 1 } aggregate => Describe(aggregate.InnerExceptions[0]),
        BrokerUnreachableException { InnerException: { } inner } => $"broker unreachable ({inner.GetBaseException().Message})",
        // RabbitMQ's own failure, retried like any other; the one seen to last is named (README, Limits).
        OperationInterruptedException { ShutdownReason.ReplyCode: Constants.InternalError } =>
            $"{ex.GetType().Name}: {ex.Message} (the broker's internal error; if it lasts, check the node's rabbit_fifo_dlx_sup: README, Limits)",
        _ => $"{ex.GetType().Name}: {ex.Message}",
    };
}

/// <summary>
/// The jitter source of every retry pipeline (<see cref="RetryStrategyOptions{TResult}.Randomizer"/>): a value in [0, 1). Registered
/// once in DI by <see cref="MessagingExtensions.AddMessaging"/>; a test registers a fixed one first to make the schedule exact.
/// </summary>
public sealed class RetryRandomizer(Func<double> next)
{
#pragma warning disable RS0030 // Random.Shared: the retry jitter is one of the two sources of randomness (BannedSymbols.txt).
    /// <summary><see cref="Random.Shared"/>: thread-safe, as pipelines shared by concurrent executions need.</summary>
    public static RetryRandomizer Shared { get; } = new(Random.Shared.NextDouble);
#pragma warning restore RS0030

    public Func<double> Next { get; } = next ?? throw new ArgumentNullException(nameof(next));
}

/// <summary>The connection is not up (first connect pending or recovery in progress): try again later.</summary>
public sealed class BrokerNotReadyException(string message) : Exception(message);
