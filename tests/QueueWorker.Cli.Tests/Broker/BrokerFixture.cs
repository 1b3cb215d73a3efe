using RabbitMQ.Client;

namespace QueueWorker.Cli.Tests.Broker;

/// <summary>
/// The real RabbitMQ the integration tests need (127.0.0.1, guest/guest; QW_TEST_RABBITMQ_URI
/// overrides). Unreachable is a failure, never a skip: test.sh starts the broker first.
/// </summary>
public sealed class BrokerFixture : IAsyncLifetime
{
    public string Uri { get; } = Environment.GetEnvironmentVariable("QW_TEST_RABBITMQ_URI") is { Length: > 0 } uri ? uri : "amqp://guest:guest@127.0.0.1:5672/";

    public IConnection Connection { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        try
        {
            Connection = await new ConnectionFactory { Uri = new System.Uri(Uri), ClientProvidedName = "qw-tests fixture" }.CreateConnectionAsync();
        }
        catch (Exception ex)
        {
            throw new InvalidOperationException(
                $"RabbitMQ is not reachable at {Uri} ({ex.Message}). The qw integration tests need a real broker: " +
                "run ./test.sh (it starts one) or set QW_TEST_RABBITMQ_URI.", ex);
        }
    }

    public async Task DisposeAsync()
    {
        if (Connection is not null) await Connection.DisposeAsync();
    }

    /// <summary>A queue name no other test (or helper) uses.</summary>
    public static string UniqueQueue(string purpose) => $"qw-test-{purpose}-{Guid.NewGuid():N}";
}

[CollectionDefinition(Name)]
public sealed class BrokerCollection : ICollectionFixture<BrokerFixture>
{
    public const string Name = "broker";
}
