using QueueWorker.Messaging;

namespace QueueWorker.Bench.Tests;

[Trait("Category", "Unit")]
public sealed class ClusterBenchUnitTests
{
    [Theory]
    [InlineData("1x2", 1, 2)]
    [InlineData("3x1", 3, 1)]
    [InlineData("16x64", 16, 64)]
    public void TryParse_WorkersByThreads_Parsed(string text, int workers, int threads)
    {
        Assert.True(WorkerLayout.TryParse(text, out var layout));
        Assert.Equal(new WorkerLayout(workers, threads), layout);
        Assert.Equal(text, layout.ToString());
    }

    [Theory]
    [InlineData("2")]
    [InlineData("0x1")]
    [InlineData("1x0")]
    [InlineData("17x1")]
    [InlineData("2x1x1")]
    [InlineData("-1x2")]
    [InlineData("ax2")]
    public void TryParse_NotALayout_Refused(string text) => Assert.False(WorkerLayout.TryParse(text, out _));

    [Fact]
    public void JobCyclesPerSecond_SlowerStreamBounds_PairsOverTheLongerStream()
    {
        // 1000 jobs acked in 2 s, 1000 results acked in 4 s: 1000 job cycles took 4 s.
        var jobs = new BrokerStreamResult("jobs", 100, 1000, 800, 500, "a", "b");
        var results = new BrokerStreamResult("results", 900, 1000, 400, 250, "a", "b");
        var load = new BrokerLoadResult(jobs, results);
        Assert.Equal(250, load.JobCyclesPerSecond, 6);
        Assert.Equal(4, results.AckedSeconds, 6);
    }
}

/// <summary>The broker load on the shared broker (temporary quorum queues, deleted after), small counts: every message confirmed and acked.</summary>
[Trait("Category", "Integration")]
public sealed class BrokerLoadTests
{
    [Fact]
    public async Task RunAsync_SharedBroker_EveryMessageConfirmedAndAckedOnBothStreams()
    {
        var plan = new BrokerLoadPlan(Messages: 300, JobBytes: 200, ResultBytes: 1200, InFlight: 32, Prefetch: 20, Rounds: 1);
        var load = await BrokerLoad.RunAsync(BrokerEndpoints.Parse(TestSettings.RabbitMqUri), plan, CancellationToken.None);

        Assert.Equal((300, 200), (load.Jobs.Messages, load.Jobs.Bytes));
        Assert.Equal((300, 1200), (load.Results.Messages, load.Results.Bytes));
        Assert.All(new[] { load.Jobs, load.Results }, s => Assert.True(s.ConfirmedPerSecond > 0 && s.AckedPerSecond > 0, s.ToString()));
        Assert.True(load.JobCyclesPerSecond > 0);
    }
}
