using QueueWorker.Contracts;

namespace QueueWorker.Messaging;

/// <summary>One delivery from the jobs queue, with the AMQP properties a handler needs.</summary>
public sealed record IncomingJob
{
    public required ReadOnlyMemory<byte> Body { get; init; }
    public string? MessageId { get; init; }
    public string? CorrelationId { get; init; }
    public string? ReplyTo { get; init; }
    public string? ContentType { get; init; }
    public string? ContentEncoding { get; init; }
    /// <summary>AMQP <c>timestamp</c> (publish time), when the producer set one.</summary>
    public DateTimeOffset? Timestamp { get; init; }
    /// <summary>AMQP <c>expiration</c> (per-message TTL), when set.</summary>
    public TimeSpan? Expiration { get; init; }
    public bool Redelivered { get; init; }
    /// <summary>Quorum queue <c>x-delivery-count</c>: 0 on the first delivery.</summary>
    public long DeliveryCount { get; init; }
    /// <summary>Deliveries carried over from before the worker re-published the job (header <c>x-qw-deliveries</c>).</summary>
    public long CarriedDeliveries { get; init; }
    /// <summary>Earlier deliveries by every count: see <see cref="DeliveryMapper.PriorDeliveries"/>. 0 = a job never handed out before.</summary>
    public long PriorDeliveries => DeliveryMapper.PriorDeliveries(DeliveryCount, Redelivered, CarriedDeliveries);
    /// <summary>When this worker received the delivery.</summary>
    public DateTimeOffset ReceivedAt { get; init; }
    /// <summary>The lane it came in on (empty: the single default lane) and the lane's rank, 0 = highest.</summary>
    public string Lane { get; init; } = "";
    public int LaneRank { get; init; }
    /// <summary>The lane's weight (<c>RabbitMq:LaneWeights</c>), 0 = lanes in strict order.</summary>
    public int LaneWeight { get; init; }
}

/// <summary>Hears the control messages (see <see cref="ControlConsumerService"/>); the host forwards them to the job pipeline.</summary>
public interface IControlHandler
{
    /// <summary>Cancels the matching jobs (running, waiting, or still to arrive); returns how many running ones it stopped.</summary>
    int Cancel(QueueWorker.Contracts.CancelRequest request);
}

/// <summary>
/// Turns a job into its result. The consumer publishes the result (to <c>reply_to</c> or the results
/// queue), waits for the broker's confirm, then acks. An <see cref="OperationCanceledException"/>
/// on shutdown makes the consumer nack the job with requeue; any other exception is a bug and
/// also requeues (the quorum queue's delivery limit stops a loop).
/// </summary>
public interface IJobHandler
{
    Task<JobResult> HandleAsync(IncomingJob job, CancellationToken cancellationToken);
}

/// <summary>What readiness and metrics need to know about the broker link.</summary>
public interface IBrokerStatus
{
    bool IsConnected { get; }
    bool IsConsuming { get; }
    /// <summary>Why the consumer is (not) running, for a warning when it stays down while the broker is connected.</summary>
    string ConsumerState { get; }
    /// <summary>Jobs received and not yet acked or nacked.</summary>
    int InFlight { get; }
}
