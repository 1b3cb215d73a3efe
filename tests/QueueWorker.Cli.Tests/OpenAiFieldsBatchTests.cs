using System.Text;
using System.Text.Json;
using QueueWorker.Cli.Batch;
using QueueWorker.Contracts;

namespace QueueWorker.Cli.Tests;

/// <summary>OpenAI request fields in batch bodies: honoured ones reach the job, refused ones are error lines naming <c>body.FIELD</c>; logprobs and user come back in OpenAI's shapes.</summary>
[Trait("Category", "Unit")]
public sealed class OpenAiFieldsBatchTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.FromUnixTimeSeconds(1_800_000_000);

    private static BatchLine Parse(string line) => BatchInputParser.Parse(Encoding.UTF8.GetBytes(line), 3, JobLimits.Default, 1 << 20);

    [Theory]
    [InlineData("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]", "body.tools")]
    [InlineData("\"n\":2", "body.n")]
    [InlineData("\"max_tokens\":8,\"max_completion_tokens\":9", "body.max_completion_tokens")]
    [InlineData("\"logit_bias\":{\"x\":1}", "body.logit_bias.x")]
    [InlineData("\"reasoning_effort\":\"high\"", "body.reasoning_effort")]
    public void Parse_RefusedFieldInBody_ErrorLineNamingIt(string fields, string param)
    {
        var line = Parse("{\"custom_id\":\"c\",\"url\":\"/v1/chat/completions\",\"body\":{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," + fields + "}}");

        var error = Assert.IsType<BatchLineError>(line).Error;
        Assert.Equal(ErrorCodes.InvalidField, error.Code);
        Assert.Equal(param, error.Param);
        Assert.StartsWith("line 3: body: ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_HonouredFieldsInBody_ReachTheJob()
    {
        var line = Parse("""{"custom_id":"c","url":"/v1/completions","body":{"model":"m","prompt":"Once","max_completion_tokens":5,"logit_bias":{"13":-100},"presence_penalty":1,"frequency_penalty":1,"logprobs":2,"user":"u"}}""");

        var job = Assert.IsType<BatchRequest>(line).Submission.Job;
        Assert.Equal(5, job.MaxTokens);
        Assert.Equal(-100f, job.LogitBias![13]);
        Assert.Equal((1f, 1f, true, 2, "u", "m"), (job.PresencePenalty!.Value, job.FrequencyPenalty!.Value, job.Logprobs!.Value, job.TopLogprobs!.Value, job.User, job.Model));
    }

    private static JobResult WithLogprobs(string id) => new()
    {
        Id = id,
        Status = JobStatus.Completed,
        Text = " a b",
        FinishReason = FinishReasons.Length,
        Usage = new Usage(2, 2, 0),
        User = "u-9",
        Logprobs = new Logprobs([
            new TokenLogprob(" a", -0.5, [32, 97], [new TopLogprob(" a", -0.5, [32, 97]), new TopLogprob(" c", -1.5, [32, 99])]),
            new TokenLogprob(" b", -0.25, [32, 98], [new TopLogprob(" b", -0.25, [32, 98]), new TopLogprob(" d", -2, [32, 100])]),
        ]),
    };

    private static JsonElement Choice(BatchOutputLine line) =>
        JsonDocument.Parse(OpenAiBatchMapper.ToJsonLine(line)).RootElement.GetProperty("response").GetProperty("body").GetProperty("choices")[0];

    [Fact]
    public void FromResult_ChatWithLogprobs_OpenAiChatLogprobsShape()
    {
        var request = Assert.IsType<BatchRequest>(Parse("""{"custom_id":"c","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"hi"}],"logprobs":true,"top_logprobs":2}}"""));

        var line = OpenAiBatchMapper.FromResult(request, WithLogprobs("c"), Now);

        var content = Choice(line).GetProperty("logprobs").GetProperty("content");
        Assert.Equal(2, content.GetArrayLength());
        Assert.Equal(" b", content[1].GetProperty("token").GetString());
        Assert.Equal(-0.25, content[1].GetProperty("logprob").GetDouble());
        Assert.Equal([32, 98], content[1].GetProperty("bytes").EnumerateArray().Select(b => b.GetInt32()));
        Assert.Equal(" d", content[1].GetProperty("top_logprobs")[1].GetProperty("token").GetString());
        var body = JsonDocument.Parse(OpenAiBatchMapper.ToJsonLine(line)).RootElement.GetProperty("response").GetProperty("body");
        Assert.Equal("u-9", body.GetProperty("user").GetString());
    }

    [Fact]
    public void FromResult_CompletionWithLogprobs_LegacyCompletionsShape()
    {
        var request = Assert.IsType<BatchRequest>(Parse("""{"custom_id":"c","url":"/v1/completions","body":{"prompt":"Once","logprobs":2}}"""));

        var logprobs = Choice(OpenAiBatchMapper.FromResult(request, WithLogprobs("c"), Now)).GetProperty("logprobs");

        Assert.Equal([" a", " b"], logprobs.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal([-0.5, -0.25], logprobs.GetProperty("token_logprobs").EnumerateArray().Select(t => t.GetDouble()));
        Assert.Equal(-1.5, logprobs.GetProperty("top_logprobs")[0].GetProperty(" c").GetDouble());
        Assert.Equal([0, 2], logprobs.GetProperty("text_offset").EnumerateArray().Select(t => t.GetInt32()));
    }
}
