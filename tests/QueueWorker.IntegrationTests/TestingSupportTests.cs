using System.Net;
using System.Net.Sockets;
using QueueWorker.IntegrationTests.Reliability;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

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

    [Fact]
    public async Task DeadLetterSupervisorGone_RestartIfGone_RestartsTheNodeAndAtLeastOnceQueuesDeclareAgain()
    {
        await node.RestartIfDeadLetterSupervisorGoneAsync(_ => { }); // running, whatever the other test left
        Assert.False(await node.RestartIfDeadLetterSupervisorGoneAsync(_ => { }));

        // What RabbitMQ's bug leaves behind: the supervisor stopped and never started again.
        await node.Ctl.RunAsync("eval", "supervisor:terminate_child(rabbit_sup, rabbit_fifo_dlx_sup).");
        await using (var broken = await BrokerFixture.ConnectAsync(node.Uri))
            await Assert.ThrowsAnyAsync<OperationInterruptedException>(() => DeclareAtLeastOnceAsync(broken, "qw-test.dlx-broken"));

        var said = new List<string>();
        Assert.True(await node.RestartIfDeadLetterSupervisorGoneAsync(said.Add));
        Assert.Contains(said, line => line.Contains("rabbit_fifo_dlx_sup is gone", StringComparison.Ordinal));
        await using var healed = await BrokerFixture.ConnectAsync(node.Uri);
        await DeclareAtLeastOnceAsync(healed, "qw-test.dlx-healed");
    }

    // The worker's jobs queue: quorum, dead-lettering at least once.
    private static async Task DeclareAtLeastOnceAsync(BrokerFixture broker, string queue)
    {
        await using var channel = await broker.OpenChannelAsync(confirms: false);
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments: ReliabilityHarness.JobsQueueArguments(queue + ".dlq"));
        await channel.QueueDeleteAsync(queue);
    }
}
