using System.Text;
using System.Text.Json;
using QueueWorker.Cli.Batch;
using QueueWorker.Contracts;

namespace QueueWorker.Cli.Tests;

[Trait("Category", "Unit")]
public sealed class BatchInputParserTests
{
    private static BatchLine Parse(string line, long lineNumber = 1, JobLimits? limits = null) =>
        BatchInputParser.Parse(Encoding.UTF8.GetBytes(line), lineNumber, limits ?? JobLimits.Default, 1024 * 1024);

    private static JsonElement Body(BatchRequest request) => JsonDocument.Parse(request.Submission.Body).RootElement;

    [Fact]
    public void Parse_OpenAiCompletionLine_JobWithCustomIdAsJobId()
    {
        var line = Parse("""{"custom_id":"req-1","method":"POST","url":"/v1/completions","body":{"model":"any","prompt":"Once upon a time","max_tokens":16,"temperature":0,"stop":["."]}}""");

        var request = Assert.IsType<BatchRequest>(line);
        Assert.Equal("req-1", request.CustomId);
        Assert.Equal(RequestKind.Completion, request.Kind);
        Assert.Equal("req-1", request.Submission.Job.Id);
        Assert.Equal("Once upon a time", request.Submission.Job.Prompt);
        Assert.Equal(16, request.Submission.Job.MaxTokens);
        Assert.Equal(0f, request.Submission.Job.Temperature);
        Assert.Equal(["."], request.Submission.Job.Stop);
        // The published body is the producer's own, with the id added.
        Assert.Equal("req-1", Body(request).GetProperty("id").GetString());
        Assert.Equal("any", Body(request).GetProperty("model").GetString());
    }

    [Fact]
    public void Parse_OpenAiChatLine_ChatJobWithMessages()
    {
        var line = Parse("""{"custom_id":"c1","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}}""");

        var request = Assert.IsType<BatchRequest>(line);
        Assert.Equal(RequestKind.Chat, request.Kind);
        Assert.Equal(2, request.Submission.Job.Messages!.Count);
        Assert.Equal(new ChatMessage("user", "Hi"), request.Submission.Job.Messages[1]);
    }

    [Fact]
    public void Parse_MaxTokensAbsent_BodyLeavesTheDefaultToTheWorker()
    {
        var request = Assert.IsType<BatchRequest>(Parse("""{"custom_id":"a","url":"/v1/completions","body":{"prompt":"x"}}"""));

        Assert.False(Body(request).TryGetProperty("max_tokens", out _));
        Assert.Equal(JobLimits.Default.DefaultMaxTokens, request.Submission.Job.MaxTokens);
    }

    [Fact]
    public void Parse_BareBodyWithId_IdIsCustomId()
    {
        var request = Assert.IsType<BatchRequest>(Parse("""{"id":"doc-7","prompt":"Tim and Sue","metadata":{"k":1}}"""));

        Assert.Equal("doc-7", request.CustomId);
        Assert.Equal(RequestKind.Completion, request.Kind);
        Assert.Equal(1, request.Submission.Job.Metadata!.Value.GetProperty("k").GetInt32());
    }

    [Fact]
    public void Parse_BareBodyWithNumericId_IdTextIsCustomId()
    {
        var request = Assert.IsType<BatchRequest>(Parse("""{"id":12345,"prompt":"x"}"""));
        Assert.Equal("12345", request.CustomId);
        Assert.Equal("12345", request.Submission.Job.Id);
    }

    [Fact]
    public void Parse_BareBodyWithoutId_CustomIdFromLineNumber()
    {
        var request = Assert.IsType<BatchRequest>(Parse("""{"messages":[{"role":"user","content":"Hi"}]}""", lineNumber: 42));

        Assert.Equal("line-42", request.CustomId);
        Assert.Equal("line-42", request.Submission.Job.Id);
        Assert.Equal(RequestKind.Chat, request.Kind);
    }

    [Fact]
    public void Parse_CutShortLine_InvalidJsonErrorNamingTheLine()
    {
        var error = Assert.IsType<BatchLineError>(Parse("""{"custom_id": "x", "url": "/v1/completions", "body": {"prompt": "cut""", lineNumber: 6));

        Assert.Null(error.CustomId);
        Assert.Equal(ErrorCodes.InvalidJson, error.Error.Code);
        Assert.StartsWith("line 6: not valid JSON", error.Error.Message);
        Assert.Equal(6, error.Error.Line);
    }

    [Theory]
    [InlineData(128, "é", 256)] // 128 characters, 256 bytes
    [InlineData(64, "😀", 256)]
    [InlineData(86, "€", 258)]
    public void Parse_CustomIdOver255Utf8Bytes_ErrorNamesLineFieldAndBytes(int count, string character, int bytes)
    {
        var customId = string.Concat(Enumerable.Repeat(character, count));
        var error = Assert.IsType<BatchLineError>(Parse($$$"""{"custom_id":"{{{customId}}}","url":"/v1/completions","body":{"prompt":"x"}}""", lineNumber: 7));

        Assert.Null(error.CustomId);
        Assert.Equal(ErrorCodes.InvalidField, error.Error.Code);
        Assert.Equal("custom_id", error.Error.Param);
        Assert.Equal($"line 7: \"custom_id\" must be at most 255 bytes in UTF-8 (it becomes the job's AMQP message_id, a short string), got {bytes} bytes.", error.Error.Message);
        Assert.Equal(7, error.Error.Line);
    }

    [Fact]
    public void Parse_CustomIdOf255Utf8Bytes_Accepted()
    {
        var customId = new string('é', 127) + "a"; // 255 bytes
        var request = Assert.IsType<BatchRequest>(Parse($$$"""{"custom_id":"{{{customId}}}","url":"/v1/completions","body":{"prompt":"x"}}"""));
        Assert.Equal(customId, request.CustomId);
    }

    [Fact]
    public void Parse_BareIdOver255Utf8Bytes_ErrorNamesId()
    {
        var error = Assert.IsType<BatchLineError>(Parse($$"""{"id":"{{new string('é', 200)}}","prompt":"x"}""", lineNumber: 2));
        Assert.Equal("id", error.Error.Param);
        Assert.StartsWith("line 2: \"id\" must be at most 255 bytes in UTF-8", error.Error.Message);
    }

    [Theory]
    [InlineData("""{"custom_id":"a\ud800","url":"/v1/completions","body":{"prompt":"x"}}""", "custom_id")]
    [InlineData("""{"custom_id":"\udc00","url":"/v1/completions","body":{"prompt":"x"}}""", "custom_id")]
    [InlineData("""{"id":"x\ud800y","prompt":"x"}""", "id")]
    public void Parse_IdWithLoneSurrogate_ErrorNamesField(string line, string field)
    {
        var error = Assert.IsType<BatchLineError>(Parse(line, lineNumber: 4));
        Assert.Equal(ErrorCodes.InvalidField, error.Error.Code);
        Assert.Equal(field, error.Error.Param);
        Assert.Contains("unpaired surrogate", error.Error.Message, StringComparison.Ordinal);
        Assert.StartsWith("line 4: ", error.Error.Message);
    }

    [Theory]
    [InlineData("[1,2]", ErrorCodes.NotAnObject, "line 3: a line must be a JSON object, got an array.")]
    [InlineData("""{"custom_id":5,"url":"/v1/completions","body":{"prompt":"x"}}""", ErrorCodes.InvalidField, "line 3: \"custom_id\" must be a string, got a number.")]
    [InlineData("""{"custom_id":"","url":"/v1/completions","body":{"prompt":"x"}}""", ErrorCodes.InvalidField, "line 3: \"custom_id\" must not be empty.")]
    [InlineData("""{"prompt":"a","prompt":"b"}""", ErrorCodes.InvalidJson, null)]
    public void Parse_InvalidLineWithoutUsableCustomId_ErrorWithoutCustomId(string line, string code, string? message)
    {
        var error = Assert.IsType<BatchLineError>(Parse(line, lineNumber: 3));

        Assert.Null(error.CustomId);
        Assert.Equal(code, error.Error.Code);
        if (message is not null) Assert.Equal(message, error.Error.Message);
        Assert.StartsWith("line 3: ", error.Error.Message);
    }

    [Theory]
    [InlineData("""{"custom_id":"a","url":"/v1/files","body":{"input":"x"}}""", "url", "line 2: \"url\" must be \"/v1/completions\", \"/v1/chat/completions\" or \"/v1/embeddings\", got \"/v1/files\".")]
    [InlineData("""{"custom_id":"a","method":"GET","url":"/v1/completions","body":{"prompt":"x"}}""", "method", "line 2: \"method\" must be \"POST\", got \"GET\".")]
    [InlineData("""{"custom_id":"a","url":"/v1/completions","body":"x"}""", "body", "line 2: \"body\" must be an object, got \"x\".")]
    [InlineData("""{"custom_id":"a","url":"/v1/completions","body":{"messages":[{"role":"user","content":"x"}]}}""", "body.messages", null)]
    [InlineData("""{"custom_id":"a","url":"/v1/chat/completions","body":{"prompt":"x"}}""", "body.prompt", null)]
    [InlineData("""{"custom_id":"a","url":"/v1/completions","body":{"id":"b","prompt":"x"}}""", "body.id", null)]
    public void Parse_InvalidOpenAiEnvelope_ErrorKeepsCustomIdAndNamesTheField(string line, string param, string? message)
    {
        var error = Assert.IsType<BatchLineError>(Parse(line, lineNumber: 2));

        Assert.Equal("a", error.CustomId);
        Assert.Equal(param, error.Error.Param);
        if (message is not null) Assert.Equal(message, error.Error.Message);
    }

    [Fact]
    public void Parse_InvalidBodyField_TheWorkersOwnMessage()
    {
        var error = Assert.IsType<BatchLineError>(Parse("""{"custom_id":"t","url":"/v1/completions","body":{"prompt":"x","temperature":5}}""", lineNumber: 9));

        // The same rule text the worker would put in its failed result.
        var worker = JobParser.Parse("""{"prompt":"x","temperature":5}""", JobLimits.Default).Error!;
        Assert.Equal(ErrorCodes.InvalidField, error.Error.Code);
        Assert.Equal("body.temperature", error.Error.Param);
        Assert.Equal($"line 9: body: {worker.Message}", error.Error.Message);
        Assert.Equal("t", error.CustomId);
    }

    [Fact]
    public void Parse_MaxTokensOverTheCap_ErrorNamesTheCap()
    {
        var limits = new JobLimits { MaxTokens = 64, DefaultMaxTokens = 32 };
        var error = Assert.IsType<BatchLineError>(Parse("""{"id":"big","prompt":"x","max_tokens":100}""", limits: limits));

        Assert.Equal("max_tokens", error.Error.Param);
        Assert.Contains("Inference:MaxTokens", error.Error.Message);
    }

    [Fact]
    public void Parse_BodyOverMaxJobBytes_BodyTooLarge()
    {
        var prompt = new string('a', 2000);
        var line = BatchInputParser.Parse(Encoding.UTF8.GetBytes($$"""{"id":"x","prompt":"{{prompt}}"}"""), 1, JobLimits.Default, maxJobBytes: 1024);

        var error = Assert.IsType<BatchLineError>(line);
        Assert.Equal(ErrorCodes.BodyTooLarge, error.Error.Code);
        Assert.Contains("RabbitMq:MaxJobBytes", error.Error.Message);
    }

    [Fact]
    public void Parse_InvalidUtf8_InvalidUtf8Error()
    {
        var bytes = new byte[] { (byte)'{', 0xC3, 0x28, (byte)'}' };
        var error = Assert.IsType<BatchLineError>(BatchInputParser.Parse(bytes, 4, JobLimits.Default, 1024));
        Assert.Equal(ErrorCodes.InvalidUtf8, error.Error.Code);
    }

    [Fact]
    public void Parse_ByteOrderMarkOnFirstLine_Ignored()
    {
        var bytes = Encoding.UTF8.GetPreamble().Concat(Encoding.UTF8.GetBytes("""{"id":"a","prompt":"x"}""")).ToArray();
        Assert.IsType<BatchRequest>(BatchInputParser.Parse(bytes, 1, JobLimits.Default, 1024));
    }
}
