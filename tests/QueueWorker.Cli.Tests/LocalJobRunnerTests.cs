using System.Text;
using QueueWorker.Cli.Batch;
using QueueWorker.Cli.Local;
using QueueWorker.Contracts;
using QueueWorker.Inference;

namespace QueueWorker.Cli.Tests;

[Trait("Category", "Unit")]
public sealed class LocalJobRunnerTests
{
    private static BatchRequest Request(string line) =>
        Assert.IsType<BatchRequest>(BatchInputParser.Parse(Encoding.UTF8.GetBytes(line), 1, JobLimits.Default, 1 << 20));

    [Fact]
    public async Task RunAsync_Completed_WorkerShapedResultWithTimings()
    {
        var engine = new ScriptedEngine();
        await using var runner = new LocalJobRunner(engine, new InferenceOptions(), TimeProvider.System);
        var request = Request("""{"custom_id":"s1","url":"/v1/completions","body":{"prompt":"Once upon a time","max_tokens":8,"temperature":0,"stop":["."],"seed":3}}""");

        var result = await runner.RunAsync(request.Submission, CancellationToken.None);

        Assert.Equal("s1", result.Id);
        Assert.Equal(JobStatus.Completed, result.Status);
        Assert.Equal("echo: Once upon a time", result.Text);
        Assert.Equal(new Usage(4, 3, 0), result.Usage);
        // The first token comes from prefill: (3 - 1) tokens in 4 ms of generation.
        Assert.Equal(500.0, result.Timings!.TokensPerS);
        Assert.Equal("fake.gguf", result.Worker!.Model);
        var sent = Assert.Single(engine.Requests);
        Assert.Equal(8, sent.MaxTokens);
        Assert.Equal(0f, sent.Sampling.Temperature);
        Assert.Equal(3u, sent.Sampling.Seed);
        Assert.Equal(["."], sent.Stop);
        Assert.NotNull(sent.Deadline);
    }

    [Fact]
    public async Task RunAsync_DefaultsOmitted_EngineDefaultsAndDefaultMaxTokens()
    {
        var engine = new ScriptedEngine();
        await using var runner = new LocalJobRunner(engine, new InferenceOptions(), TimeProvider.System);

        await runner.RunAsync(Request("""{"id":"d","prompt":"x"}""").Submission, CancellationToken.None);

        var sent = Assert.Single(engine.Requests);
        var defaults = new SamplingParams();
        Assert.Equal(defaults.Temperature, sent.Sampling.Temperature);
        Assert.Equal(defaults.TopK, sent.Sampling.TopK);
        Assert.Equal(JobLimits.Default.DefaultMaxTokens, sent.MaxTokens);
    }

    [Fact]
    public async Task RunAsync_EngineRejectsJob_FailedResultWithCode()
    {
        await using var runner = new LocalJobRunner(new ScriptedEngine(), new InferenceOptions(), TimeProvider.System);

        var result = await runner.RunAsync(Request("""{"id":"l","prompt":"this is too long"}""").Submission, CancellationToken.None);

        Assert.Equal(JobStatus.Failed, result.Status);
        Assert.Equal(ErrorCodes.PromptTooLong, result.Error!.Code);
        Assert.Equal("prompt", result.Error.Field);
    }
}
