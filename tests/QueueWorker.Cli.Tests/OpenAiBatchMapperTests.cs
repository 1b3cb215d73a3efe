using System.Text;
using System.Text.Json;
using QueueWorker.Cli.Batch;
using QueueWorker.Contracts;

namespace QueueWorker.Cli.Tests;

[Trait("Category", "Unit")]
public sealed class OpenAiBatchMapperTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.FromUnixTimeSeconds(1_800_000_000);

    private static BatchRequest Request(string line) =>
        Assert.IsType<BatchRequest>(BatchInputParser.Parse(Encoding.UTF8.GetBytes(line), 5, JobLimits.Default, 1 << 20));

    private static JobResult Completed(string id, string finishReason = FinishReasons.Length) => new()
    {
        Id = id,
        Status = JobStatus.Completed,
        Text = ", there was a little girl named Lily.",
        FinishReason = finishReason,
        Usage = new Usage(5, 10, 2),
        Timings = new Timings { QueuedMs = 3, PromptMs = 4, PromptTokensPerS = 750, FirstTokenMs = 5, GenerationMs = 90, TokensPerS = 100, TotalMs = 99 },
        Worker = new WorkerInfo("w1", "stories260K.gguf", 2, 512, 4, "0.1.0"),
    };

    private static JsonElement Json(BatchOutputLine line) => JsonDocument.Parse(OpenAiBatchMapper.ToJsonLine(line)).RootElement;

    [Fact]
    public void FromResult_Completion_OpenAiTextCompletionLine()
    {
        var request = Request("""{"custom_id":"s1","url":"/v1/completions","body":{"prompt":"Once upon a time"}}""");

        var json = Json(OpenAiBatchMapper.FromResult(request, Completed("s1"), Now));

        Assert.StartsWith("batch_req_", json.GetProperty("id").GetString());
        Assert.Equal("s1", json.GetProperty("custom_id").GetString());
        Assert.Equal(JsonValueKind.Null, json.GetProperty("error").ValueKind);
        var response = json.GetProperty("response");
        Assert.Equal(200, response.GetProperty("status_code").GetInt32());
        Assert.Equal("s1", response.GetProperty("request_id").GetString());
        var body = response.GetProperty("body");
        Assert.Equal("cmpl-s1", body.GetProperty("id").GetString());
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        Assert.Equal(1_800_000_000, body.GetProperty("created").GetInt64());
        Assert.Equal("stories260K.gguf", body.GetProperty("model").GetString());
        var choice = body.GetProperty("choices")[0];
        Assert.Equal(0, choice.GetProperty("index").GetInt32());
        Assert.Equal(", there was a little girl named Lily.", choice.GetProperty("text").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(JsonValueKind.Null, choice.GetProperty("logprobs").ValueKind);
        Assert.False(choice.TryGetProperty("message", out _));
        var usage = body.GetProperty("usage");
        Assert.Equal(5, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(10, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(15, usage.GetProperty("total_tokens").GetInt32());
        Assert.Equal(2, usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        var timings = body.GetProperty("timings");
        Assert.Equal(100, timings.GetProperty("tokens_per_s").GetDouble());
        Assert.Equal(3, timings.GetProperty("queued_ms").GetDouble());
        Assert.Equal("w1", body.GetProperty("worker").GetProperty("id").GetString());
    }

    [Fact]
    public void FromResult_Chat_AssistantMessageChoice()
    {
        var request = Request("""{"custom_id":"c1","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"Hi"}]}}""");

        var body = Json(OpenAiBatchMapper.FromResult(request, Completed("c1", FinishReasons.Stop), Now)).GetProperty("response").GetProperty("body");

        Assert.Equal("chatcmpl-c1", body.GetProperty("id").GetString());
        Assert.Equal("chat.completion", body.GetProperty("object").GetString());
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Equal(", there was a little girl named Lily.", choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.False(choice.TryGetProperty("text", out _));
    }

    [Theory]
    [InlineData(FinishReasons.StopSequence, "stop")]
    [InlineData(FinishReasons.Stop, "stop")]
    [InlineData(FinishReasons.Length, "length")]
    [InlineData(FinishReasons.Timeout, "timeout")]
    public void FinishReason_QueueWorkerReason_OpenAiReason(string reason, string expected) =>
        Assert.Equal(expected, OpenAiBatchMapper.FinishReason(reason));

    [Fact]
    public void FromResult_FailedJob_ErrorLineWithCodeFieldAndLine()
    {
        var request = Request("""{"custom_id":"f1","url":"/v1/completions","body":{"prompt":"long"}}""");
        var failed = JobResult.Failed("f1", new JobError(ErrorCodes.PromptTooLong, "The prompt has 600 tokens; ...", "prompt"));

        var json = Json(OpenAiBatchMapper.FromResult(request, failed, Now));

        Assert.Equal("f1", json.GetProperty("custom_id").GetString());
        Assert.Equal(JsonValueKind.Null, json.GetProperty("response").ValueKind);
        var error = json.GetProperty("error");
        Assert.Equal("prompt_too_long", error.GetProperty("code").GetString());
        Assert.Equal("The prompt has 600 tokens; ...", error.GetProperty("message").GetString());
        Assert.Equal("prompt", error.GetProperty("param").GetString());
        Assert.Equal(5, error.GetProperty("line").GetInt64());
    }

    [Fact]
    public void FromError_InputError_NullCustomIdKept()
    {
        var error = BatchInputParser.Error(8, null, ErrorCodes.InvalidJson, "not valid JSON (byte 3).");

        var json = Json(OpenAiBatchMapper.FromError(error));

        Assert.Equal(JsonValueKind.Null, json.GetProperty("custom_id").ValueKind);
        Assert.Equal(JsonValueKind.Null, json.GetProperty("response").ValueKind);
        Assert.Equal("line 8: not valid JSON (byte 3).", json.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public void ToJsonLine_AnyLine_OneLineEndingInNewline()
    {
        var request = Request("""{"custom_id":"n","url":"/v1/completions","body":{"prompt":"x"}}""");
        var result = Completed("n") with { Text = "two\nlines" };

        var bytes = OpenAiBatchMapper.ToJsonLine(OpenAiBatchMapper.FromResult(request, result, Now));

        Assert.Equal((byte)'\n', bytes[^1]);
        Assert.Equal(1, bytes.Count(b => b == (byte)'\n'));
    }
}
