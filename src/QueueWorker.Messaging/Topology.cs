using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace QueueWorker.Messaging;

/// <summary>
/// The queues the worker needs: jobs (durable quorum queue with a delivery limit, poison jobs dead-lettered through the
/// default exchange), the dead-letter queue and the results queue (durable). Declaring is idempotent; a queue that exists
/// with other settings gives a <see cref="TopologyMismatchException"/> that names it and what differs.
/// </summary>
public static class Topology
{
    private const ushort PreconditionFailed = 406;

    public static Dictionary<string, object?> JobsQueueArguments(RabbitMqOptions options) => LaneQueueArguments(options, options.LaneQueues[0]);

    /// <summary>A lane's queue: quorum, the delivery limit, its own dead-letter queue, and the length limit when set.</summary>
    public static Dictionary<string, object?> LaneQueueArguments(RabbitMqOptions options, LaneQueue lane)
    {
        var args = new Dictionary<string, object?>
        {
            ["x-queue-type"] = "quorum",
            ["x-delivery-limit"] = options.DeliveryLimit,
            ["x-dead-letter-exchange"] = "",
            ["x-dead-letter-routing-key"] = lane.DeadLetterQueue,
        };
        if (options.MaxQueuedJobs > 0)
        {
            // Producers hear "full" (a nack) instead of the oldest jobs being dropped.
            args["x-max-length"] = options.MaxQueuedJobs;
            args["x-overflow"] = "reject-publish";
        }
        return args;
    }

    /// <summary>Declares the three queues, each on its own short-lived channel (a failed declare closes its channel).</summary>
    public static async Task DeclareAsync(IConnection connection, RabbitMqOptions options, CancellationToken cancellationToken)
    {
        await DeclareQueueAsync(connection, options.ResultsQueue, null, "durable", cancellationToken).ConfigureAwait(false);
        foreach (var lane in options.LaneQueues)
        {
            // Dead-letter queue first: the lane's queue routes to it.
            await DeclareQueueAsync(connection, lane.DeadLetterQueue, null, "durable", cancellationToken).ConfigureAwait(false);
            var args = LaneQueueArguments(options, lane);
            await DeclareQueueAsync(connection, lane.Queue, args, "durable, " + Describe(args), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The control fanout exchange (durable: it outlives workers, so a producer can always publish a cancel).</summary>
    public static async Task DeclareControlExchangeAsync(IChannel channel, RabbitMqOptions options, CancellationToken cancellationToken) =>
        await channel.ExchangeDeclareAsync(options.ControlExchange, ExchangeType.Fanout, durable: true, autoDelete: false,
            cancellationToken: cancellationToken).ConfigureAwait(false);

    private static async Task DeclareQueueAsync(IConnection connection, string queue, IDictionary<string, object?>? arguments,
        string wanted, CancellationToken cancellationToken)
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
            throw new TopologyMismatchException(queue,
                $"Queue '{queue}' already exists with other settings than this worker declares ({wanted}). " +
                $"The broker says: {ex.ShutdownReason.ReplyText}. " +
                "Drain and delete the queue so the worker can declare it, declare it with these settings, " +
                "or set RabbitMq:DeclareTopology=false to use it as it is.");
        }
        finally
        {
            await channel.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static string Describe(IDictionary<string, object?> arguments) =>
        string.Join(", ", arguments.Select(a => a.Value is string s ? $"{a.Key}='{s}'" : $"{a.Key}={a.Value}"));
}

/// <summary>A queue exists with other arguments than the worker declares (AMQP 406 PRECONDITION_FAILED). Retrying cannot help.</summary>
public sealed class TopologyMismatchException(string queue, string message) : Exception(message)
{
    public string Queue { get; } = queue;
}
