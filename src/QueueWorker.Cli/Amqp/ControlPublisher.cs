using QueueWorker.Cli.Infrastructure;
using QueueWorker.Contracts;
using QueueWorker.Messaging;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace QueueWorker.Cli.Amqp;

/// <summary>Publishes one control message (a cancel) to the workers' fanout exchange, <c>RabbitMq:ControlExchange</c>, confirmed.</summary>
internal static class ControlPublisher
{
    public static async Task PublishCancelAsync(RabbitMqOptions options, CancelRequest request, string connectionName, CancellationToken cancellationToken)
    {
        var factory = new ConnectionFactory
        {
            Uri = new Uri(options.Uri),
            ClientProvidedName = connectionName,
            AutomaticRecoveryEnabled = false,
            RequestedHeartbeat = TimeSpan.FromSeconds(options.HeartbeatSeconds),
        };
        IConnection connection;
        try
        {
            connection = await factory.CreateConnectionAsync(cancellationToken);
        }
        catch (BrokerUnreachableException ex)
        {
            throw new CliException($"cannot reach RabbitMQ at {SecretMasker.MaskUri(options.Uri)}: {ex.InnerException?.Message ?? ex.Message}", ExitCodes.Broker, ex);
        }
        await using (connection)
        {
            await using var channel = await connection.CreateChannelAsync(
                new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
            try
            {
                // Transient on purpose: a cancel matters to the workers running now, and each keeps what it heard in memory.
                await channel.BasicPublishAsync(options.ControlExchange, "", mandatory: false,
                    new BasicProperties { ContentType = "application/json" }, ControlMessage.Cancel(request), cancellationToken);
            }
            catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
            {
                throw new CliException(
                    $"the control exchange {options.ControlExchange} does not exist: no worker has started on {SecretMasker.MaskUri(options.Uri)} (RabbitMq:ControlExchange).",
                    ExitCodes.Broker, ex);
            }
            await connection.CloseAsync(cancellationToken);
        }
    }
}
