namespace QueueWorker.Messaging.Tests;

/// <summary>
/// The broker closes the consumer channel (as on a consumer timeout) while a job is still running. Found by the
/// reliability tests: when the job ran inside the client's consumer callback, the client's frame loop waited for that
/// callback while closing the channel, so nothing else on the connection moved (no publisher confirms, no new channel)
/// until the job ended, and the failed re-subscribe stopped the host.
/// </summary>
[Collection(RabbitMqCollection.Name)]
[Trait("Category", "Integration")]
public sealed class ChannelClosedMidJobTests(RabbitMqFixture broker, ITestOutputHelper output)
{
    [Fact]
    public async Task ConsumerChannelClosedByBroker_JobStillRunning_ConnectionKeepsWorkingAndJobRedelivered()
    {
        var options = broker.NewOptions("closed-mid-job", o => o.DeliveryLimit = 10);
        var firstStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new TestJobHandler();
        handler.Behaviour = async (job, ct) =>
        {
            if (job.DeliveryCount == 0)
            {
                firstStarted.TrySetResult();
                await release.Task.WaitAsync(ct); // the first delivery runs "forever"
            }
            return TestJobHandler.Complete(job);
        };
        await using var worker = await TestWorker.StartAsync(options, output, handler);
        try
        {
            await broker.PublishJobAsync(options.JobsQueue, RabbitMqFixture.JobBody("long"), p => p.MessageId = "long");
            await firstStarted.Task.WaitAsync(Waits.Seconds(20));
            var channel = worker.Consumer.ConsumerChannel!;

            // A channel error (ack of a tag never delivered): the broker closes the channel and requeues the job.
            await channel.BasicAckAsync(424242, multiple: false);
            await worker.WaitUntilAsync(() => !channel.IsOpen, "the broker closes the consumer channel", TimeSpan.FromSeconds(10));

            // While the first run still holds its handler: a new channel, the job redelivered there, its result confirmed.
            await worker.WaitUntilAsync(() => worker.Consumer.ConsumerChannel is { IsOpen: true } c && !ReferenceEquals(c, channel),
                "a new consumer channel", TimeSpan.FromSeconds(15));
            var result = await broker.GetAsync(options.ResultsQueue, TimeSpan.FromSeconds(15));
            Assert.Equal("long", result.BasicProperties.MessageId);
            Assert.False(release.Task.IsCompleted);
            Assert.True(worker.Status.IsConnected);
        }
        finally
        {
            release.TrySetResult();
        }

        // The first run ends later: its result is published too (same message_id), its ack is skipped, nothing is left.
        Assert.Equal("long", (await broker.GetAsync(options.ResultsQueue, TimeSpan.FromSeconds(15))).BasicProperties.MessageId);
        await worker.WaitUntilAsync(() => worker.Status.InFlight == 0, "no job in flight", TimeSpan.FromSeconds(15));
        await worker.StopAsync();
        Assert.Equal(0u, await broker.ReadyCountAsync(options.JobsQueue));
    }
}
