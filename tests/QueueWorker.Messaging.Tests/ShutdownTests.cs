namespace QueueWorker.Messaging.Tests;

[Collection(RabbitMqCollection.Name)]
[Trait("Category", "Integration")]
public sealed class ShutdownTests(RabbitMqFixture broker, ITestOutputHelper output)
{
    [Fact]
    public async Task StopAsync_JobShorterThanGrace_FinishesPublishesAndAcks()
    {
        var options = broker.NewOptions("stop-finish", o => o.ShutdownGraceSeconds = 10);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new TestJobHandler();
        handler.Behaviour = async (job, ct) =>
        {
            started.TrySetResult();
            await Task.Delay(TimeSpan.FromSeconds(1.5), ct);
            return TestJobHandler.Complete(job);
        };
        await using var worker = await TestWorker.StartAsync(options, output, handler);
        await broker.PublishJobAsync(options.JobsQueue, RabbitMqFixture.JobBody("job-finish"), p => p.MessageId = "job-finish");
        await started.Task.WaitAsync(Waits.Seconds(20));

        await worker.StopAsync();

        Assert.Equal("job-finish", (await broker.GetAsync(options.ResultsQueue, TimeSpan.FromSeconds(2))).BasicProperties.MessageId);
        Assert.Equal(0u, await broker.ReadyCountAsync(options.JobsQueue));
        Assert.Equal(0, worker.Status.InFlight);
        Assert.False(worker.Status.IsConsuming);
    }

    [Fact]
    public async Task StopAsync_JobLongerThanGrace_CancelledAndRequeuedNotLost()
    {
        var options = broker.NewOptions("stop-requeue", o => o.ShutdownGraceSeconds = 1);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new TestJobHandler();
        handler.Behaviour = async (job, ct) =>
        {
            started.TrySetResult();
            await Task.Delay(Timeout.InfiniteTimeSpan, ct);
            return TestJobHandler.Complete(job);
        };
        await using var worker = await TestWorker.StartAsync(options, output, handler);
        await broker.PublishJobAsync(options.JobsQueue, RabbitMqFixture.JobBody("job-requeue"), p => p.MessageId = "job-requeue");
        await started.Task.WaitAsync(Waits.Seconds(20));

        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        await worker.StopAsync();
        stopwatch.Stop();

        Assert.InRange(stopwatch.Elapsed, TimeSpan.FromSeconds(0.9), Waits.Seconds(10));
        Assert.Equal(0u, await broker.ReadyCountAsync(options.ResultsQueue));
        var job = await broker.GetAsync(options.JobsQueue, TimeSpan.FromSeconds(5));
        Assert.Equal("job-requeue", job.BasicProperties.MessageId);
        Assert.True(job.Redelivered);
    }

    [Fact]
    public async Task StopAsync_QueuedJobs_NoNewJobTakenAfterStop()
    {
        var options = broker.NewOptions("stop-idle", o => o.ShutdownGraceSeconds = 5);
        await using var worker = await TestWorker.StartAsync(options, output);

        await worker.StopAsync();
        await broker.PublishJobAsync(options.JobsQueue, RabbitMqFixture.JobBody("job-late"), p => p.MessageId = "job-late");
        await Task.Delay(500);

        Assert.Empty(worker.Handler.Received);
        Assert.Equal(1u, await broker.ReadyCountAsync(options.JobsQueue));
    }
}
