using System.Text;
using QueueWorker.Contracts;

namespace QueueWorker.Tests;

[Trait("Category", "Unit")]
public class JobParserTests
{
    private static readonly JobLimits Limits = new() { MaxTokens = 512, DefaultMaxTokens = 64 };

    private static ParseResult Parse(string json, string? fallbackId = "fallback") => JobParser.Parse(json, Limits, fallbackId);

    private static JobError AssertError(string json, string code, string? field = null)
    {
        var result = Parse(json);
        Assert.False(result.IsValid, $"expected {code} for {json}");
        Assert.Equal(code, result.Error!.Code);
        if (field is not null) Assert.Equal(field, result.Error.Field);
        return result.Error;
    }

    [Fact]
    public void Parse_FullJob_ReadsEveryField()
    {
        var result = Parse("""
            {"id":"a1","prompt":"Once upon a time","max_tokens":32,"temperature":0,"top_p":0.9,"top_k":20,
             "min_p":0.1,"repeat_penalty":1.1,"seed":42,"stop":["\n\n","END"],"timeout_ms":5000,"metadata":{"doc":7}}
            """);
        Assert.True(result.IsValid);
        var job = result.Job!;
        Assert.Equal("a1", job.Id);
        Assert.Equal("Once upon a time", job.Prompt);
        Assert.Equal(32, job.MaxTokens);
        Assert.Equal(0f, job.Temperature);
        Assert.Equal(0.9f, job.TopP);
        Assert.Equal(20, job.TopK);
        Assert.Equal(0.1f, job.MinP);
        Assert.Equal(1.1f, job.RepeatPenalty);
        Assert.Equal(42u, job.Seed);
        Assert.Equal(["\n\n", "END"], job.Stop);
        Assert.Equal(5000, job.TimeoutMs);
        Assert.Equal(7, job.Metadata!.Value.GetProperty("doc").GetInt32());
    }

    [Fact]
    public void Parse_NoIdNoMaxTokens_UsesFallbackIdAndDefault()
    {
        var job = Parse("""{"prompt":"hi"}""", "msg-9").Job!;
        Assert.Equal("msg-9", job.Id);
        Assert.Equal(Limits.DefaultMaxTokens, job.MaxTokens);
    }

    [Fact]
    public void Parse_StopAsString_BecomesList() => Assert.Equal(["."], Parse("""{"prompt":"x","stop":"."}""").Job!.Stop);

    [Fact]
    public void Parse_Utf8ByteOrderMark_Ignored()
    {
        var result = JobParser.Parse([0xEF, 0xBB, 0xBF, .. """{"prompt":"x"}"""u8], Limits, "fallback");
        Assert.True(result.IsValid, result.Error?.Message);
        Assert.Equal("x", result.Job!.Prompt);
    }

    [Fact]
    public void Parse_OnlyByteOrderMark_IsEmptyBody() =>
        Assert.Equal(ErrorCodes.EmptyBody, JobParser.Parse([0xEF, 0xBB, 0xBF], Limits, "fallback").Error!.Code);

    [Fact]
    public void Parse_NumericId_KeepsItsText() => Assert.Equal("12345", Parse("""{"id":12345,"prompt":"x"}""").Job!.Id);

    [Fact]
    public void Parse_Messages_ReadsRolesAndContent()
    {
        var job = Parse("""{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}""").Job!;
        Assert.Equal([new ChatMessage("system", "Be brief."), new ChatMessage("user", "Hi")], job.Messages);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   \n")]
    public void Parse_EmptyBody_EmptyBody(string body) => AssertError(body, ErrorCodes.EmptyBody);

    [Fact]
    public void Parse_InvalidUtf8_InvalidUtf8()
    {
        var bytes = Encoding.UTF8.GetBytes("""{"prompt":"abc"}""").ToList();
        bytes.Insert(12, 0xC3); // a lead byte with no continuation
        var result = JobParser.Parse(bytes.ToArray(), Limits, "x");
        Assert.Equal(ErrorCodes.InvalidUtf8, result.Error!.Code);
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("{\"prompt\": \"unterminated}")]
    [InlineData("{\"prompt\":\"x\",}")]
    public void Parse_NotJson_InvalidJson(string body) => AssertError(body, ErrorCodes.InvalidJson);

    [Fact]
    public void Parse_DeeplyNested_InvalidJsonNamingDepth()
    {
        var body = "{\"prompt\":\"x\",\"metadata\":" + new string('[', 100) + new string(']', 100) + "}";
        var error = AssertError(body, ErrorCodes.InvalidJson);
        Assert.Contains("deeper than", error.Message);
    }

    [Theory]
    [InlineData("[1,2]", "an array")]
    [InlineData("\"prompt\"", "a string")]
    [InlineData("42", "a number")]
    [InlineData("null", "null")]
    public void Parse_NotAnObject_NotAnObject(string body, string described) =>
        Assert.Contains(described, AssertError(body, ErrorCodes.NotAnObject).Message);

    [Theory]
    [InlineData("""{"max_tokens":5}""")]
    [InlineData("""{"prompt":""}""")]
    [InlineData("""{"messages":[]}""")]
    [InlineData("""{"prompt":"x","messages":[{"role":"user","content":"y"}]}""")]
    public void Parse_MissingOrAmbiguousPrompt_MissingPrompt(string body) => AssertError(body, ErrorCodes.MissingPrompt);

    [Theory]
    [InlineData("""{"prompt":5}""", "prompt")]
    [InlineData("""{"prompt":"x","max_tokens":0}""", "max_tokens")]
    [InlineData("""{"prompt":"x","max_tokens":513}""", "max_tokens")]
    [InlineData("""{"prompt":"x","max_tokens":"10"}""", "max_tokens")]
    [InlineData("""{"prompt":"x","max_tokens":3.5}""", "max_tokens")]
    [InlineData("""{"prompt":"x","temperature":-0.1}""", "temperature")]
    [InlineData("""{"prompt":"x","temperature":2.5}""", "temperature")]
    [InlineData("""{"prompt":"x","temperature":"hot"}""", "temperature")]
    [InlineData("""{"prompt":"x","top_p":0}""", "top_p")]
    [InlineData("""{"prompt":"x","top_p":1.01}""", "top_p")]
    [InlineData("""{"prompt":"x","top_k":-1}""", "top_k")]
    [InlineData("""{"prompt":"x","min_p":2}""", "min_p")]
    [InlineData("""{"prompt":"x","repeat_penalty":0}""", "repeat_penalty")]
    [InlineData("""{"prompt":"x","seed":-1}""", "seed")]
    [InlineData("""{"prompt":"x","seed":1.5}""", "seed")]
    [InlineData("""{"prompt":"x","seed":4294967296}""", "seed")]
    [InlineData("""{"prompt":"x","stop":5}""", "stop")]
    [InlineData("""{"prompt":"x","stop":[1]}""", "stop[0]")]
    [InlineData("""{"prompt":"x","stop":["a",""]}""", "stop[1]")]
    [InlineData("""{"prompt":"x","timeout_ms":0}""", "timeout_ms")]
    [InlineData("""{"prompt":"x","metadata":[1]}""", "metadata")]
    [InlineData("""{"prompt":"x","id":""}""", "id")]
    [InlineData("""{"prompt":"x","id":{"a":1}}""", "id")]
    [InlineData("""{"prompt":"x","id":"a\u0007b"}""", "id")]
    [InlineData("""{"messages":"hi"}""", "messages")]
    [InlineData("""{"messages":["hi"]}""", "messages[0]")]
    [InlineData("""{"messages":[{"role":"robot","content":"x"}]}""", "messages[0].role")]
    [InlineData("""{"messages":[{"role":"user"}]}""", "messages[0].content")]
    [InlineData("""{"prompt":"x","n":2}""", "n")]
    [InlineData("""{"prompt":"x","stream":true}""", "stream")]
    public void Parse_BadField_InvalidFieldNamingIt(string body, string field)
    {
        var error = Parse(body).Error;
        Assert.NotNull(error);
        Assert.Equal(field, error.Field);
        Assert.Contains(field.Split('[', '.')[0], error.Message);
    }

    [Fact]
    public void Parse_MaxTokensOverCap_MessageNamesTheCapAndValue()
    {
        var error = AssertError("""{"prompt":"x","max_tokens":100000}""", ErrorCodes.InvalidField, "max_tokens");
        Assert.Contains("512", error.Message);
        Assert.Contains("100000", error.Message);
        Assert.Contains("Inference:MaxTokens", error.Message);
    }

    [Fact]
    public void Parse_OverlongId_RejectedNotTruncated()
    {
        var error = AssertError($$"""{"id":"{{new string('a', 300)}}","prompt":"x"}""", ErrorCodes.InvalidField, "id");
        Assert.Contains("256", error.Message);
    }

    [Fact]
    public void Parse_TooManyStops_Rejected() =>
        AssertError($$"""{"prompt":"x","stop":[{{string.Join(",", Enumerable.Range(0, 17).Select(i => $"\"s{i}\""))}}]}""", ErrorCodes.InvalidField, "stop");

    [Fact]
    public void Parse_OversizedMetadata_Rejected() =>
        AssertError("{\"prompt\":\"x\",\"metadata\":{\"blob\":\"" + new string('z', 20000) + "\"}}", ErrorCodes.InvalidField, "metadata");

    [Fact]
    public void Parse_InvalidJobWithId_KeepsIdAndMetadataForTheFailedResult()
    {
        var result = Parse("""{"id":"doc-1","metadata":{"k":"v"},"prompt":"x","temperature":9}""");
        Assert.Equal("doc-1", result.Id);
        Assert.Equal("v", result.Metadata!.Value.GetProperty("k").GetString());
    }

    [Fact]
    public void Parse_NullFields_TreatedAsAbsent()
    {
        var job = Parse("""{"prompt":"x","temperature":null,"stop":null,"metadata":null}""").Job!;
        Assert.Null(job.Temperature);
        Assert.Null(job.Stop);
    }

    [Fact]
    public void Parse_UnknownOpenAiFields_Ignored() =>
        Assert.True(Parse("""{"model":"gpt-x","prompt":"x","user":"u","n":1,"stream":false}""").IsValid);
}

[Trait("Category", "Unit")]
public class JobSerializerTests
{
    [Fact]
    public void Serialize_Result_SnakeCaseWithoutNulls()
    {
        var json = JobSerializer.ToJson(new JobResult
        {
            Id = "j",
            Status = JobStatus.Completed,
            Text = "t",
            FinishReason = FinishReasons.Length,
            Usage = new Usage(3, 4, 1),
            Timings = new Timings { PromptMs = 1.5, PromptTokensPerS = 2, FirstTokenMs = 3, GenerationMs = 4, TokensPerS = 5, TotalMs = 6 },
            Worker = new WorkerInfo("w", "m.gguf", 2, 2048, 4, "0.1.0"),
        });
        Assert.Contains("\"finish_reason\":\"length\"", json);
        Assert.Contains("\"prompt_tokens\":3", json);
        Assert.Contains("\"cached_tokens\":1", json);
        Assert.Contains("\"prompt_tokens_per_s\":2", json);
        Assert.Contains("\"first_token_ms\":3", json);
        Assert.DoesNotContain("\"error\"", json);
        Assert.DoesNotContain("\"queued_ms\"", json);

        var back = JobSerializer.DeserializeResult(Encoding.UTF8.GetBytes(json));
        Assert.Equal("m.gguf", back.Worker!.Model);
        Assert.Equal(4, back.Usage!.CompletionTokens);
    }
}
