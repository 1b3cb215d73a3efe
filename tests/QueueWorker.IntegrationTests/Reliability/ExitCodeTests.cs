using Xunit.Abstractions;

namespace QueueWorker.IntegrationTests.Reliability;

/// <summary>A worker that stops because it cannot do its job must say so with its exit code: orchestrators restart (and alert on) non-zero exits only.</summary>
[Collection(ReliabilityCollection.Name)]
[Trait("Category", "Integration")]
public sealed class ExitCodeTests(ITestOutputHelper output)
{
    [Fact]
    public async Task JobsQueueExistsWithOtherSettings_WorkerStopsWithNonZeroExitCode()
    {
        await using var broker = await TestBroker.ConnectAsync();
        var jobs = TestBroker.UniqueName("rel.classic-jobs");
        // A classic queue where the worker wants a quorum queue with a delivery limit: retrying cannot help.
        await broker.DeclareQueueAsync(jobs);
        broker.Own(jobs + ".dlq");
        broker.Own(jobs + ".parked");
        var results = TestBroker.UniqueName("rel.results");
        broker.Own(results);

        await using var worker = WorkerProcess.Start(new Dictionary<string, string>
        {
            ["RabbitMq:JobsQueue"] = jobs,
            ["RabbitMq:ResultsQueue"] = results,
            ["Inference:ContextSize"] = "1024",
        });
        var code = await worker.WaitForExitAsync(TimeSpan.FromSeconds(120));
        output.WriteLine(worker.Output);

        Assert.Contains($"Queue '{jobs}' already exists with other settings", worker.Output);
        Assert.NotEqual(0, code);
    }
}
