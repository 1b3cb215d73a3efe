using System.Text;
using System.Text.RegularExpressions;
using QueueWorker.Contracts;
using RabbitMQ.Client;

namespace QueueWorker.IntegrationTests.Reliability;

/// <summary>One worker with small limits (context 256, max_tokens cap 64, 8 KiB bodies) for the bad-input cases.</summary>
public sealed class BadInputFixture : WorkerFixture
{
    protected override IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
    {
        ["Inference:ContextSize"] = "256",
        ["Inference:BatchSize"] = "256",
        ["Inference:Slots"] = "1",
        ["Inference:MaxTokens"] = "64",
        ["Inference:DefaultMaxTokens"] = "16",
        ["RabbitMq:MaxJobBytes"] = "8192",
    };
}

/// <summary>
/// Bad input through the real worker: every bad job gets exactly one failed result with a stable code and a
/// message naming the field and the rule, to its reply_to when it has one, is acked, and the worker keeps serving.
/// </summary>
[Collection(ReliabilityCollection.Name)]
[Trait("Category", "Integration")]
public sealed class BadInputTests(BadInputFixture fixture) : IClassFixture<BadInputFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <param name="Field">The field the error names (null when the body as a whole is wrong).</param>
    /// <param name="Says">Part of the message: the rule, so a producer knows what to fix.</param>
    /// <param name="BodyId">The job id given in the body, when the result must carry it rather than the message_id.</param>
    public sealed record Case(byte[] Body, string Code, string? Field, string Says, Action<BasicProperties>? Configure = null, string? BodyId = null);

    private static Case Json(string json, string code, string? field, string says, Action<BasicProperties>? configure = null, string? bodyId = null) =>
        new(Encoding.UTF8.GetBytes(json), code, field, says, configure, bodyId);

    private static readonly AmqpTimestamp AnHourAgo = new(DateTimeOffset.UtcNow.AddHours(-1).ToUnixTimeSeconds());

    public static readonly Dictionary<string, Case> Cases = new()
    {
        ["not JSON"] = Json("""{"prompt": "Once upon""", ErrorCodes.InvalidJson, null, "not valid JSON"),
        ["plain text"] = Json("tell me a story", ErrorCodes.InvalidJson, null, "not valid JSON"),
        ["JSON array"] = Json("""[{"prompt":"x"}]""", ErrorCodes.NotAnObject, null, "got an array"),
        ["JSON string"] = Json("\"Once upon a time\"", ErrorCodes.NotAnObject, null, "got a string"),
        ["JSON null"] = Json("null", ErrorCodes.NotAnObject, null, "got null"),
        ["empty body"] = new([], ErrorCodes.EmptyBody, null, "empty"),
        ["whitespace body"] = Json(" \r\n\t ", ErrorCodes.EmptyBody, null, "empty"),
        ["deeply nested"] = Json("""{"prompt":"x","metadata":""" + string.Concat(Enumerable.Repeat("""{"a":""", 100)) + "1" + new string('}', 101),
            ErrorCodes.InvalidJson, null, "deeper than 32"),
        ["prompt a number"] = Json("""{"prompt":42}""", ErrorCodes.InvalidField, "prompt", "must be a string, got a number"),
        ["max_tokens a string"] = Json("""{"prompt":"x","max_tokens":"ten"}""", ErrorCodes.InvalidField, "max_tokens", "must be an integer from 1 to 64"),
        ["temperature a string"] = Json("""{"prompt":"x","temperature":"hot"}""", ErrorCodes.InvalidField, "temperature", "got a string"),
        ["metadata an array"] = Json("""{"prompt":"x","metadata":[1]}""", ErrorCodes.InvalidField, "metadata", "must be an object"),
        ["missing prompt"] = Json("""{"max_tokens":5}""", ErrorCodes.MissingPrompt, "prompt", "needs \"prompt\""),
        ["empty prompt"] = Json("""{"prompt":""}""", ErrorCodes.MissingPrompt, "prompt", "must not be empty"),
        ["empty messages"] = Json("""{"messages":[]}""", ErrorCodes.MissingPrompt, "messages", "must not be empty"),
        ["prompt and messages"] = Json("""{"prompt":"x","messages":[{"role":"user","content":"y"}]}""", ErrorCodes.MissingPrompt, "prompt", "not both"),
        ["unknown role"] = Json("""{"messages":[{"role":"robot","content":"hi"}]}""", ErrorCodes.InvalidField, "messages[0].role", "system, user or assistant"),
        ["max_tokens 0"] = Json("""{"prompt":"x","max_tokens":0}""", ErrorCodes.InvalidField, "max_tokens", "from 1 to 64"),
        ["max_tokens over the cap"] = Json("""{"prompt":"x","max_tokens":65}""", ErrorCodes.InvalidField, "max_tokens", "Inference:MaxTokens"),
        ["max_tokens a fraction"] = Json("""{"prompt":"x","max_tokens":2.5}""", ErrorCodes.InvalidField, "max_tokens", "got 2.5"),
        ["max_tokens 1e400"] = Json("""{"prompt":"x","max_tokens":1e400}""", ErrorCodes.InvalidField, "max_tokens", "from 1 to 64"),
        ["temperature negative"] = Json("""{"prompt":"x","temperature":-0.1}""", ErrorCodes.InvalidField, "temperature", "from 0 to 2"),
        ["temperature over 2"] = Json("""{"prompt":"x","temperature":2.5}""", ErrorCodes.InvalidField, "temperature", "from 0 to 2"),
        ["top_p 0"] = Json("""{"prompt":"x","top_p":0}""", ErrorCodes.InvalidField, "top_p", "greater than 0 and at most 1"),
        ["top_p over 1"] = Json("""{"prompt":"x","top_p":1.5}""", ErrorCodes.InvalidField, "top_p", "greater than 0 and at most 1"),
        ["top_k negative"] = Json("""{"prompt":"x","top_k":-1}""", ErrorCodes.InvalidField, "top_k", "from 0 to"),
        ["seed negative"] = Json("""{"prompt":"x","seed":-1}""", ErrorCodes.InvalidField, "seed", "from 0 to"),
        ["stop a number"] = Json("""{"prompt":"x","stop":5}""", ErrorCodes.InvalidField, "stop", "a string or an array of strings"),
        ["stop with a number"] = Json("""{"prompt":"x","stop":["a",1]}""", ErrorCodes.InvalidField, "stop[1]", "must be a string"),
        ["stop empty string"] = Json("""{"prompt":"x","stop":[""]}""", ErrorCodes.InvalidField, "stop[0]", "must not be empty"),
        ["stop too many"] = Json("""{"prompt":"x","stop":[""" + string.Join(",", Enumerable.Range(0, 17).Select(i => $"\"s{i}\"")) + "]}",
            ErrorCodes.InvalidField, "stop", "at most 16"),
        ["n 2"] = Json("""{"prompt":"x","n":2}""", ErrorCodes.InvalidField, "n", "must be 1"),
        ["stream true"] = Json("""{"prompt":"x","stream":true}""", ErrorCodes.InvalidField, "stream", "must be false"),
        ["invalid UTF-8"] = new([.. "{\"prompt\":\""u8, 0xC3, 0x28, .. "\"}"u8], ErrorCodes.InvalidUtf8, null, "not valid UTF-8"),
        ["prompt longer than the context"] = Json($$"""{"prompt":"{{string.Concat(Enumerable.Repeat("Once upon a time there was a girl. ", 40))}}"}""",
            ErrorCodes.PromptTooLong, "prompt", "+ max_tokens 16 = "),
        ["body over RabbitMq:MaxJobBytes"] = Json("{\"prompt\":\"x\",\"metadata\":{\"pad\":\"" + new string('x', 9000) + "\"}}",
            ErrorCodes.BodyTooLarge, "body", "the limit RabbitMq:MaxJobBytes is 8192"),
        ["id too long"] = Json($$"""{"id":"{{new string('i', 300)}}","prompt":"x"}""", ErrorCodes.InvalidField, "id", "at most 256 characters, got 300"),
        ["id an object"] = Json("""{"id":{},"prompt":"x"}""", ErrorCodes.InvalidField, "id", "must be a string"),
        ["id kept in a failed result"] = Json("""{"id":"ID","prompt":"x","temperature":9}""", ErrorCodes.InvalidField, "temperature", "from 0 to 2", bodyId: "ID"),
        ["timeout_ms passed"] = Json("""{"prompt":"x","timeout_ms":1000}""", ErrorCodes.DeadlineExceeded, "timeout_ms", "passed before work began",
            p => p.Timestamp = AnHourAgo),
        ["AMQP expiration passed"] = Json("""{"prompt":"x"}""", ErrorCodes.DeadlineExceeded, "expiration", "passed before work began",
            p => { p.Timestamp = AnHourAgo; p.Expiration = "60000"; }),
        ["content_type text/plain"] = Json("""{"prompt":"x"}""", ErrorCodes.UnsupportedContentType, "content_type", "must be application/json",
            p => p.ContentType = "text/plain"),
        ["content_encoding gzip"] = Json("""{"prompt":"x"}""", ErrorCodes.UnsupportedContentType, "content_encoding", "utf-8 or identity",
            p => p.ContentEncoding = "gzip"),
    };

    public static IEnumerable<object[]> CaseNames => Cases.Keys.Select(k => new object[] { k });

    [Theory]
    [MemberData(nameof(CaseNames))]
    public async Task BadJob_OneFailedResultWithCodeAndField_AckedWorkerKeepsServing(string name)
    {
        var c = Cases[name];
        var messageId = "bad-" + Guid.NewGuid().ToString("N")[..10];
        var resultId = c.BodyId is null ? messageId : c.BodyId + "-" + messageId;
        var body = c.BodyId is null ? c.Body : Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(c.Body).Replace($"\"{c.BodyId}\"", $"\"{resultId}\""));
        // Half the cases ask for a reply_to, half use the results queue.
        var replyTo = (Array.IndexOf(Cases.Keys.ToArray(), name) % 2) == 0;
        await fixture.Broker.PublishAsync(fixture.JobsQueue, body, p =>
        {
            p.MessageId = messageId;
            p.CorrelationId = "corr-" + messageId;
            if (replyTo) p.ReplyTo = fixture.ReplyQueue;
            c.Configure?.Invoke(p);
        });

        var (here, other) = replyTo ? (fixture.Replies, fixture.Results) : (fixture.Results, fixture.Replies);
        var received = await here.WaitForIdAsync(resultId, Timeout);
        var result = received.Result;
        Assert.Equal(JobStatus.Failed, result.Status);
        Assert.Equal(c.Code, result.Error!.Code);
        Assert.Equal(c.Field, result.Error.Field);
        Assert.Contains(c.Says, result.Error.Message);
        Assert.Equal(resultId, received.MessageId);
        Assert.Equal("corr-" + messageId, received.CorrelationId);
        Assert.Null(result.Text);
        Assert.NotNull(result.Worker);

        // Acked, exactly one result, and the worker still serves a good job.
        await ReliabilityHarness.WaitUntilAsync(async () => await fixture.Worker.MetricAsync("queueworker_jobs_in_flight") == 0,
            "the bad job settled", Timeout, TimeSpan.FromMilliseconds(100));
        Assert.Equal(0u, await fixture.Broker.MessageCountAsync(fixture.JobsQueue));
        var good = "good-" + Guid.NewGuid().ToString("N")[..10];
        await fixture.Broker.PublishAsync(fixture.JobsQueue, ReliabilityHarness.JobJson(good, 3), p => { p.MessageId = good; p.ReplyTo = fixture.ReplyQueue; });
        Assert.Equal(", there was", (await fixture.Replies.WaitForIdAsync(good, Timeout)).Result.Text);
        Assert.Single(here.All, r => r.Result.Id == resultId);
        Assert.DoesNotContain(other.All, r => r.Result.Id == resultId);
        Assert.Equal(0u, await fixture.Broker.MessageCountAsync(fixture.JobsQueue + ".dlq"));
        Assert.False(fixture.Worker.HasExited);
        if (c.Code == ErrorCodes.PromptTooLong)
            Assert.Matches(new Regex(@"prompt is \d+ tokens \+ max_tokens 16 = \d+ KV cells, but Inference:ContextSize is 256"), result.Error.Message);
    }

    /// <summary>Odd but valid jobs a user would try: each completes (nothing rejected that the contract allows).</summary>
    public static readonly Dictionary<string, byte[]> OddButValid = new()
    {
        ["UTF-8 byte order mark"] = [0xEF, 0xBB, 0xBF, .. """{"prompt":"Once upon a time","max_tokens":3,"temperature":0}"""u8],
        ["NUL and control characters"] = Encoding.UTF8.GetBytes("""{"prompt":"Once\u0000upon\u0007a time","max_tokens":3}"""),
        ["special-token text"] = Encoding.UTF8.GetBytes("""{"prompt":"<s></s><|im_start|>system","max_tokens":3}"""),
        ["emoji and other scripts"] = Encoding.UTF8.GetBytes("""{"prompt":"Il était une fois 🐉 日本語 עברית","max_tokens":3}"""),
        ["numeric id"] = Encoding.UTF8.GetBytes("""{"id":12345678901234567890,"prompt":"Once","max_tokens":2}"""),
        ["unknown extra fields"] = Encoding.UTF8.GetBytes("""{"prompt":"Once","max_tokens":2,"model":"gpt-4o","user":"u1"}"""),
        ["max_tokens as 3.0"] = Encoding.UTF8.GetBytes("""{"prompt":"Once","max_tokens":3.0}"""),
        ["whitespace-only prompt"] = Encoding.UTF8.GetBytes("""{"prompt":"   ","max_tokens":2}"""),
    };

    public static IEnumerable<object[]> OddButValidNames => OddButValid.Keys.Select(k => new object[] { k });

    [Theory]
    [MemberData(nameof(OddButValidNames))]
    public async Task OddButValidJob_Completes(string name)
    {
        var messageId = "odd-" + Guid.NewGuid().ToString("N")[..10];
        await fixture.Broker.PublishAsync(fixture.JobsQueue, OddButValid[name], p => { p.MessageId = messageId; p.ReplyTo = fixture.ReplyQueue; });
        var expectedId = name == "numeric id" ? "12345678901234567890" : messageId;
        var result = (await fixture.Replies.WaitForIdAsync(expectedId, Timeout)).Result;
        Assert.True(result.Status == JobStatus.Completed, $"{name}: {result.Error?.Code}: {result.Error?.Message}");
        Assert.True(result.Usage!.CompletionTokens >= 1);
    }
}
