namespace QueueWorker.Cli.Tests.Broker;

/// <summary>
/// The qw tests that need the real RabbitMQ share one <see cref="BrokerFixture"/> (QueueWorker.Testing): the shared
/// broker, <c>QW_TEST_RABBITMQ_URI</c>. Unreachable is a failure, never a skip: test.sh starts the broker first.
/// </summary>
[CollectionDefinition(Name)]
public sealed class BrokerCollection : ICollectionFixture<BrokerFixture>
{
    public const string Name = "broker";
}
