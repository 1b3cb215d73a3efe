using System.Text;
using System.Text.Json;
using QueueWorker.Contracts;

namespace QueueWorker.Tests;

/// <summary>Valid-looking bodies that once escaped the parser or completed with garbage: each has one defined outcome.</summary>
[Trait("Category", "Unit")]
public class JobParserEdgeTests
{
    private static readonly JobLimits Limits = new() { MaxTokens = 512, DefaultMaxTokens = 64 };

    private static ParseResult Parse(string json, string? fallbackId = "fallback") => JobParser.Parse(json, Limits, fallbackId);

    private static JobError AssertError(string json, string code, string field)
    {
        var result = Parse(json);
        Assert.False(result.IsValid, $"expected {code} for {json}");
        Assert.Equal(code, result.Error!.Code);
        Assert.Equal(field, result.Error.Field);
        AssertResultPublishable(result);
        return result.Error;
    }

    /// <summary>The failed result built from the parse serializes, and its id fits the AMQP message_id.</summary>
    internal static void AssertResultPublishable(ParseResult parsed)
    {
        var id = parsed.Id ?? "fallback";
        Assert.True(AmqpShortString.Fits(id), $"id of {AmqpShortString.ByteCount(id)} bytes");
        var result = parsed.Error is { } error ? JobResult.Failed(id, error, metadata: parsed.Metadata) : new JobResult { Id = id, Status = JobStatus.Completed, Metadata = parsed.Metadata };
        var bytes = JobSerializer.Serialize(result);
        using var doc = JsonDocument.Parse(bytes);
        Assert.Equal(id, doc.RootElement.GetProperty("id").GetString());
    }

    // Escaped lone surrogates: valid JSON text, yet JsonElement throws on them.

    [Theory]
    [InlineData("""{"prompt":"a\ud800b"}""", "prompt", "\\ud800", 1)]
    [InlineData("""{"prompt":"\udc00"}""", "prompt", "\\udc00", 0)]
    [InlineData("""{"prompt":"x\ud800\ud800\udc00"}""", "prompt", "\\ud800", 1)]
    [InlineData("""{"prompt":"😀\ud800"}""", "prompt", "\\ud800", 2)]
    [InlineData("""{"prompt":"\ud83d\ude00\uDBFF"}""", "prompt", "\\uDBFF", 2)]
    [InlineData("""{"id":"\ud800","prompt":"x"}""", "id", "\\ud800", 0)]
    [InlineData("""{"prompt":"x","metadata":{"k":"\ud800"}}""", "metadata.k", "\\ud800", 0)]
    [InlineData("""{"prompt":"x","metadata":{"a":[1,{"b":"\\\udfff"}]}}""", "metadata.a[1].b", "\\udfff", 1)]
    [InlineData("""{"prompt":"x","stop":"\ud800"}""", "stop", "\\ud800", 0)]
    [InlineData("""{"prompt":"x","stop":["ok","\ud800"]}""", "stop[1]", "\\ud800", 0)]
    [InlineData("""{"messages":[{"role":"user","content":"hi \ud800"}]}""", "messages[0].content", "\\ud800", 3)]
    [InlineData("""{"messages":[{"role":"\ud800","content":"hi"}]}""", "messages[0].role", "\\ud800", 0)]
    [InlineData("""{"prompt":"x","model":"\ud800"}""", "model", "\\ud800", 0)]
    [InlineData("""{"prompt":"x","n":"\ud800"}""", "n", "\\ud800", 0)]
    public void LoneSurrogate_InAnyString_InvalidFieldNamingItsPath(string body, string field, string escape, int index)
    {
        var error = AssertError(body, ErrorCodes.InvalidField, field);
        Assert.Contains($"unpaired surrogate {escape} at character {index}", error.Message);
        Assert.Contains("strings must be valid Unicode", error.Message);
    }

    [Theory]
    [InlineData("""{"\ud800":1,"prompt":"x"}""", "\\ud800")]
    [InlineData("""{"prompt":"x","metadata":{"k\udc00":1}}""", "metadata.k\\udc00")]
    [InlineData("""{"messages":[{"role":"user","content":"x","\ud800":1}]}""", "messages[0].\\ud800")]
    public void LoneSurrogate_InAKey_InvalidFieldNamingTheKeyAsWritten(string body, string field)
    {
        var error = AssertError(body, ErrorCodes.InvalidField, field);
        Assert.Contains("A key", error.Message);
        Assert.Contains("unpaired surrogate", error.Message);
    }

    [Fact]
    public void LoneSurrogate_Elsewhere_FailedResultKeepsTheCleanIdAndMetadata()
    {
        var result = Parse("""{"\ud800":0,"id":"doc-1","metadata":{"k":"v"},"prompt":"\ud800"}""");
        Assert.Equal("\\ud800", result.Error!.Field);
        Assert.Equal("doc-1", result.Id);
        Assert.Equal("""{"k":"v"}""", result.Metadata!.Value.GetRawText());
        AssertResultPublishable(result);
    }

    [Theory]
    [InlineData("""{"id":12345,"prompt":"\ud800"}""", "12345")]
    [InlineData("""{"prompt":"\ud800","id":-1.5e3 }""", "-1.5e3")]
    [InlineData("""{"prompt":"\ud800","id":"x\"y"}""", "x\"y")]
    [InlineData("""{"prompt":"x","a":{"\ud800":1},"id":"late"}""", "late")]
    [InlineData("""{"id":"","prompt":"\ud800"}""", "fallback")]
    [InlineData("""{"id":null,"prompt":"\ud800"}""", "fallback")]
    [InlineData("""{"id":[],"prompt":"\ud800"}""", "fallback")]
    public void ScanProblem_IdStillReadByItsOwnRules(string body, string expectedId)
    {
        var result = Parse(body);
        Assert.Equal(ErrorCodes.InvalidField, result.Error!.Code);
        Assert.Equal(expectedId, result.Id);
        AssertResultPublishable(result);
    }

    [Fact]
    public void ScanProblem_DefaultDepthLimit_DeepMetadataStillEchoed()
    {
        var deep = string.Concat(Enumerable.Repeat("{\"a\":", 50)) + "1" + new string('}', 50);
        var result = JobParser.Parse($$"""{"id":"deep","metadata":{{deep}},"prompt":"\ud800"}""", Limits with { MaxDepth = 0, MaxMetadataBytes = 16 * 1024 }, "fallback");
        Assert.Equal("prompt", result.Error!.Field);
        Assert.Equal("deep", result.Id);
        Assert.NotNull(result.Metadata);
        AssertResultPublishable(result);
    }

    [Fact]
    public void LoneSurrogate_InMetadata_FailedResultLeavesMetadataOutAndKeepsTheId()
    {
        var result = Parse("""{"id":"doc-2","metadata":{"k":"\ud800"},"prompt":"x"}""");
        Assert.Equal("metadata.k", result.Error!.Field);
        Assert.Equal("doc-2", result.Id);
        Assert.Null(result.Metadata);
        AssertResultPublishable(result);
    }

    [Fact]
    public void LoneSurrogate_InId_FailedResultTakesTheFallbackId()
    {
        var result = Parse("""{"id":"a\ud800","metadata":{"k":"v"},"prompt":"x"}""", "msg-1");
        Assert.Equal("id", result.Error!.Field);
        Assert.Equal("msg-1", result.Id);
        Assert.NotNull(result.Metadata);
    }

    [Theory]
    [InlineData("""{"prompt":"\ud83d\ude00 \u00e9 \u0000 \uffff"}""")]
    [InlineData("""{"prompt":"x","metadata":{"\ud83d\ude00":"\uDBFF\uDFFF"}}""")]
    public void SurrogatePairsAndOddButValidEscapes_Accepted(string body)
    {
        var result = Parse(body);
        Assert.True(result.IsValid, result.Error?.Message);
        AssertResultPublishable(result);
    }

    // Duplicate keys: JsonDocument keeps both and TryGetProperty silently picks one.

    [Theory]
    [InlineData("""{"prompt":"x","prompt":"y"}""", "prompt")]
    [InlineData("""{"prompt":"x","max_tokens":1,"max_tokens":500}""", "max_tokens")]
    [InlineData("""{"prompt":"x","\u0070rompt":"y"}""", "prompt")]
    [InlineData("""{"prompt":"x","metadata":{"a":1,"a":2}}""", "metadata.a")]
    [InlineData("""{"messages":[{"role":"user","role":"system","content":"x"}]}""", "messages[0].role")]
    [InlineData("""{"prompt":"x","model":1,"model":2}""", "model")]
    public void DuplicateKey_Anywhere_InvalidFieldNamingIt(string body, string field)
    {
        var error = AssertError(body, ErrorCodes.InvalidField, field);
        Assert.Contains("given twice", error.Message);
    }

    [Fact]
    public void DuplicateId_FailedResultTakesTheFallbackIdNotEitherValue()
    {
        var result = Parse("""{"id":"a","id":"b","prompt":"x"}""", "msg-7");
        Assert.Equal("id", result.Error!.Field);
        Assert.Equal("msg-7", result.Id);
    }

    [Fact]
    public void SameKeyInDifferentObjects_NotADuplicate() =>
        Assert.True(Parse("""{"prompt":"x","metadata":{"prompt":"y","a":{"prompt":1}}}""").IsValid);

    // The id becomes the result's AMQP message_id: at most 255 bytes.

    [Fact]
    public void Id_FitsCharactersButNotBytes_InvalidFieldNamingTheByteRule()
    {
        var id = new string('é', 200); // 200 characters, 400 bytes
        var result = Parse($$"""{"id":"{{id}}","prompt":"x"}""", "msg-2");
        Assert.Equal("id", result.Error!.Field);
        Assert.Contains("255 bytes", result.Error.Message);
        Assert.Contains("got 400 bytes", result.Error.Message);
        Assert.Equal("msg-2", result.Id);
        AssertResultPublishable(result);
    }

    [Fact]
    public void Id_Exactly255Bytes_Accepted()
    {
        var id = new string('é', 127) + "a"; // 255 bytes
        Assert.Equal(id, Parse($$"""{"id":"{{id}}","prompt":"x"}""").Job!.Id);
    }

    [Fact]
    public void Id_LongNumber_ByteRuleToo()
    {
        var result = Parse($$"""{"id":{{new string('9', 256)}},"prompt":"x"}""");
        Assert.Equal("id", result.Error!.Field);
    }

    // Numbers: never a value the sampler cannot use.

    [Theory]
    [InlineData("temperature", "1e-320")]
    [InlineData("temperature", "1e-45")]
    [InlineData("temperature", "0.0000009")]
    [InlineData("repeat_penalty", "1e-300")]
    [InlineData("repeat_penalty", "5e-324")]
    [InlineData("top_p", "1e-50")]
    [InlineData("top_p", "4.9e-324")]
    [InlineData("temperature", "1e300")]
    [InlineData("temperature", "1e999")]
    [InlineData("temperature", "-1e999")]
    [InlineData("top_p", "1e999")]
    [InlineData("min_p", "1e999")]
    [InlineData("repeat_penalty", "1e39")]
    [InlineData("max_tokens", "2147483648")]
    [InlineData("max_tokens", "9223372036854775808")]
    [InlineData("max_tokens", "1e19")]
    [InlineData("max_tokens", "-9223372036854775809")]
    [InlineData("top_k", "1e999")]
    [InlineData("top_k", "4294967296")]
    [InlineData("timeout_ms", "2147483648")]
    [InlineData("timeout_ms", "1e300")]
    [InlineData("seed", "4294967295")]
    [InlineData("seed", "4294967295.0")]
    [InlineData("seed", "1e999")]
    [InlineData("seed", "18446744073709551616")]
    [InlineData("n", "1e999")]
    [InlineData("n", "4294967297")]
    public void NumericExtreme_InvalidFieldNamingIt(string field, string value)
    {
        var error = AssertError($$"""{"prompt":"x","{{field}}":{{value}}}""", ErrorCodes.InvalidField, field);
        Assert.Contains($"\"{field}\"", error.Message);
    }

    [Fact]
    public void Seed_LlamaDefaultSeed_RefusedWithTheReason()
    {
        var error = AssertError("""{"prompt":"x","seed":4294967295}""", ErrorCodes.InvalidField, "seed");
        Assert.Contains("LLAMA_DEFAULT_SEED", error.Message);
        Assert.Contains("random", error.Message);
    }

    [Theory]
    [InlineData("temperature", "0.000001", 1e-6f)]
    [InlineData("temperature", "-0.0", 0f)]
    [InlineData("temperature", "2.0000000000000001", 2f)]
    [InlineData("repeat_penalty", "0.000001", 1e-6f)]
    [InlineData("top_p", "1.0e-30", 1e-30f)]
    [InlineData("min_p", "1e-320", 0f)]
    public void NumericEdge_InRange_ReadAsTheFloatTheEngineGets(string field, string value, float expected)
    {
        var job = Parse($$"""{"prompt":"x","{{field}}":{{value}}}""").Job;
        Assert.NotNull(job);
        var actual = field switch { "temperature" => job.Temperature, "repeat_penalty" => job.RepeatPenalty, "top_p" => job.TopP, _ => job.MinP };
        Assert.Equal(expected, actual);
    }

    [Theory]
    [InlineData("max_tokens", "3.0", 3)]
    [InlineData("max_tokens", "3e1", 30)]
    [InlineData("max_tokens", "1E+2", 100)]
    [InlineData("top_k", "-0", 0)]
    [InlineData("timeout_ms", "604800000", 604800000)]
    public void IntegralFloat_ReadAsInteger(string field, string value, int expected)
    {
        var job = Parse($$"""{"prompt":"x","{{field}}":{{value}}}""").Job!;
        Assert.Equal(expected, field switch { "max_tokens" => job.MaxTokens, "top_k" => job.TopK, _ => job.TimeoutMs });
    }

    [Theory]
    [InlineData("4294967294", 4294967294u)]
    [InlineData("42.0", 42u)]
    [InlineData("0", 0u)]
    public void Seed_Integral_Accepted(string value, uint expected) =>
        Assert.Equal(expected, Parse($$"""{"prompt":"x","seed":{{value}}}""").Job!.Seed);

    // Wrongly typed known fields.

    [Theory]
    [InlineData("stream", "\"true\"")]
    [InlineData("stream", "\"false\"")]
    [InlineData("stream", "0")]
    [InlineData("stream", "1")]
    [InlineData("stream", "{}")]
    [InlineData("stream", "[]")]
    [InlineData("n", "\"1\"")]
    [InlineData("n", "true")]
    [InlineData("n", "1.5")]
    [InlineData("max_tokens", "\"5\"")]
    [InlineData("max_tokens", "true")]
    [InlineData("temperature", "\"0.5\"")]
    [InlineData("temperature", "[0.5]")]
    [InlineData("top_k", "\"40\"")]
    [InlineData("seed", "\"42\"")]
    [InlineData("seed", "false")]
    [InlineData("timeout_ms", "\"1000\"")]
    [InlineData("stop", "{}")]
    [InlineData("stop", "true")]
    [InlineData("metadata", "\"m\"")]
    [InlineData("metadata", "[]")]
    [InlineData("id", "true")]
    [InlineData("id", "[]")]
    [InlineData("prompt", "[\"x\"]")]
    [InlineData("messages", "{}")]
    public void WronglyTypedKnownField_InvalidFieldNamingIt(string field, string value)
    {
        var body = field is "prompt" or "messages" ? $$"""{"{{field}}":{{value}}}""" : $$"""{"prompt":"x","{{field}}":{{value}}}""";
        AssertError(body, ErrorCodes.InvalidField, field);
    }

    [Fact]
    public void StreamFalseAndNull_MeanAbsent()
    {
        Assert.True(Parse("""{"prompt":"x","stream":false}""").IsValid);
        Assert.True(Parse("""{"prompt":"x","stream":null,"n":null}""").IsValid);
        Assert.True(Parse("""{"prompt":"x","n":1.0}""").IsValid);
    }

    // The serializer: a result is never lost to its metadata.

    [Fact]
    public void Serialize_MetadataThatCannotBeWritten_LeftOutNotThrown()
    {
        using var doc = JsonDocument.Parse("""{"k":"\ud800"}""");
        var result = JobResult.Failed("j", new JobError(ErrorCodes.InvalidField, "m", "f"), metadata: doc.RootElement.Clone());
        var json = JobSerializer.ToJson(result);
        Assert.DoesNotContain("metadata", json);
        Assert.Contains("\"id\":\"j\"", Encoding.UTF8.GetString(JobSerializer.Serialize(result)));

        var undefined = JobResult.Failed("j", new JobError(ErrorCodes.InvalidField, "m"), metadata: default(JsonElement));
        Assert.DoesNotContain("metadata", JobSerializer.ToJson(undefined));
    }

    [Fact]
    public void Serialize_LoneSurrogateInAString_WrittenAsReplacementCharacter()
    {
        var json = JobSerializer.ToJson(new JobResult { Id = "j\ud800", Status = JobStatus.Completed, Text = "t\udc00" });
        Assert.Contains("\\uFFFD", json);
    }
}
