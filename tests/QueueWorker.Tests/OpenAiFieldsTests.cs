using QueueWorker.Contracts;

namespace QueueWorker.Tests;

/// <summary>
/// Every field of OpenAI's chat/completions and completions requests is honoured, accepted as information, or refused
/// with invalid_field naming it: none is silently ignored. The README's field table lists the same fields.
/// </summary>
[Trait("Category", "Unit")]
public sealed class OpenAiFieldsTests
{
    private static readonly JobLimits Limits = new() { MaxTokens = 512, DefaultMaxTokens = 64 };

    private static ParseResult Parse(string fields, string input = "\"prompt\":\"Once\"") =>
        JobParser.Parse("{" + input + (fields.Length > 0 ? "," + fields : "") + "}", Limits, "fallback");

    private static JobRequest Valid(string fields, string input = "\"prompt\":\"Once\"")
    {
        var r = Parse(fields, input);
        Assert.True(r.IsValid, r.Error?.Message);
        return r.Job!;
    }

    private static void AssertRefused(string fields, string field)
    {
        var r = Parse(fields);
        Assert.False(r.IsValid, $"{fields} should be refused");
        Assert.Equal(ErrorCodes.InvalidField, r.Error!.Code);
        Assert.Equal(field, r.Error.Field);
        Assert.Contains(field.Split('.')[0], r.Error.Message, StringComparison.Ordinal);
    }

    /// <summary>Each honoured field, with a value, and what the job must then hold.</summary>
    public static TheoryData<string, Func<JobRequest, bool>> Honoured() => new()
    {
        { "\"max_tokens\":7", j => j.MaxTokens == 7 },
        { "\"max_completion_tokens\":9", j => j.MaxTokens == 9 },
        { "\"max_tokens\":9,\"max_completion_tokens\":9", j => j.MaxTokens == 9 },
        { "\"temperature\":0.5", j => j.Temperature == 0.5f },
        { "\"top_p\":0.5", j => j.TopP == 0.5f },
        { "\"seed\":5", j => j.Seed == 5u },
        { "\"stop\":[\"a\",\"b\"]", j => j.Stop!.SequenceEqual(["a", "b"]) },
        { "\"stop\":\"a\"", j => j.Stop!.SequenceEqual(["a"]) },
        { "\"presence_penalty\":-1.5", j => j.PresencePenalty == -1.5f },
        { "\"frequency_penalty\":2", j => j.FrequencyPenalty == 2f },
        { "\"logit_bias\":{\"13\":100,\"0\":-100,\"7\":0.5}", j => j.LogitBias!.Count == 3 && j.LogitBias[13] == 100f && j.LogitBias[0] == -100f && j.LogitBias[7] == 0.5f },
        { "\"logprobs\":true", j => j.Logprobs == true && j.TopLogprobs == 0 },
        { "\"logprobs\":true,\"top_logprobs\":20", j => j.Logprobs == true && j.TopLogprobs == 20 },
        { "\"logprobs\":false", j => j.Logprobs == false && j.TopLogprobs is null },
        // Legacy completions: logprobs is the number of alternatives.
        { "\"logprobs\":3", j => j.Logprobs == true && j.TopLogprobs == 3 },
        { "\"n\":1", j => true },
        { "\"best_of\":1", j => true },
        { "\"stream\":false", j => true },
        { "\"echo\":false", j => true },
        { "\"store\":false", j => true },
        { "\"service_tier\":\"auto\"", j => true },
        { "\"service_tier\":\"default\"", j => true },
        { "\"modalities\":[\"text\"]", j => true },
        // Informational.
        { "\"model\":\"gpt-4o-mini\"", j => j.Model == "gpt-4o-mini" },
        { "\"user\":\"user-42\"", j => j.User == "user-42" },
        { "\"metadata\":{\"k\":\"v\"}", j => j.Metadata!.Value.GetProperty("k").GetString() == "v" },
        { "\"prompt_cache_key\":\"k\"", j => true },
        { "\"safety_identifier\":\"s\"", j => true },
    };

    [Theory]
    [MemberData(nameof(Honoured))]
    public void Parse_HonouredOpenAiField_ValidAndCarried(string fields, Func<JobRequest, bool> check) =>
        Assert.True(check(Valid(fields)), fields);

    /// <summary>Each refused field (or refused value), and the field the error names.</summary>
    [Theory]
    [InlineData("\"n\":2", "n")]
    [InlineData("\"best_of\":3", "best_of")]
    [InlineData("\"stream\":true", "stream")]
    [InlineData("\"echo\":true", "echo")]
    [InlineData("\"store\":true", "store")]
    [InlineData("\"service_tier\":\"flex\"", "service_tier")]
    [InlineData("\"service_tier\":\"priority\"", "service_tier")]
    [InlineData("\"modalities\":[\"text\",\"audio\"]", "modalities")]
    [InlineData("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]", "tools")]
    [InlineData("\"tools\":[]", "tools")]
    [InlineData("\"tool_choice\":\"auto\"", "tool_choice")]
    [InlineData("\"parallel_tool_calls\":false", "parallel_tool_calls")]
    [InlineData("\"functions\":[{\"name\":\"f\"}]", "functions")]
    [InlineData("\"function_call\":\"auto\"", "function_call")]
    [InlineData("\"stream_options\":{\"include_usage\":true}", "stream_options")]
    [InlineData("\"suffix\":\" the end\"", "suffix")]
    [InlineData("\"prediction\":{\"type\":\"content\",\"content\":\"x\"}", "prediction")]
    [InlineData("\"audio\":{\"voice\":\"alloy\",\"format\":\"wav\"}", "audio")]
    [InlineData("\"reasoning_effort\":\"low\"", "reasoning_effort")]
    [InlineData("\"verbosity\":\"low\"", "verbosity")]
    [InlineData("\"web_search_options\":{}", "web_search_options")]
    // Out of range or conflicting values of honoured fields.
    [InlineData("\"max_tokens\":8,\"max_completion_tokens\":9", "max_completion_tokens")]
    [InlineData("\"max_completion_tokens\":513", "max_completion_tokens")]
    [InlineData("\"max_completion_tokens\":0", "max_completion_tokens")]
    [InlineData("\"presence_penalty\":2.01", "presence_penalty")]
    [InlineData("\"frequency_penalty\":-3", "frequency_penalty")]
    [InlineData("\"frequency_penalty\":\"1\"", "frequency_penalty")]
    [InlineData("\"logit_bias\":[1,2]", "logit_bias")]
    [InlineData("\"logit_bias\":{\"13\":101}", "logit_bias.13")]
    [InlineData("\"logit_bias\":{\"13\":-100.5}", "logit_bias.13")]
    [InlineData("\"logit_bias\":{\"13\":\"5\"}", "logit_bias.13")]
    [InlineData("\"logit_bias\":{\"hello\":5}", "logit_bias.hello")]
    [InlineData("\"logit_bias\":{\"-1\":5}", "logit_bias.-1")]
    [InlineData("\"logit_bias\":{\"07\":5}", "logit_bias.07")]
    [InlineData("\"logit_bias\":{\"99999999999\":5}", "logit_bias.99999999999")]
    [InlineData("\"top_logprobs\":2", "top_logprobs")]
    [InlineData("\"logprobs\":false,\"top_logprobs\":2", "top_logprobs")]
    [InlineData("\"logprobs\":true,\"top_logprobs\":21", "top_logprobs")]
    [InlineData("\"logprobs\":21", "logprobs")]
    [InlineData("\"logprobs\":2,\"top_logprobs\":3", "top_logprobs")]
    [InlineData("\"logprobs\":\"yes\"", "logprobs")]
    [InlineData("\"model\":42", "model")]
    [InlineData("\"user\":{\"id\":1}", "user")]
    public void Parse_RefusedOpenAiFieldOrValue_InvalidFieldNamingIt(string fields, string field) => AssertRefused(fields, field);

    [Fact]
    public void Parse_UserLongerThanAnId_Refused() => AssertRefused("\"user\":\"" + new string('u', 257) + "\"", "user");

    [Fact]
    public void Parse_LogitBiasOverTheLimit_Refused()
    {
        var many = string.Join(",", Enumerable.Range(0, Limits.MaxLogitBias + 1).Select(i => $"\"{i}\":1"));
        AssertRefused("\"logit_bias\":{" + many + "}", "logit_bias");
    }

    [Fact]
    public void Parse_NullMeansAbsentForEveryNewField_Valid()
    {
        var job = Valid("\"max_completion_tokens\":null,\"logit_bias\":null,\"presence_penalty\":null,\"frequency_penalty\":null," +
            "\"logprobs\":null,\"top_logprobs\":null,\"tools\":null,\"suffix\":null,\"store\":null,\"user\":null,\"model\":null");
        Assert.Equal(Limits.DefaultMaxTokens, job.MaxTokens);
        Assert.Null(job.LogitBias);
        Assert.Null(job.Logprobs);
    }

    [Fact]
    public void Parse_ChatBodyWithOpenAiFields_Valid()
    {
        var job = Valid("\"model\":\"m\",\"max_completion_tokens\":12,\"logprobs\":true,\"top_logprobs\":2,\"user\":\"u\"",
            "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]");
        Assert.Equal(12, job.MaxTokens);
        Assert.Equal(2, job.TopLogprobs);
    }

    [Fact]
    public void Serialize_JobWithNewFields_ParsesBackToTheSameSettings()
    {
        var job = Valid("\"logit_bias\":{\"5\":-3},\"presence_penalty\":0.5,\"frequency_penalty\":0.25,\"logprobs\":true,\"top_logprobs\":4,\"model\":\"m\",\"user\":\"u\"");

        var back = JobParser.Parse(JobSerializer.Serialize(job), Limits).Job!;

        Assert.Equal(-3f, back.LogitBias![5]);
        Assert.Equal((0.5f, 0.25f, true, 4, "m", "u"), (back.PresencePenalty!.Value, back.FrequencyPenalty!.Value, back.Logprobs!.Value, back.TopLogprobs!.Value, back.Model, back.User));
    }

    [Fact]
    public void Parse_UnknownNonOpenAiField_IgnoredAsBefore() =>
        Assert.True(Parse("\"x_custom\":{\"a\":1}").IsValid);
}
