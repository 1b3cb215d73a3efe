using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Polly;
using Polly.Timeout;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace QueueWorker.Messaging.Tests;

[Trait("Category", "Unit")]
public sealed class ResiliencePipelineTests
{
    /// <summary>Runs <paramref name="action"/> through the pipeline, advancing the fake clock until it ends.</summary>
    private static async Task<(Exception? Error, TimeSpan Elapsed)> RunAsync(ResiliencePipeline pipeline, FakeTimeProvider time, Func<CancellationToken, ValueTask> action)
    {
        var start = time.GetUtcNow();
        var run = pipeline.ExecuteAsync(action, CancellationToken.None).AsTask();
        for (var i = 0; i < 10_000 && !run.IsCompleted; i++)
        {
            await Task.Delay(1);
            time.Advance(TimeSpan.FromMilliseconds(100));
        }
        Assert.True(run.IsCompleted, "the pipeline did not finish");
        var error = await Record.ExceptionAsync(() => run);
        return (error, time.GetUtcNow() - start);
    }

    [Fact]
    public void Describe_BrokerInternalError_PointsToTheKnownBrokerFailure()
    {
        var described = ResiliencePipelines.Describe(new OperationInterruptedException(new ShutdownEventArgs(ShutdownInitiator.Peer, 541, "INTERNAL_ERROR")));

        Assert.Contains("INTERNAL_ERROR", described, StringComparison.Ordinal);
        Assert.Contains("rabbit_fifo_dlx_sup", described, StringComparison.Ordinal);
        Assert.DoesNotContain("rabbit_fifo_dlx_sup", ResiliencePipelines.Describe(ConnectionGone()), StringComparison.Ordinal);
    }

    private static AlreadyClosedException ConnectionGone() =>
        new(new ShutdownEventArgs(ShutdownInitiator.Peer, 320, "CONNECTION_FORCED - broker forced connection closure"));

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(6)]
    public async Task CreatePublish_AlwaysTransient_TriesConfiguredAttemptsThenThrows(int attempts)
    {
        var time = new FakeTimeProvider();
        var pipeline = ResiliencePipelines.CreatePublish(attempts, time, NullLogger.Instance);
        var calls = 0;

        var (error, elapsed) = await RunAsync(pipeline, time, _ =>
        {
            calls++;
            throw ConnectionGone();
        });

        Assert.Equal(attempts, calls);
        Assert.IsType<AlreadyClosedException>(error);
        if (attempts == 6)
        {
            // Exponential backoff from 500 ms: 5 delays of ~0.5+1+2+4+8 s, jittered; well above a fixed 500 ms each.
            Assert.InRange(elapsed, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(40));
        }
    }

    [Fact]
    public async Task CreatePublish_TransientThenSuccess_StopsRetrying()
    {
        var time = new FakeTimeProvider();
        var pipeline = ResiliencePipelines.CreatePublish(6, time, NullLogger.Instance);
        var calls = 0;

        var (error, _) = await RunAsync(pipeline, time, _ =>
        {
            if (++calls < 3)
                throw new PublishException((ulong)calls, isReturn: false);
            return ValueTask.CompletedTask;
        });

        Assert.Null(error);
        Assert.Equal(3, calls);
    }

    [Fact]
    public async Task CreatePublish_Returned_NotRetried()
    {
        var time = new FakeTimeProvider();
        var pipeline = ResiliencePipelines.CreatePublish(6, time, NullLogger.Instance);
        var calls = 0;

        var (error, _) = await RunAsync(pipeline, time, _ =>
        {
            calls++;
            throw new PublishReturnException(1, "NO_ROUTE", "", "gone", 312, "NO_ROUTE");
        });

        Assert.Equal(1, calls);
        Assert.IsType<PublishReturnException>(error);
    }

    [Fact]
    public async Task CreatePublish_BugException_NotRetried()
    {
        var time = new FakeTimeProvider();
        var pipeline = ResiliencePipelines.CreatePublish(6, time, NullLogger.Instance);
        var calls = 0;

        var (error, _) = await RunAsync(pipeline, time, _ =>
        {
            calls++;
            throw new InvalidOperationException("a bug");
        });

        Assert.Equal(1, calls);
        Assert.IsType<InvalidOperationException>(error);
    }

    [Fact]
    public async Task CreatePublish_ConfirmNeverComes_AttemptTimesOutAndIsRetried()
    {
        var time = new FakeTimeProvider();
        var pipeline = ResiliencePipelines.CreatePublish(3, time, NullLogger.Instance, attemptTimeout: TimeSpan.FromSeconds(2));
        var calls = 0;

        var (error, _) = await RunAsync(pipeline, time, async ct =>
        {
            calls++;
            await Task.Delay(Timeout.InfiniteTimeSpan, time, ct);
        });

        Assert.Equal(3, calls);
        Assert.IsType<TimeoutRejectedException>(error);
    }
}
