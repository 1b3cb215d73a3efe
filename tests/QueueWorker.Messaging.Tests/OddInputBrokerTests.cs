using System.Text;
using System.Text.Json;
using QueueWorker.Contracts;
using RabbitMQ.Client;

namespace QueueWorker.Messaging.Tests;

/// <summary>
/// Odd but legal bodies and properties through a real broker and the real consumer and publisher, with a handler that
/// does what the job pipeline does before the engine (parse with the message_id as fallback id, fail or answer). Each
/// job gets exactly one result whose AMQP message_id is its id, and is acked: nothing throws on the way, including
/// encoding the result's short strings.
/// </summary>
[Collection(RabbitMqCollection.Name)]
[Trait("Category", "Integration")]
public sealed class OddInputBrokerTests(RabbitMqFixture broker, ITestOutputHelper output)
{
    public sealed record Case(string Body, Action<BasicProperties>? Configure, string ExpectedId, string Status, string? Field = null);

    private static readonly string Id255Bytes = new('€', 85);
    private static readonly string Id256Bytes = new('é', 128);

    public static readonly Dictionary<string, Case> Cases = new()
    {
        ["id of exactly 255 bytes"] = new($$"""{"id":"{{Id255Bytes}}","prompt":"x"}""", null, Id255Bytes, JobStatus.Completed),
        ["id of 128 characters but 256 bytes"] = new($$"""{"id":"{{Id256Bytes}}","prompt":"x"}""", p => p.MessageId = "odd-bytes", "odd-bytes", JobStatus.Failed, "id"),
        ["lone surrogate in metadata"] = new("""{"id":"odd-meta","metadata":{"k":"\ud800"},"prompt":"x"}""", null, "odd-meta", JobStatus.Failed, "metadata.k"),
        ["lone surrogate in a key"] = new("""{"id":"odd-key","metadata":{"m":1},"prompt":"x","\udc00":1}""", null, "odd-key", JobStatus.Failed, "\\udc00"),
        ["lone surrogate in the id"] = new("""{"id":"a\ud800","prompt":"x"}""", p => p.MessageId = "odd-id", "odd-id", JobStatus.Failed, "id"),
        ["lone surrogate in a message"] = new("""{"id":"odd-msg","messages":[{"role":"user","content":"\ud800"}]}""", null, "odd-msg", JobStatus.Failed, "messages[0].content"),
        ["duplicate key"] = new("""{"id":"odd-dup","prompt":"x","prompt":"y"}""", null, "odd-dup", JobStatus.Failed, "prompt"),
        ["seed LLAMA_DEFAULT_SEED"] = new("""{"id":"odd-seed","prompt":"x","seed":4294967295}""", null, "odd-seed", JobStatus.Failed, "seed"),
        ["stream as a string"] = new("""{"id":"odd-stream","prompt":"x","stream":"true"}""", null, "odd-stream", JobStatus.Failed, "stream"),
        ["temperature denormal"] = new("""{"id":"odd-temp","prompt":"x","temperature":1e-320}""", null, "odd-temp", JobStatus.Failed, "temperature"),
        ["timestamp in year 9999, odd headers"] = new("""{"id":"odd-time","prompt":"x"}""", p =>
        {
            p.Timestamp = new AmqpTimestamp(253_402_300_799);
            p.Headers = new Dictionary<string, object?> { [DeliveryMapper.TimestampInMsHeader] = long.MaxValue, [DeliveryMapper.DeliveryCountHeader] = "abc" };
        }, "odd-time", JobStatus.Completed),
        ["no id, message_id and correlation_id of 255 bytes"] = new("""{"prompt":"x"}""", p =>
        {
            p.MessageId = Id255Bytes;
            p.CorrelationId = Id255Bytes;
        }, Id255Bytes, JobStatus.Completed),
    };

    public static IEnumerable<object[]> CaseNames => Cases.Keys.Select(k => new object[] { k });

    [Theory]
    [MemberData(nameof(CaseNames))]
    public async Task OddInput_OneResultWithItsIdAsMessageId_JobAcked(string name)
    {
        var c = Cases[name];
        var options = broker.NewOptions("odd");
        var handler = new TestJobHandler
        {
            Behaviour = (job, _) =>
            {
                var fallback = job.MessageId ?? "job-" + Guid.NewGuid().ToString("N");
                var parsed = JobParser.Parse(job.Body.Span, JobLimits.Default, fallback);
                var id = parsed.Id ?? fallback;
                return Task.FromResult(parsed.Error is { } error
                    ? JobResult.Failed(id, error, metadata: parsed.Metadata)
                    : new JobResult { Id = id, Status = JobStatus.Completed, Text = "ok", FinishReason = FinishReasons.Stop, Metadata = parsed.Metadata });
            },
        };
        await using var worker = await TestWorker.StartAsync(options, output, handler);

        await broker.PublishJobAsync(options.JobsQueue, Encoding.UTF8.GetBytes(c.Body), c.Configure);
        var message = await broker.GetAsync(options.ResultsQueue);

        Assert.Equal(c.ExpectedId, message.BasicProperties.MessageId);
        var result = JobSerializer.DeserializeResult(message.Body.Span);
        Assert.Equal(c.ExpectedId, result.Id);
        Assert.Equal(c.Status, result.Status);
        Assert.Equal(c.Field, result.Error?.Field);
        if (result.Error is { } e) output.WriteLine($"{e.Code} {e.Field}: {e.Message}");
        if (name.StartsWith("no id", StringComparison.Ordinal))
            Assert.Equal(Id255Bytes, message.BasicProperties.CorrelationId);
        if (name.StartsWith("timestamp", StringComparison.Ordinal))
        {
            var job = Assert.Single(worker.Handler.Received);
            Assert.Null(job.Timestamp);
            Assert.Equal(0, job.DeliveryCount);
        }
        if (name == "lone surrogate in a key")
            Assert.Equal(JsonValueKind.Object, result.Metadata?.ValueKind);

        // Acked, not requeued: nothing waits in the jobs queue, and no second result follows.
        await worker.WaitUntilAsync(() => worker.Status.InFlight == 0, "the job is acked");
        Assert.Equal(0u, await broker.ReadyCountAsync(options.JobsQueue));
        Assert.Single(worker.Handler.Received);
        await Task.Delay(300);
        Assert.Equal(0u, await broker.ReadyCountAsync(options.ResultsQueue));
    }
}
