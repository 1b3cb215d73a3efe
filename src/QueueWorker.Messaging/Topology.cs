using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace QueueWorker.Messaging;

/// <summary>
/// The queues the worker needs: jobs (durable quorum queue with a delivery limit, poison jobs dead-lettered through the
/// default exchange), the dead-letter queue, the results queue (durable) and, when the worker answers dead letters,
/// the parked queue (durable quorum queue) where it keeps them for replay. Declaring is idempotent; a queue that exists
/// with other settings gives a <see cref="TopologyMismatchException"/> that names it and what differs.
/// </summary>
public static class Topology
{
    private const ushort PreconditionFailed = 406;

    public static Dictionary<string, object?> JobsQueueArguments(RabbitMqOptions options) => new()
    {
        ["x-queue-type"] = "quorum",
        ["x-delivery-limit"] = options.DeliveryLimit,
        ["x-dead-letter-exchange"] = "",
        ["x-dead-letter-routing-key"] = options.EffectiveDeadLetterQueue,
    };

    /// <summary>The parked queue: answered dead letters kept for replay, replicated like the jobs they were.</summary>
    public static Dictionary<string, object?> ParkedQueueArguments => new() { ["x-queue-type"] = "quorum" };

    /// <summary>Declares the queues (the parked one only with <c>RabbitMq:AnswerDeadLetters</c>), each on its own short-lived channel (a failed declare closes its channel).</summary>
    public static async Task DeclareAsync(IConnection connection, RabbitMqOptions options, CancellationToken cancellationToken)
    {
        // Dead-letter queue first: the jobs queue routes to it.
        await DeclareQueueAsync(connection, options.EffectiveDeadLetterQueue, null, "durable", cancellationToken).ConfigureAwait(false);
        await DeclareQueueAsync(connection, options.ResultsQueue, null, "durable", cancellationToken).ConfigureAwait(false);
        if (options.AnswerDeadLetters)
            await DeclareQueueAsync(connection, options.EffectiveParkedQueue, ParkedQueueArguments, "durable, x-queue-type='quorum'", cancellationToken).ConfigureAwait(false);
        var jobsArgs = JobsQueueArguments(options);
        await DeclareQueueAsync(connection, options.JobsQueue, jobsArgs, "durable, " + Describe(jobsArgs), cancellationToken).ConfigureAwait(false);
    }

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
