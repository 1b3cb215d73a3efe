using QueueWorker.Contracts;

namespace QueueWorker.Tests;

[Trait("Category", "Unit")]
public sealed class EmbeddingJobTests
{
    private static ParseResult Parse(string json) => JobParser.Parse(json, JobLimits.Default, "fallback");

    [Theory]
    [InlineData("""{"input":"hello"}""", 1)]
    [InlineData("""{"input":["a","b","c"]}""", 3)]
    [InlineData("""{"kind":"embedding","input":["a"],"model":"m","user":"u","encoding_format":"float","metadata":{"k":1}}""", 1)]
    public void Parse_EmbeddingJob_InputsInOrderNoGenerationSettings(string json, int count)
    {
        var r = Parse(json);

        Assert.True(r.IsValid, r.Error?.Message);
        Assert.Equal(count, r.Job!.Input!.Count);
        Assert.Null(r.Job.Prompt);
        Assert.Null(r.Job.MaxTokens);
    }

    [Theory]
    [InlineData("""{"kind":"embedding"}""", ErrorCodes.MissingPrompt, "input")]
    [InlineData("""{"input":[]}""", ErrorCodes.MissingPrompt, "input")]
    [InlineData("""{"input":""}""", ErrorCodes.MissingPrompt, "input")]
    [InlineData("""{"input":["a",""]}""", ErrorCodes.MissingPrompt, "input[1]")]
    [InlineData("""{"input":[1,2]}""", ErrorCodes.InvalidField, "input[0]")]
    [InlineData("""{"input":{"a":1}}""", ErrorCodes.InvalidField, "input")]
    [InlineData("""{"input":"a","prompt":"b"}""", ErrorCodes.InvalidField, "prompt")]
    [InlineData("""{"input":"a","messages":[{"role":"user","content":"b"}]}""", ErrorCodes.InvalidField, "messages")]
    [InlineData("""{"input":"a","max_tokens":3}""", ErrorCodes.InvalidField, "max_tokens")]
    [InlineData("""{"input":"a","temperature":0}""", ErrorCodes.InvalidField, "temperature")]
    [InlineData("""{"input":"a","encoding_format":"base64"}""", ErrorCodes.InvalidField, "encoding_format")]
    [InlineData("""{"input":"a","dimensions":32}""", ErrorCodes.InvalidField, "dimensions")]
    [InlineData("""{"kind":"completion","input":"a"}""", ErrorCodes.InvalidField, "input")]
    [InlineData("""{"kind":"chat","prompt":"a"}""", ErrorCodes.InvalidField, "kind")]
    public void Parse_BadEmbeddingJob_RefusedNamingTheField(string json, string code, string field)
    {
        var r = Parse(json);

        Assert.False(r.IsValid);
        Assert.Equal(code, r.Error!.Code);
        Assert.Equal(field, r.Error.Field);
    }

    [Fact]
    public void Parse_KindCompletionWithPrompt_CompletionJob() =>
        Assert.Null(Parse("""{"kind":"completion","prompt":"a"}""").Job!.Input);

    [Fact]
    public void Parse_TooManyInputs_Refused()
    {
        var r = JobParser.Parse("{\"input\":[" + string.Join(",", Enumerable.Repeat("\"a\"", 3)) + "]}", new JobLimits { MaxInputs = 2 });
        Assert.Equal("input", r.Error!.Field);
    }
}
