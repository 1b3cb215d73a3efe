using QueueWorker.Contracts;

namespace QueueWorker.IntegrationTests;

/// <summary>A worker started with <c>Model:Name</c> and <c>Model:Embeddings</c>.</summary>
public sealed class NamedEmbeddingWorkerFixture : WorkerFixture
{
    public const string ModelName = "stories-260k";

    protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
    {
        ["Model:Name"] = ModelName,
        ["Model:Embeddings"] = "true",
    };
}

/// <summary>The OpenAI surface through the real worker binary and broker: embeddings, model_mismatch, logprobs, refused fields.</summary>
[Trait("Category", "Integration")]
public sealed class OpenAiWorkerTests(NamedEmbeddingWorkerFixture fixture) : IClassFixture<NamedEmbeddingWorkerFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static string NewId() => "job-" + Guid.NewGuid().ToString("N")[..10];

    private async Task<JobResult> RunAsync(string id, string body)
    {
        await fixture.Broker.PublishAsync(fixture.JobsQueue, body, p => p.ReplyTo = fixture.ReplyQueue);
        return (await fixture.Replies.WaitForIdAsync(id, Timeout)).Result;
    }

    [Fact]
    public async Task EmbeddingJob_ThroughTheWorker_UnitVectorsInOrderSameInputSameVector()
    {
        var id = NewId();
        var result = await RunAsync(id, $$"""{"id":"{{id}}","input":["The dog ran to the park.","Sue","The dog ran to the park."],"model":"{{NamedEmbeddingWorkerFixture.ModelName}}"}""");

        Assert.Equal(JobStatus.Completed, result.Status);
        var data = Assert.IsAssignableFrom<IReadOnlyList<EmbeddingItem>>(result.Data);
        Assert.Equal([0, 1, 2], data.Select(d => d.Index));
        Assert.All(data, d => Assert.Equal(1, Math.Sqrt(d.Embedding.Sum(x => (double)x * x)), 4));
        // The same text at another place in the same decode: the same vector up to float rounding.
        Assert.All(data[0].Embedding.Zip(data[2].Embedding), p => Assert.Equal(p.First, p.Second, 5));
        Assert.NotEqual(data[0].Embedding, data[1].Embedding);
        Assert.True(result.Usage!.PromptTokens > 3);
        Assert.Null(result.Text);
    }

    [Fact]
    public async Task Job_NamingAnotherModel_ModelMismatch()
    {
        var id = NewId();
        var result = await RunAsync(id, $$"""{"id":"{{id}}","prompt":"Once upon a time","model":"gpt-4o"}""");

        Assert.Equal(ErrorCodes.ModelMismatch, result.Error!.Code);
        Assert.Equal("model", result.Error.Field);
    }

    [Fact]
    public async Task Job_WithLogprobsAndUser_LogprobsPerTokenAndUserEchoed()
    {
        var id = NewId();
        var result = await RunAsync(id,
            $$"""{"id":"{{id}}","prompt":"Once upon a time","max_completion_tokens":10,"temperature":0,"logprobs":true,"top_logprobs":2,"user":"u-1","model":"{{NamedEmbeddingWorkerFixture.ModelName}}"}""");

        Assert.Equal(JobStatus.Completed, result.Status);
        Assert.Equal(10, result.Usage!.CompletionTokens);
        var content = Assert.IsAssignableFrom<IReadOnlyList<TokenLogprob>>(result.Logprobs?.Content);
        Assert.Equal(10, content.Count);
        Assert.All(content, c => Assert.Equal(2, c.TopLogprobs.Count));
        Assert.Equal("u-1", result.User);
    }

    [Fact]
    public async Task Job_WithTools_RefusedNamingTools()
    {
        var id = NewId();
        var result = await RunAsync(id, "{\"id\":\"" + id + "\",\"prompt\":\"Once\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}");

        Assert.Equal(ErrorCodes.InvalidField, result.Error!.Code);
        Assert.Equal("tools", result.Error.Field);
    }
}
