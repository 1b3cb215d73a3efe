using System.Net;
using System.Net.Sockets;
using QueueWorker.IntegrationTests.Reliability;
using RabbitMQ.Client;

namespace QueueWorker.IntegrationTests;

/// <summary>The shared test support's own promises that no other test relies on yet.</summary>
[Trait("Category", "Unit")]
public sealed class TestingSupportTests
{
    [Fact]
    public void FreePortForRabbitMq_PortAndDistributionPortBothBindable()
    {
        var port = FreePort.ForRabbitMq();

        using var amqp = new TcpListener(IPAddress.Loopback, port);
        using var distribution = new TcpListener(IPAddress.Loopback, port + 20000);
        amqp.Start();
        distribution.Start();
    }

    [Fact]
    public void Waits_ScaleOnlyOnCI()
    {
        Assert.Equal(TestSettings.IsCI ? 3 : 1, Waits.Factor);
        Assert.Equal(TimeSpan.FromSeconds(20) * Waits.Factor, Waits.Message);
    }
}

/// <summary>A private node stops, is killed and starts again on the same port, disturbing nobody else.</summary>
[Collection(ReliabilityCollection.Name)]
[Trait("Category", "Integration")]
public sealed class PrivateRabbitNodeTests(PrivateRabbitNode node) : IClassFixture<PrivateRabbitNode>
{
    [Fact]
    public async Task KillThenStart_SamePortAnswersAgainAndTheSharedBrokerNeverNoticed()
    {
        await using var shared = await BrokerFixture.ConnectAsync();
        await using (var before = await BrokerFixture.ConnectAsync(node.Uri))
            Assert.True(before.Connection.IsOpen);

        await node.KillAsync();
        await Assert.ThrowsAnyAsync<Exception>(() => new ConnectionFactory { Uri = new Uri(node.Uri) }.CreateConnectionAsync());
        await node.StartAsync();

        await using var after = await BrokerFixture.ConnectAsync(node.Uri);
        Assert.True(after.Connection.IsOpen);
        Assert.True(shared.Connection.IsOpen);
        await node.StopAsync();
    }
}
