using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using Polly.Timeout;
using RabbitMQ.Client.Exceptions;

namespace QueueWorker.Messaging;

/// <summary>The Polly pipelines of the broker link. Time comes from the injected <see cref="TimeProvider"/> so tests can run them on a fake clock.</summary>
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
        TimeSpan? baseDelay = null, TimeSpan? attemptTimeout = null)
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
    public static ResiliencePipeline CreateConnect(TimeProvider timeProvider, ILogger logger, string maskedUri) =>
        new ResiliencePipelineBuilder { TimeProvider = timeProvider }
            .AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromSeconds(1),
                MaxDelay = TimeSpan.FromSeconds(30),
                // Everything but the host's stop, including the client's own handshake timeouts (TaskCanceledException).
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } ex
                    && !(ex is OperationCanceledException && args.Context.CancellationToken.IsCancellationRequested)),
                OnRetry = args =>
                {
                    Log.ConnectFailed(logger, maskedUri, args.AttemptNumber + 1, Describe(args.Outcome.Exception), args.RetryDelay.TotalMilliseconds);
                    return default;
                },
            })
            .Build();

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
        _ => $"{ex.GetType().Name}: {ex.Message}",
    };
}

/// <summary>The connection is not up (first connect pending or recovery in progress): try again later.</summary>
public sealed class BrokerNotReadyException(string message) : Exception(message);
