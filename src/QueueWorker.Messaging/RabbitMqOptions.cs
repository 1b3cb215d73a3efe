using System.ComponentModel.DataAnnotations;
using QueueWorker.Contracts;

namespace QueueWorker.Messaging;

/// <summary>Configuration section <c>RabbitMq</c>. Credentials belong in the URI from the environment (<c>RabbitMq__Uri</c>), never in code.</summary>
public sealed class RabbitMqOptions
{
    public const string Section = "RabbitMq";

    [Required]
    public string Uri { get; set; } = "amqp://guest:guest@localhost:5672/";

    [Required, MinLength(1)]
    public string JobsQueue { get; set; } = "llm.jobs";

    [Required, MinLength(1)]
    public string ResultsQueue { get; set; } = "llm.results";

    /// <summary>Where jobs go after <see cref="DeliveryLimit"/> failed deliveries; empty = <c>{JobsQueue}.dlq</c>.</summary>
    public string? DeadLetterQueue { get; set; }

    /// <summary>Quorum queue <c>x-delivery-limit</c>: redeliveries before a job is dead-lettered.</summary>
    [ConfigRange(1, 1000)]
    public int DeliveryLimit { get; set; } = 3;

    /// <summary>
    /// Consume the dead-letter queue: answer each dead-lettered job with a <c>failed</c> result (<c>poison_job</c> after
    /// the delivery limit, <c>deadline_exceeded</c> when it expired, <c>dead_lettered</c> otherwise) and move it to
    /// <see cref="EffectiveParkedQueue"/> for replay. Off: dead-lettered jobs stay in the DLQ unanswered.
    /// </summary>
    public bool AnswerDeadLetters { get; set; } = true;

    /// <summary>Unacked jobs this worker may hold; 0 = follow <c>Inference:Slots</c>.</summary>
    [ConfigRange(0, 1000)]
    public int Prefetch { get; set; }

    /// <summary>Declare queues at startup; off when an operator pre-declares them and the worker's user may not.</summary>
    public bool DeclareTopology { get; set; } = true;

    /// <summary>Largest job body handled; larger gets a <c>body_too_large</c> result. Keep the broker's <c>max_message_size</c> below the client's 64 MiB.</summary>
    [ConfigRange(1024, 64 * 1024 * 1024)]
    public int MaxJobBytes { get; set; } = 1024 * 1024;

    [ConfigRange(1, 3600)]
    public int HeartbeatSeconds { get; set; } = 30;

    /// <summary>Attempts to publish a result before the job is nacked with requeue.</summary>
    [ConfigRange(1, 100)]
    public int PublishRetries { get; set; } = 6;

    /// <summary>
    /// Seconds the broker link may stay lost (after it was once up) before the worker gives up on recovery: liveness
    /// fails and the process exits (code 5) so a fresh one connects, perhaps to another node. 0 waits forever.
    /// </summary>
    [ConfigRange(0, 86_400)]
    public int MaxRecoverySeconds { get; set; } = 300;

    /// <summary>How long shutdown waits for jobs in flight before requeueing them.</summary>
    [ConfigRange(0, 3600)]
    public int ShutdownGraceSeconds { get; set; } = 30;

    /// <summary>
    /// Named reply queues a job's <c>reply_to</c> may name: a .NET regular expression matched against the whole name
    /// (anchored at both ends). Empty (the default) = none: only server-named queues (<c>amq.gen-…</c>, the direct reply-to
    /// <c>amq.rabbitmq.reply-to</c>) are honoured; any other <c>reply_to</c> gets its result on <see cref="ResultsQueue"/>
    /// with a warning. See <see cref="ReplyToPolicy"/>.
    /// </summary>
    public string? ReplyToPattern { get; set; }

    /// <summary>Connection name shown by the broker (<c>rabbitmqctl list_connections client_properties</c>); empty = <c>queueworker@{machine}:{pid}</c>. The host sets it to the worker id.</summary>
    [MaxLength(255)]
    public string? ClientName { get; set; }

    /// <summary>Where answered dead letters and poison jobs are kept for replay: <c>{JobsQueue}.parked</c>, a durable quorum queue.</summary>
    public string EffectiveParkedQueue => JobsQueue + ".parked";

    public string EffectiveDeadLetterQueue => string.IsNullOrWhiteSpace(DeadLetterQueue) ? JobsQueue + ".dlq" : DeadLetterQueue;
}
