using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using QueueWorker.Contracts;
using QueueWorker.Inference;

namespace QueueWorker.Processing.Tests;

/// <summary>The pipeline's part of the OpenAI fields: <c>model</c> against <c>Model:Name</c>, and what reaches the engine.</summary>
[Trait("Category", "Unit")]
public sealed class OpenAiFieldsPipelineTests
{
    private static readonly WorkerIdentity Identity = new("worker-7", "9.8.7");
    private readonly FakeEngine _engine = new();

    private Task<JobResult> RunAsync(string body, string? servedModel)
    {
        var time = Clock.Create();
        var pipeline = new JobPipeline(_engine, new InferenceOptions(), Identity, new RecordingObserver(), time, NullLogger<JobPipeline>.Instance, servedModel);
        return pipeline.RunAsync(new JobInput { Body = Encoding.UTF8.GetBytes(body), ReceivedAt = time.GetUtcNow(), MessageId = "m" }, CancellationToken.None);
    }

    [Fact]
    public async Task RunAsync_ModelNamesAnotherThanModelName_ModelMismatchNamingBothAndEngineNotCalled()
    {
        var result = await RunAsync("""{"id":"j","prompt":"Once","model":"llama-3-8b"}""", "stories260K");

        Assert.Equal(JobStatus.Failed, result.Status);
        Assert.Equal(ErrorCodes.ModelMismatch, result.Error!.Code);
        Assert.Equal("model", result.Error.Field);
        Assert.Contains("llama-3-8b", result.Error.Message, StringComparison.Ordinal);
        Assert.Contains("stories260K", result.Error.Message, StringComparison.Ordinal);
        Assert.Empty(_engine.Requests);
    }

    [Theory]
    [InlineData("""{"prompt":"Once","model":"stories260K"}""", "stories260K")]
    [InlineData("""{"prompt":"Once"}""", "stories260K")]
    [InlineData("""{"prompt":"Once","model":"anything"}""", null)]
    [InlineData("""{"prompt":"Once","model":"anything"}""", "")]
    public async Task RunAsync_ModelMatchesOrAbsentOrNoModelName_Completed(string body, string? servedModel)
    {
        var result = await RunAsync(body, servedModel);

        Assert.Equal(JobStatus.Completed, result.Status);
        Assert.Single(_engine.Requests);
    }

    [Fact]
    public async Task RunAsync_OpenAiSamplingFields_ReachTheEngineAndUserIsEchoed()
    {
        var result = await RunAsync(
            """{"prompt":"Once","max_completion_tokens":7,"logit_bias":{"13":5},"presence_penalty":0.5,"frequency_penalty":-0.5,"logprobs":true,"top_logprobs":3,"user":"u-1"}""",
            null);

        var sent = Assert.Single(_engine.Requests);
        Assert.Equal(7, sent.MaxTokens);
        Assert.Equal(5f, sent.Sampling.LogitBias![13]);
        Assert.Equal(0.5f, sent.Sampling.PresencePenalty);
        Assert.Equal(-0.5f, sent.Sampling.FrequencyPenalty);
        Assert.Equal(3, sent.TopLogprobs);
        Assert.Equal("u-1", result.User);
    }

    [Fact]
    public async Task RunAsync_NoLogprobsAsked_EngineAsksForNone()
    {
        await RunAsync("""{"prompt":"Once","logprobs":false}""", null);

        Assert.Null(Assert.Single(_engine.Requests).TopLogprobs);
    }

    [Fact]
    public async Task RunAsync_EngineReturnsLogprobs_ResultCarriesThemInOpenAiShape()
    {
        _engine.Answer = (_, _) => Task.FromResult(FakeEngine.Completion() with
        {
            Logprobs = [new TokenLogprob(" a", -0.25, [32, 97], [new TopLogprob(" a", -0.25, [32, 97])])],
        });

        var result = await RunAsync("""{"prompt":"Once","logprobs":true,"top_logprobs":1}""", null);

        var json = JobSerializer.ToJson(result);
        Assert.Contains("\"logprobs\":{\"content\":[{\"token\":\" a\",\"logprob\":-0.25,\"bytes\":[32,97],\"top_logprobs\":[{\"token\":\" a\",\"logprob\":-0.25,\"bytes\":[32,97]}]}]}", json, StringComparison.Ordinal);
    }
}

/// <summary>Embedding jobs through the pipeline: routed to the engine's embeddings, answered in OpenAI's shape.</summary>
[Trait("Category", "Unit")]
public sealed class EmbeddingPipelineTests
{
    private readonly EmbeddingFakeEngine _engine = new();

    private Task<JobResult> RunAsync(string body)
    {
        var time = Clock.Create();
        var pipeline = new JobPipeline(_engine, new InferenceOptions(), new WorkerIdentity("w", "1"), new RecordingObserver(), time, NullLogger<JobPipeline>.Instance);
        return pipeline.RunAsync(new JobInput { Body = Encoding.UTF8.GetBytes(body), ReceivedAt = time.GetUtcNow(), MessageId = "m" }, CancellationToken.None);
    }

    [Fact]
    public async Task RunAsync_EmbeddingJob_VectorsInOrderWithUsageAndNoGeneration()
    {
        var result = await RunAsync("""{"id":"e","input":["a","b"],"user":"u"}""");

        Assert.Equal(JobStatus.Completed, result.Status);
        Assert.Equal([0, 1], result.Data!.Select(d => d.Index));
        Assert.Equal([1f, 0f], result.Data![1].Embedding);
        Assert.Equal(new Usage(7, 0, 0), result.Usage);
        Assert.Equal("u", result.User);
        Assert.Empty(_engine.Requests);
        Assert.Contains("\"data\":[{\"index\":0,\"embedding\":[0,1],\"object\":\"embedding\"}", JobSerializer.ToJson(result), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_EmbeddingJobOnEngineWithoutEmbeddings_EmbeddingsDisabledNamingInput()
    {
        var time = Clock.Create();
        var pipeline = new JobPipeline(new NoEmbeddingsEngine(), new InferenceOptions(), new WorkerIdentity("w", "1"), new RecordingObserver(), time, NullLogger<JobPipeline>.Instance);

        var result = await pipeline.RunAsync(new JobInput { Body = """{"input":"a"}"""u8.ToArray(), ReceivedAt = time.GetUtcNow(), MessageId = "m" }, CancellationToken.None);

        Assert.Equal(ErrorCodes.EmbeddingsDisabled, result.Error!.Code);
        Assert.Equal("input", result.Error.Field);
    }

    /// <summary>An engine that keeps the interface's default: no embeddings.</summary>
    private sealed class NoEmbeddingsEngine : IInferenceEngine
    {
        public EngineInfo? Info => null;
        public bool IsReady => true;
        public EngineStats Stats { get; } = new();
        public Task<GenerationResult> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken) => Task.FromResult(FakeEngine.Completion());
    }

    private sealed class EmbeddingFakeEngine : IInferenceEngine
    {
        public EngineInfo? Info => new("fake.gguf", "/m/fake.gguf", 1, 1, 512, 1, 512, "test");
        public bool IsReady => true;
        public EngineStats Stats { get; } = new();
        public List<GenerationRequest> Requests { get; } = [];

        public Task<GenerationResult> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken)
        {
            Requests.Add(request);
            return Task.FromResult(FakeEngine.Completion());
        }

        public Task<EmbeddingResult> EmbedAsync(IReadOnlyList<string> inputs, CancellationToken cancellationToken) =>
            Task.FromResult(new EmbeddingResult(inputs.Select((_, i) => i == 0 ? new[] { 0f, 1f } : [1f, 0f]).ToArray(), 7, 1.5));
    }
}
