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

    /// <summary>
    /// Priority lanes, highest first, e.g. <c>["interactive","batch"]</c>: each is its own quorum queue
    /// <c>{JobsQueue}.{lane}</c> with its own dead-letter queue <c>{JobsQueue}.{lane}.dlq</c>. The worker consumes every lane
    /// (each with its own prefetch window of <see cref="Prefetch"/>) and gives a free slot to a job of the highest lane
    /// it holds. Empty (the default): one lane, the queue <see cref="JobsQueue"/> itself, as before lanes existed.
    /// </summary>
    public IList<string> Lanes { get; init; } = [];

    /// <summary>
    /// Optional weights between <see cref="Lanes"/>, lane name → weight (1..1000), e.g. <c>{"interactive": 4, "batch": 1}</c>:
    /// when several lanes have jobs waiting in the worker, free slots go to them in proportion to their weights (smooth
    /// weighted round-robin), so a lower lane is never starved. Every lane must then have a weight. Empty (the default):
    /// strict order, a higher lane's waiting job always first.
    /// </summary>
    public IDictionary<string, int> LaneWeights { get; init; } = new Dictionary<string, int>(StringComparer.Ordinal);

    /// <summary>The fanout exchange of control messages (cancel); every worker binds its own exclusive queue to it.</summary>
    [Required, MinLength(1)]
    public string ControlExchange { get; set; } = "llm.control";

    /// <summary>How long a worker remembers cancelled job ids and batch ids, to answer matching jobs that arrive later.</summary>
    [ConfigRange(1, 7 * 24 * 60)]
    public int CancelMemoryMinutes { get; set; } = 60;

    /// <summary>
    /// Jobs a lane's queue may hold (<c>x-max-length</c> with <c>x-overflow: reject-publish</c>): producers' publishes are
    /// nacked beyond it (qw backs off and retries). 0 (the default) = no limit.
    /// </summary>
    [ConfigRange(0, 100_000_000)]
    public int MaxQueuedJobs { get; set; }

    /// <summary>The queues the worker consumes, highest lane first, each with its dead-letter queue.</summary>
    public IReadOnlyList<LaneQueue> LaneQueues => Lanes.Count == 0
        ? [new LaneQueue("", JobsQueue, EffectiveDeadLetterQueue, 0)]
        : [.. Lanes.Select((lane, rank) => new LaneQueue(lane, LaneQueueName(JobsQueue, lane), LaneQueueName(JobsQueue, lane) + ".dlq", rank,
            LaneWeights.TryGetValue(lane, out var weight) ? weight : 0))];

    /// <summary>The queue of <paramref name="lane"/>: <c>{jobsQueue}.{lane}</c>; empty lane = <paramref name="jobsQueue"/> itself.</summary>
    public static string LaneQueueName(string jobsQueue, string? lane) => string.IsNullOrEmpty(lane) ? jobsQueue : jobsQueue + "." + lane;

    public string EffectiveDeadLetterQueue => string.IsNullOrWhiteSpace(DeadLetterQueue) ? JobsQueue + ".dlq" : DeadLetterQueue;
}

/// <summary>
/// One priority lane: its name (empty for the single default lane), queue, dead-letter queue, rank (0 = highest) and
/// weight (<see cref="RabbitMqOptions.LaneWeights"/>; 0 = strict order between lanes).
/// </summary>
public sealed record LaneQueue(string Lane, string Queue, string DeadLetterQueue, int Rank, int Weight = 0);
