using QueueWorker.Cli.Amqp;
using QueueWorker.Cli.Batch;
using QueueWorker.Cli.Infrastructure;
using QueueWorker.Cli.Running;
using QueueWorker.Contracts;
using QueueWorker.Messaging;

namespace QueueWorker.Cli.Tests;

[Trait("Category", "Unit")]
public sealed class BatchCancelAndLaneTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Answers each job as the worker would, except those whose batch a control message cancelled.</summary>
    private sealed class CancellingRunner(int cancelAfter) : IJobRunner
    {
        private int _ran;
        public List<string?> BatchIds { get; } = [];
        public string Description => "cancelling";
        public RunnerCounters Counters { get; } = new();
        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task<JobResult> RunAsync(JobSubmission submission, CancellationToken cancellationToken)
        {
            lock (BatchIds) BatchIds.Add(submission.Job.BatchId);
            var n = Interlocked.Increment(ref _ran);
            return Task.FromResult(n <= cancelAfter
                ? new JobResult { Id = submission.Id, Status = JobStatus.Completed, Text = "t", FinishReason = FinishReasons.Stop }
                : JobResult.Failed(submission.Id, new JobError(ErrorCodes.Cancelled, "cancelled")) with { FinishReason = FinishReasons.Cancelled });
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    [Fact]
    public async Task Run_BatchCancelledMidway_CancelledJobsNotWrittenSoAResumeRunsThem()
    {
        var input = _dir.File("in.jsonl");
        await File.WriteAllLinesAsync(input, Enumerable.Range(1, 10).Select(i => $$"""{"id":"j{{i}}","prompt":"x"}"""));
        var output = _dir.File("out.jsonl");
        var runner = new CancellingRunner(cancelAfter: 3);

        var outcome = await new BatchProcessor(runner, new BatchOptions(input, output, 1, JobLimits.Default, 1 << 20, "b-1"), TimeProvider.System)
            .RunAsync(CancellationToken.None);

        Assert.Equal(BatchOutcome.Cancelled, outcome);
        Assert.Equal(3, File.ReadAllLines(output).Length);
        Assert.All(runner.BatchIds, b => Assert.Equal("b-1", b));

        var resumed = new CancellingRunner(cancelAfter: int.MaxValue);
        outcome = await new BatchProcessor(resumed, new BatchOptions(input, output, 1, JobLimits.Default, 1 << 20, "b-2"), TimeProvider.System)
            .RunAsync(CancellationToken.None);
        Assert.Equal(BatchOutcome.Finished, outcome);
        Assert.Equal(7, resumed.BatchIds.Count);
        Assert.Equal(10, File.ReadAllLines(output).Length);
    }

    [Fact]
    public void ApplyLane_Given_PointsAtTheLaneQueue()
    {
        var options = new RabbitMqOptions { JobsQueue = "llm.jobs" };

        CliConfiguration.ApplyLane(options, "interactive", local: false, lowest: false);

        Assert.Equal("llm.jobs.interactive", options.JobsQueue);
    }

    [Fact]
    public void ApplyLane_NoneButLanesConfigured_BatchTakesTheLowestSubmitTheHighest()
    {
        var batch = new RabbitMqOptions { Lanes = ["interactive", "batch"] };
        var submit = new RabbitMqOptions { Lanes = ["interactive", "batch"] };

        CliConfiguration.ApplyLane(batch, null, local: false, lowest: true);
        CliConfiguration.ApplyLane(submit, null, local: false, lowest: false);

        Assert.Equal("llm.jobs.batch", batch.JobsQueue);
        Assert.Equal("llm.jobs.interactive", submit.JobsQueue);
    }

    [Theory]
    [InlineData("nope", "not one of RabbitMq:Lanes")]
    [InlineData("a b", "ASCII letters")]
    public void ApplyLane_Bad_ClearError(string lane, string expected)
    {
        var options = new RabbitMqOptions { Lanes = ["interactive", "batch"] };

        var ex = Assert.Throws<CliException>(() => CliConfiguration.ApplyLane(options, lane, local: false, lowest: false));

        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void FullBackoff_Doubles_UpToTheCap()
    {
        Assert.Equal(TimeSpan.FromMilliseconds(250), BrokerJobRunner.FullBackoff(0));
        Assert.Equal(TimeSpan.FromMilliseconds(500), BrokerJobRunner.FullBackoff(1));
        Assert.Equal(TimeSpan.FromSeconds(4), BrokerJobRunner.FullBackoff(4));
        Assert.Equal(BrokerJobRunner.MaxFullBackoff, BrokerJobRunner.FullBackoff(5));
        Assert.Equal(BrokerJobRunner.MaxFullBackoff, BrokerJobRunner.FullBackoff(int.MaxValue));
    }
}
