using System.Text;
using System.Text.Json;
using QueueWorker.Cli.Batch;
using QueueWorker.Contracts;

namespace QueueWorker.Cli.Tests;

/// <summary><c>/v1/embeddings</c> lines in a batch file: read as embedding jobs, answered in OpenAI's embeddings shape.</summary>
[Trait("Category", "Unit")]
public sealed class EmbeddingBatchTests
{
    private static BatchLine Parse(string line) => BatchInputParser.Parse(Encoding.UTF8.GetBytes(line), 2, JobLimits.Default, 1 << 20);

    [Fact]
    public void Parse_EmbeddingsLine_EmbeddingJob()
    {
        var request = Assert.IsType<BatchRequest>(Parse("""{"custom_id":"e1","method":"POST","url":"/v1/embeddings","body":{"model":"m","input":["a","b"]}}"""));

        Assert.Equal(RequestKind.Embedding, request.Kind);
        Assert.Equal(["a", "b"], request.Submission.Job.Input);
        Assert.Equal("e1", request.Submission.Job.Id);
    }

    [Fact]
    public void Parse_BareEmbeddingJob_EmbeddingKind() =>
        Assert.Equal(RequestKind.Embedding, Assert.IsType<BatchRequest>(Parse("""{"id":"b","input":"a"}""")).Kind);

    [Theory]
    [InlineData("""{"custom_id":"e","url":"/v1/embeddings","body":{"prompt":"a"}}""", "body.input")]
    [InlineData("""{"custom_id":"e","url":"/v1/completions","body":{"prompt":"a","input":"b"}}""", "body.input")]
    [InlineData("""{"custom_id":"e","url":"/v1/embeddings","body":{"input":"a","temperature":0}}""", "body.temperature")]
    public void Parse_WrongFieldsForTheEndpoint_ErrorLineNamingIt(string line, string param) =>
        Assert.Equal(param, Assert.IsType<BatchLineError>(Parse(line)).Error.Param);

    [Fact]
    public void FromResult_Embedding_OpenAiEmbeddingsListShape()
    {
        var request = Assert.IsType<BatchRequest>(Parse("""{"custom_id":"e1","url":"/v1/embeddings","body":{"input":["a","b"]}}"""));
        var result = new JobResult
        {
            Id = "e1",
            Status = JobStatus.Completed,
            Data = [new EmbeddingItem(0, [0.6f, 0.8f]), new EmbeddingItem(1, [1f, 0f])],
            Usage = new Usage(4, 0, 0),
            Worker = new WorkerInfo("w", "stories260K.gguf", 1, 512, 1, "0"),
        };

        var body = JsonDocument.Parse(OpenAiBatchMapper.ToJsonLine(OpenAiBatchMapper.FromResult(request, result, DateTimeOffset.UnixEpoch)))
            .RootElement.GetProperty("response").GetProperty("body");

        Assert.Equal("list", body.GetProperty("object").GetString());
        Assert.False(body.TryGetProperty("choices", out _));
        var data = body.GetProperty("data");
        Assert.Equal(2, data.GetArrayLength());
        Assert.Equal("embedding", data[1].GetProperty("object").GetString());
        Assert.Equal(1, data[1].GetProperty("index").GetInt32());
        Assert.Equal(0.8f, data[0].GetProperty("embedding")[1].GetSingle());
        Assert.Equal(4, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(4, body.GetProperty("usage").GetProperty("total_tokens").GetInt32());
        Assert.Equal("stories260K.gguf", body.GetProperty("model").GetString());
    }
}
