using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace QueueWorker.Messaging;

/// <summary>
/// The queues the worker needs, all durable quorum queues (replicated on a cluster, so losing a node loses neither a job
/// nor a confirmed result): jobs (with a delivery limit, poison jobs dead-lettered at least once through the default
/// exchange), the dead-letter queue, the results queue and, when the worker answers dead letters, the
/// parked queue where it keeps them for replay. Declaring is idempotent; a queue that exists with other
/// settings gives a <see cref="TopologyMismatchException"/> that names it, what differs and how to migrate.
/// </summary>
public static class Topology
{
    private const ushort PreconditionFailed = 406;

    /// <summary>The script that parks an existing queue's messages and moves them into the queue the worker declares anew.</summary>
    public const string MigrationScript = "ops/rabbitmq/migrate-to-quorum.sh";

    /// <summary>The jobs queue (the first lane's queue).</summary>
    public static Dictionary<string, object?> JobsQueueArguments(RabbitMqOptions options) => LaneQueueArguments(options, options.LaneQueues[0]);

    /// <summary>
    /// A lane's queue: quorum, delivery limit, dead letters to the lane's DLQ. <c>at-least-once</c> dead-lettering keeps a
    /// poison job in the queue until the DLQ has confirmed it (the default, at-most-once, can drop it when a node is lost);
    /// the broker accepts that strategy only with <c>x-overflow: reject-publish</c>, so a queue that reaches its length
    /// limit (<c>RabbitMq:MaxQueuedJobs</c>, or one an operator sets by policy) refuses new publishes (a nack: qw backs off
    /// and retries) instead of dropping old jobs.
    /// </summary>
    public static Dictionary<string, object?> LaneQueueArguments(RabbitMqOptions options, LaneQueue lane)
    {
        var args = new Dictionary<string, object?>
        {
            ["x-queue-type"] = "quorum",
            ["x-delivery-limit"] = options.DeliveryLimit,
            ["x-dead-letter-exchange"] = "",
            ["x-dead-letter-routing-key"] = lane.DeadLetterQueue,
            ["x-dead-letter-strategy"] = "at-least-once",
            ["x-overflow"] = "reject-publish",
        };
        if (options.MaxQueuedJobs > 0) args["x-max-length"] = options.MaxQueuedJobs;
        return args;
    }

    /// <summary>Results, dead-letter and parked queues: quorum, nothing else.</summary>
    public static Dictionary<string, object?> QuorumQueueArguments() => new() { ["x-queue-type"] = "quorum" };

    /// <summary>The parked queue: answered dead letters kept for replay, replicated like the jobs they were.</summary>
    public static Dictionary<string, object?> ParkedQueueArguments => QuorumQueueArguments();

    /// <summary>Declares the queues (the parked one only with <c>RabbitMq:AnswerDeadLetters</c>), each on its own short-lived channel (a failed declare closes its channel).</summary>
    public static async Task DeclareAsync(IConnection connection, RabbitMqOptions options, CancellationToken cancellationToken)
    {
        // Dead-letter queues first (each lane's queue routes to its own), then results and parked, then the lanes.
        var plain = QuorumQueueArguments();
        foreach (var lane in options.LaneQueues)
            await DeclareQueueAsync(connection, lane.DeadLetterQueue, plain, cancellationToken).ConfigureAwait(false);
        await DeclareQueueAsync(connection, options.ResultsQueue, plain, cancellationToken).ConfigureAwait(false);
        if (options.AnswerDeadLetters)
            await DeclareQueueAsync(connection, options.EffectiveParkedQueue, ParkedQueueArguments, cancellationToken).ConfigureAwait(false);
        foreach (var lane in options.LaneQueues)
            await DeclareQueueAsync(connection, lane.Queue, LaneQueueArguments(options, lane), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The control fanout exchange (durable: it outlives workers, so a producer can always publish a cancel).</summary>
    public static async Task DeclareControlExchangeAsync(IChannel channel, RabbitMqOptions options, CancellationToken cancellationToken) =>
        await channel.ExchangeDeclareAsync(options.ControlExchange, ExchangeType.Fanout, durable: true, autoDelete: false,
            cancellationToken: cancellationToken).ConfigureAwait(false);

    private static async Task DeclareQueueAsync(IConnection connection, string queue, IDictionary<string, object?> arguments,
        CancellationToken cancellationToken)
    {
        var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        try
        {
            await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments,
                cancellationToken: cancellationToken).ConfigureAwait(false);
            await channel.CloseAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == PreconditionFailed)
        {
            throw new TopologyMismatchException(queue, MismatchMessage(queue, arguments, ex.ShutdownReason.ReplyText));
        }
        finally
        {
            await channel.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>The one startup line for a queue that exists with other settings: which queue, what the worker wants, how to migrate.</summary>
    public static string MismatchMessage(string queue, IDictionary<string, object?> arguments, string brokerSays) =>
        $"Queue '{queue}' already exists with other settings than this worker declares (durable, {Describe(arguments)}). " +
        $"The broker says: {brokerSays}. " +
        // Usually a classic results or dead-letter queue, or a jobs queue without the newer arguments, from an older version.
        $"To keep its messages and let the worker declare it: stop the workers, run {MigrationScript} park {queue}, start one worker, " +
        $"then run {MigrationScript} restore {queue} (README, Operating: migrating to quorum queues). " +
        "Or set RabbitMq:DeclareTopology=false to use it as it is.";

    private static string Describe(IDictionary<string, object?> arguments) =>
        string.Join(", ", arguments.Select(a => a.Value is string s ? $"{a.Key}='{s}'" : $"{a.Key}={a.Value}"));
}

/// <summary>A queue exists with other arguments than the worker declares (AMQP 406 PRECONDITION_FAILED). Retrying cannot help.</summary>
public sealed class TopologyMismatchException(string queue, string message) : Exception(message)
{
    public string Queue { get; } = queue;
}
