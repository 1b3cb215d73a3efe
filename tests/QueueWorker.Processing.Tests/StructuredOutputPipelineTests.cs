using System.Text;
using QueueWorker.Contracts;
using QueueWorker.Inference;
using QueueWorker.Inference.Grammar;

namespace QueueWorker.Processing.Tests;

[Trait("Category", "Unit")]
public sealed class StructuredOutputPipelineTests
{
    private readonly Microsoft.Extensions.Time.Testing.FakeTimeProvider _time = Clock.Create();
    private readonly FakeEngine _engine = new();

    private Task<JobResult> RunAsync(string body) =>
        new JobPipeline(_engine, new InferenceOptions(), new WorkerIdentity("w", "1"), new RecordingObserver(), _time, new RecordingLogger<JobPipeline>())
            .RunAsync(new JobInput { Body = Encoding.UTF8.GetBytes(body), ReceivedAt = _time.GetUtcNow(), MessageId = "m" }, CancellationToken.None);

    private void Answer(string text, string finish) =>
        _engine.Answer = (_, _) => Task.FromResult(FakeEngine.Completion() with { Text = text, FinishReason = finish });

    [Fact]
    public async Task RunAsync_SchemaJob_EngineGetsConvertedGrammarAndResultCarriesParsed()
    {
        Answer("{\"a\": 1} ", FinishReasons.Stop);
        var result = await RunAsync("""
            {"id":"s","prompt":"p","response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object","properties":{"a":{"type":"integer"}}}}}}
            """);

        var sent = Assert.Single(_engine.Requests);
        Assert.True(sent.Grammar!.Json);
        Assert.Equal(JsonSchemaToGbnf.Convert("""{"type":"object","properties":{"a":{"type":"integer"}}}"""), sent.Grammar.Gbnf);
        Assert.Equal(JobStatus.Completed, result.Status);
        Assert.Equal(1, result.Parsed!.Value.GetProperty("a").GetInt32());
        Assert.Null(result.Warnings);
    }

    [Fact]
    public async Task RunAsync_JsonCutByMaxTokens_NoParsedAndAWarning()
    {
        Answer("{\"a\": 1", FinishReasons.Length);
        var result = await RunAsync("""{"id":"l","prompt":"p","response_format":{"type":"json_object"}}""");

        Assert.Equal(JobStatus.Completed, result.Status);
        Assert.Equal(FinishReasons.Length, result.FinishReason);
        Assert.Null(result.Parsed);
        Assert.Contains("max_tokens", Assert.Single(result.Warnings!), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_UnsupportedSchemaKeyword_FailedInvalidFieldNamingIt()
    {
        var result = await RunAsync("""
            {"id":"u","prompt":"p","response_format":{"type":"json_schema","json_schema":{"schema":{"type":"object","allOf":[{"type":"object"}]}}}}
            """);

        Assert.Equal(JobStatus.Failed, result.Status);
        Assert.Equal(ErrorCodes.InvalidField, result.Error!.Code);
        Assert.Equal("response_format.json_schema.schema", result.Error.Field);
        Assert.Contains("allOf", result.Error.Message, StringComparison.Ordinal);
        Assert.Empty(_engine.Requests);
    }

    [Fact]
    public async Task RunAsync_RawGrammar_PassedAsIsAndNoParsed()
    {
        Answer("yes", FinishReasons.Stop);
        var result = await RunAsync("""{"id":"g","prompt":"p","grammar":"root ::= \"yes\""}""");

        var sent = Assert.Single(_engine.Requests);
        Assert.Equal("root ::= \"yes\"", sent.Grammar!.Gbnf);
        Assert.False(sent.Grammar.Json);
        Assert.Null(result.Parsed);
    }

    [Fact]
    public async Task RunAsync_TextJob_NoGrammar()
    {
        var result = await RunAsync("""{"id":"t","prompt":"p","response_format":{"type":"text"}}""");

        Assert.Null(Assert.Single(_engine.Requests).Grammar);
        Assert.Null(result.Parsed);
    }
}
