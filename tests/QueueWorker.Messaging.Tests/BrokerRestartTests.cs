namespace QueueWorker.Messaging.Tests;

/// <summary>The broker application restarts under a running worker (<c>rabbitmqctl stop_app</c> / <c>start_app</c>), on a private broker.</summary>
[Trait("Category", "Integration")]
public sealed class BrokerRestartTests(PrivateRabbitNode privateBroker, ITestOutputHelper output) : IClassFixture<PrivateRabbitNode>
{
    [Fact]
    public async Task BrokerAppRestarted_WorkerRecoversAndEveryJobGetsItsResult()
    {
        await using var broker = new RabbitMqFixture(privateBroker.Uri);
        await broker.InitializeAsync();
        var options = broker.NewOptions("restart", o => o.PublishRetries = 6);
        await using var worker = await TestWorker.StartAsync(options, output);
        await broker.PublishJobAsync(options.JobsQueue, RabbitMqFixture.JobBody("before"), p => p.MessageId = "before");
        Assert.Equal("before", (await broker.GetAsync(options.ResultsQueue)).BasicProperties.MessageId);

        var stopped = await privateBroker.Ctl.TryRunAsync("stop_app");
        Assert.True(stopped.Code == 0, stopped.Output);
        await worker.WaitUntilAsync(() => !worker.Status.IsConnected, "the worker sees the broker go", TimeSpan.FromSeconds(20));
        await Task.Delay(TimeSpan.FromSeconds(3)); // a few failed recovery attempts while the app is down
        var started = await privateBroker.Ctl.TryRunAsync("start_app");
        Assert.True(started.Code == 0, started.Output);
        await worker.WaitUntilAsync(() => worker.Status.IsConsuming, "the worker consumes again", TimeSpan.FromSeconds(60));

        await using var after = new RabbitMqFixture(privateBroker.Uri);
        await after.InitializeAsync();
        for (var i = 0; i < 3; i++)
            await after.PublishJobAsync(options.JobsQueue, RabbitMqFixture.JobBody($"after-{i}"), p => p.MessageId = $"after-{i}");
        var ids = new HashSet<string>();
        for (var i = 0; i < 3; i++)
            ids.Add((await after.GetAsync(options.ResultsQueue, TimeSpan.FromSeconds(30))).BasicProperties.MessageId!);
        Assert.Equal(["after-0", "after-1", "after-2"], ids.Order());
    }
}
