using Microsoft.Extensions.Logging;

namespace QueueWorker.Messaging;

/// <summary>Messaging log messages. Event ids 2000–2099 belong to this project.</summary>
internal static partial class Log
{
    // Connection 2001–2009
    [LoggerMessage(2001, LogLevel.Information, "Connecting to RabbitMQ {Uri} as '{ClientName}'")]
    public static partial void Connecting(ILogger logger, string uri, string clientName);

    [LoggerMessage(2002, LogLevel.Information, "Connected to RabbitMQ {Uri} as '{ClientName}' (heartbeat {HeartbeatSeconds} s, automatic recovery on)")]
    public static partial void Connected(ILogger logger, string uri, string clientName, int heartbeatSeconds);

    [LoggerMessage(2003, LogLevel.Warning, "Cannot connect to RabbitMQ {Uri} (attempt {Attempt}): {Reason}. Retrying in {DelayMs:F0} ms")]
    public static partial void ConnectFailed(ILogger logger, string uri, int attempt, string reason, double delayMs);

    [LoggerMessage(2004, LogLevel.Warning, "RabbitMQ connection lost: {ReplyCode} {ReplyText} (initiator {Initiator}); the client reconnects by itself")]
    public static partial void ConnectionLost(ILogger logger, ushort replyCode, string replyText, string initiator);

    [LoggerMessage(2005, LogLevel.Information, "RabbitMQ connection recovered; channels and consumer restored")]
    public static partial void ConnectionRecovered(ILogger logger);

    [LoggerMessage(2006, LogLevel.Warning, "RabbitMQ connection recovery attempt failed: {Reason}; trying again")]
    public static partial void RecoveryAttemptFailed(ILogger logger, string reason);

    [LoggerMessage(2007, LogLevel.Warning, "RabbitMQ blocked this connection ({Reason}): publishes wait until the broker's resource alarm clears")]
    public static partial void ConnectionBlocked(ILogger logger, string reason);

    [LoggerMessage(2008, LogLevel.Information, "RabbitMQ unblocked this connection")]
    public static partial void ConnectionUnblocked(ILogger logger);

    // Topology 2010–2019
    [LoggerMessage(2010, LogLevel.Information, "Queues declared, all quorum: jobs '{JobsQueue}' (delivery limit {DeliveryLimit}, dead letters at least once to '{DeadLetterQueue}'), results '{ResultsQueue}'")]
    public static partial void TopologyDeclared(ILogger logger, string jobsQueue, int deliveryLimit, string deadLetterQueue, string resultsQueue);

    [LoggerMessage(2011, LogLevel.Critical, "{Message}")]
    public static partial void TopologyMismatch(ILogger logger, string message);

    [LoggerMessage(2012, LogLevel.Information, "RabbitMq:DeclareTopology is false: using queues '{JobsQueue}' and '{ResultsQueue}' as an operator declared them")]
    public static partial void TopologySkipped(ILogger logger, string jobsQueue, string resultsQueue);

    [LoggerMessage(2013, LogLevel.Warning, "Declaring queues failed: {Reason}. Retrying in {DelayMs:F0} ms")]
    public static partial void TopologyFailed(ILogger logger, string reason, double delayMs);

    // Consumer 2020–2029
    [LoggerMessage(2020, LogLevel.Information, "Consuming '{Queue}' with prefetch {Prefetch}: up to {Prefetch} jobs run concurrently")]
    public static partial void Consuming(ILogger logger, string queue, int prefetch);

    [LoggerMessage(2021, LogLevel.Warning, "The broker closed the consumer channel: {ReplyCode} {ReplyText}; re-opening it and re-subscribing")]
    public static partial void ChannelClosedByBroker(ILogger logger, ushort replyCode, string replyText);

    [LoggerMessage(2022, LogLevel.Warning, "The broker cancelled the consumer on '{Queue}' (queue deleted or moved); re-subscribing")]
    public static partial void ConsumerCancelledByBroker(ILogger logger, string queue);

    [LoggerMessage(2023, LogLevel.Warning, "Cannot consume '{Queue}': {Reason}. Retrying in {DelayMs:F0} ms")]
    public static partial void SubscribeFailed(ILogger logger, string queue, string reason, double delayMs);

    [LoggerMessage(2024, LogLevel.Warning, "RabbitMq:Prefetch is 0 and the host did not set it from Inference:Slots: using 1")]
    public static partial void PrefetchDefaulted(ILogger logger);

    // Jobs 2030–2039
    [LoggerMessage(2030, LogLevel.Debug, "Job {MessageId} received (delivery {DeliveryCount}, redelivered {Redelivered}, {Bytes} bytes)")]
    public static partial void JobReceived(ILogger logger, string? messageId, long deliveryCount, bool redelivered, int bytes);

    [LoggerMessage(2031, LogLevel.Debug, "Job {MessageId}: result {ResultId} confirmed by the broker to '{Destination}', delivery acked")]
    public static partial void JobAcked(ILogger logger, string? messageId, string resultId, string destination);

    [LoggerMessage(2032, LogLevel.Information, "Job {MessageId} cancelled by shutdown: nacked with requeue for another worker")]
    public static partial void JobRequeuedOnShutdown(ILogger logger, string? messageId);

    [LoggerMessage(2033, LogLevel.Error, "Handler failed on job {MessageId} (delivery count {DeliveryCount}): answered with an internal_error result instead of a requeue")]
    public static partial void HandlerFailed(ILogger logger, Exception exception, string? messageId, long deliveryCount);

    [LoggerMessage(2034, LogLevel.Error, "Could not publish the result {ResultId} of job {MessageId}: {Reason}; the job is nacked with requeue")]
    public static partial void PublishFailed(ILogger logger, string resultId, string? messageId, string reason);

    [LoggerMessage(2035, LogLevel.Warning, "Job {MessageId}: the channel closed before the {Action}; the broker requeues the delivery itself (a result already published is repeated with the same message_id)")]
    public static partial void SettleSkipped(ILogger logger, string? messageId, string action);

    [LoggerMessage(2036, LogLevel.Debug, "Job {MessageId} arrived while stopping: nacked with requeue")]
    public static partial void NackedWhileStopping(ILogger logger, string? messageId);

    // Shutdown 2040–2049
    [LoggerMessage(2040, LogLevel.Information, "Stopping: consumer cancelled, {InFlight} job(s) in flight, waiting up to {GraceSeconds} s for them")]
    public static partial void StopConsuming(ILogger logger, int inFlight, int graceSeconds);

    [LoggerMessage(2041, LogLevel.Warning, "Grace period over with {InFlight} job(s) in flight: cancelling them; they are nacked with requeue")]
    public static partial void GraceExpired(ILogger logger, int inFlight);

    [LoggerMessage(2042, LogLevel.Information, "Consumer stopped; {InFlight} job(s) left in flight (the broker requeues any unsettled delivery when the channel closes)")]
    public static partial void Stopped(ILogger logger, int inFlight);

    [LoggerMessage(2043, LogLevel.Warning, "Cancelling the consumer failed: {Reason}")]
    public static partial void CancelFailed(ILogger logger, string reason);

    // Publishing 2050–2059
    [LoggerMessage(2050, LogLevel.Warning, "Publishing result {ResultId} failed (attempt {Attempt}): {Reason}; retrying in {DelayMs:F0} ms")]
    public static partial void PublishRetry(ILogger logger, string resultId, int attempt, string reason, double delayMs);

    [LoggerMessage(2051, LogLevel.Warning, "reply_to queue '{ReplyTo}' of result {ResultId} does not exist (the producer is gone): publishing it to the results queue '{ResultsQueue}' instead")]
    public static partial void ReplyQueueMissing(ILogger logger, string replyTo, string resultId, string resultsQueue);

    [LoggerMessage(2052, LogLevel.Warning, "The broker closed the publisher channel: {ReplyCode} {ReplyText}; a new one is opened on the next publish")]
    public static partial void PublisherChannelClosed(ILogger logger, ushort replyCode, string replyText);

    [LoggerMessage(2053, LogLevel.Error, "The result {ResultId} of job {MessageId} cannot be published ({Reason}), and retrying will not change that: publishing an internal_error result in its place")]
    public static partial void ResultUnpublishable(ILogger logger, string resultId, string? messageId, string reason);

    [LoggerMessage(2054, LogLevel.Warning, "Job {MessageId} was interrupted ({Reason}): nacked with requeue for another worker")]
    public static partial void JobInterrupted(ILogger logger, string? messageId, string reason);

    [LoggerMessage(2055, LogLevel.Error, "Stopped taking jobs: the handler cannot run them now (a job was interrupted); jobs held and prefetched are requeued for other workers")]
    public static partial void ConsumerHalted(ILogger logger);

    [LoggerMessage(2056, LogLevel.Warning, "reply_to '{ReplyTo}' of result {ResultId} is not allowed (RabbitMq:ReplyToPattern; server-named queues always are): publishing it to the results queue '{ResultsQueue}' with a warning")]
    public static partial void ReplyToNotAllowed(ILogger logger, string replyTo, string resultId, string resultsQueue);

    // Suspects, poison jobs and dead letters 2060–2069
    [LoggerMessage(2060, LogLevel.Information, "Job {MessageId} was delivered {PriorDeliveries} time(s) before: consumption paused, it runs alone once the {Held} job(s) held beside it are settled")]
    public static partial void SuspectIsolated(ILogger logger, string? messageId, long priorDeliveries, int held);

    [LoggerMessage(2061, LogLevel.Information, "Job {MessageId} (delivered {PriorDeliveries} time(s) before) arrived while another job runs alone: put back at the end of the jobs queue, acked")]
    public static partial void SuspectRequeued(ILogger logger, string? messageId, long priorDeliveries);

    [LoggerMessage(2062, LogLevel.Debug, "Job {MessageId} runs alone; consumption resumes once it is settled")]
    public static partial void SuspectRunsAlone(ILogger logger, string? messageId);

    [LoggerMessage(2063, LogLevel.Warning, "Job {MessageId} was delivered {PriorDeliveries} time(s) before without an answer, more than RabbitMq:DeliveryLimit {DeliveryLimit}: not run; answered poison_job and parked")]
    public static partial void PoisonDetected(ILogger logger, string? messageId, long priorDeliveries, int deliveryLimit);

    [LoggerMessage(2064, LogLevel.Warning, "Job {ResultId} (message {MessageId}), dead-lettered for '{Reason}': answered {Code} to '{Destination}' and parked in '{ParkedQueue}'")]
    public static partial void JobParked(ILogger logger, string resultId, string? messageId, string reason, string code, string destination, string parkedQueue);

    [LoggerMessage(2065, LogLevel.Error, "Could not {Action} job {MessageId} ({Reason}): nacked with requeue, it is tried again")]
    public static partial void MoveFailed(ILogger logger, string action, string? messageId, string reason);

    [LoggerMessage(2066, LogLevel.Information, "Consuming dead letters of '{DeadLetterQueue}' (prefetch {Prefetch}): each is answered and parked in '{ParkedQueue}'")]
    public static partial void ConsumingDeadLetters(ILogger logger, string deadLetterQueue, int prefetch, string parkedQueue);

    [LoggerMessage(2067, LogLevel.Warning, "Cannot consume the dead-letter queue '{DeadLetterQueue}': {Reason}. Trying again every few seconds; the worker's broker user needs read on it and configure on '{ParkedQueue}' (or set RabbitMq:AnswerDeadLetters=false)")]
    public static partial void DeadLetterSubscribeFailed(ILogger logger, string deadLetterQueue, string reason, string parkedQueue);

    [LoggerMessage(2068, LogLevel.Warning, "Pausing consumption for an isolated job failed ({Reason}): deliveries arriving meanwhile are put back at the end of the jobs queue")]
    public static partial void PauseFailed(ILogger logger, string reason);

    [LoggerMessage(2069, LogLevel.Debug, "Isolated job {MessageId} settled: consumption resumed")]
    public static partial void ConsumptionResumed(ILogger logger, string? messageId);

    // Control messages and lanes 2080–2099
    [LoggerMessage(2080, LogLevel.Information, "Listening for control messages on exchange '{Exchange}' (queue {Queue})")]
    public static partial void ControlSubscribed(ILogger logger, string exchange, string queue);

    [LoggerMessage(2081, LogLevel.Warning, "Subscribing to the control exchange '{Exchange}' failed ({Reason}); retrying in 5 s (cancel messages are not heard meanwhile)")]
    public static partial void ControlSubscribeFailed(ILogger logger, string exchange, string reason);

    [LoggerMessage(2082, LogLevel.Warning, "Ignored a control message: {Reason}")]
    public static partial void ControlMessageInvalid(ILogger logger, string reason);

    [LoggerMessage(2083, LogLevel.Information, "Cancel received: {JobIds} job id(s), batch '{BatchId}'; {Stopped} job(s) held here stopped, later arrivals answered cancelled")]
    public static partial void CancelReceived(ILogger logger, int jobIds, string batchId, int stopped);

    [LoggerMessage(2084, LogLevel.Error, "Handling a control message failed")]
    public static partial void ControlHandlerFailed(ILogger logger, Exception exception);
}
