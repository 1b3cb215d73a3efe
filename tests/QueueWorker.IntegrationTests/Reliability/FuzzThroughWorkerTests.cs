using System.Globalization;
using System.Text;
using CsCheck;
using RabbitMQ.Client;
using Xunit.Abstractions;

namespace QueueWorker.IntegrationTests.Reliability;

/// <summary>
/// The in-process fuzz test (PipelineFuzzTests) through the real thing: a few hundred generated bodies
/// (<see cref="JobBodyGen.AnyBody"/>, fixed seed) with random AMQP properties and headers, published by an independent
/// RabbitMQ.Client connection to the real worker on stories260K. Every job must get exactly one result (counted by its
/// correlation_id, the one property the test fixes), the DLQ must end empty and the worker alive.
/// </summary>
[Collection(ReliabilityCollection.Name)]
[Trait("Category", "Integration")]
public sealed class FuzzThroughWorkerTests(ITestOutputHelper output)
{
    // CI's size and seed; QW_FUZZ_WORKER_JOBS and QW_FUZZ_SEED set a long run (README, Reliability: Fuzzing).
    private static readonly int Jobs = EnvInt("QW_FUZZ_WORKER_JOBS", 300);
    private static readonly ulong Seed = (ulong)EnvInt("QW_FUZZ_SEED", 20261201);

    private static int EnvInt(string name, int fallback) =>
        Environment.GetEnvironmentVariable(name) is { Length: > 0 } text
            ? int.Parse(text, System.Globalization.CultureInfo.InvariantCulture) is var value and > 0 ? value
                : throw new InvalidOperationException($"{name} must be a positive integer, got '{text}'")
            : fallback;

    private sealed record Envelope(string? MessageId, string? ReplyTo, string? ContentType, string? ContentEncoding, long? Timestamp,
        string? Expiration, byte? Priority, bool Persistent, string? Type, Dictionary<string, object?>? Headers);

    private static readonly Gen<string> Text = Gen.Frequency(
        (3, Gen.String[0, 40]),
        (1, Gen.Char.Array[0, 60].Select(c => new string(c))), // lone surrogates included: the client writes U+FFFD
        (1, Gen.Int[0, 127].Select(n => new string('é', n) + "a"))); // up to 255 bytes in UTF-8

    private static readonly Gen<object?> HeaderValue = Gen.Frequency<object?>(
        (3, Gen.Long.Select(v => (object?)v)),
        (1, Gen.Int.Select(v => (object?)v)),
        (1, Gen.Double.Select(v => (object?)v)),
        (1, Gen.Bool.Select(v => (object?)v)),
        (2, Text.Select(v => (object?)v)),
        (1, Gen.Long.Select(v => (object?)Encoding.UTF8.GetBytes(v.ToString(CultureInfo.InvariantCulture)))),
        (1, Gen.Long[0, 253_402_300_799].Select(v => (object?)new AmqpTimestamp(v))),
        (1, Gen.Const((object?)null)),
        (1, Gen.Const<object?>(new List<object?> { 1L, "x" })),
        (1, Gen.Const<object?>(new Dictionary<string, object?> { ["a"] = 1L })));

    private static readonly Gen<string> HeaderName = Gen.Frequency(
        (3, Gen.OneOf("timestamp_in_ms", "x-delivery-count", "x-qw-deliveries", "x-death", "x-first-death-reason")),
        (2, Gen.String[1, 20]));

    private static readonly Gen<Dictionary<string, object?>?> Headers = Gen.Frequency(
        (2, Gen.Const((Dictionary<string, object?>?)null)),
        (3, Gen.Select(HeaderName, HeaderValue).Array[1, 4].Select(pairs =>
        {
            var headers = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var (name, value) in pairs) headers[name] = value;
            return (Dictionary<string, object?>?)headers;
        })));

    private static readonly Gen<Envelope> Envelopes = Gen.Select(
        Gen.Frequency((2, Gen.Const((string?)null)), (3, Text.Select(t => (string?)t))),
        Gen.Frequency((6, Gen.Const((string?)null)), (1, Gen.OneOf<string?>("not-an-allowed-queue", "amq.gen-nobody-declared-this"))),
        Gen.Frequency((4, Gen.Const((string?)null)), (4, Gen.Const<string?>("application/json")), (1, Gen.OneOf<string?>("text/plain", "application/json; charset=utf-8"))),
        Gen.Frequency((6, Gen.Const((string?)null)), (1, Gen.OneOf<string?>("gzip", "identity", "utf-8"))),
        Gen.Frequency((2, Gen.Const((long?)null)), (2, Gen.Const<long?>(-1)), (1, Gen.OneOf<long?>(0, 1, 253_402_300_799, long.MaxValue, long.MinValue)), (1, Gen.Long.Select(v => (long?)v))),
        Gen.Frequency((8, Gen.Const((string?)null)), (1, Gen.OneOf<string?>("0", "1", "60000", "4294967295"))),
        Gen.Frequency((4, Gen.Const((byte?)null)), (1, Gen.Byte.Select(b => (byte?)b))),
        Gen.Bool,
        Gen.Frequency((3, Gen.Const((string?)null)), (1, Text.Select(t => (string?)t))),
        Headers,
        (id, replyTo, contentType, encoding, timestamp, expiration, priority, persistent, type, headers) =>
            new Envelope(id, replyTo, contentType, encoding, timestamp, expiration, priority, persistent, type, headers));

    /// <summary>Mostly <see cref="JobBodyGen.AnyBody"/> (rarely valid), plus valid small jobs so the engine path is exercised too.</summary>
    private static readonly Gen<byte[]> Bodies = Gen.Frequency(
        (3, JobBodyGen.AnyBody),
        (1, Gen.Int[1, 8].Select(n => Encoding.UTF8.GetBytes($$"""{"prompt":"Once upon a time","max_tokens":{{n}},"temperature":0}"""))));

    [Fact]
    public async Task GeneratedBodiesAndProperties_ThroughRealWorker_ExactlyOneResultEachDlqEmptyWorkerAlive()
    {
        await using var h = await ReliabilityHarness.CreateAsync(output);
        h.Settings["Inference:Slots"] = "4";
        h.Settings["Inference:ContextSize"] = "1024";
        h.Settings["Inference:MaxTokens"] = "8";
        h.Settings["Inference:DefaultMaxTokens"] = "4";
        h.Settings["Logging:LogLevel:QueueWorker.Messaging"] = "Information";
        var worker = await h.StartWorkerAsync();

        // A fixed seed: the same cases every run (JobBodyGen's bodies, our envelopes); the seed is logged for replay.
        h.Log($"{Jobs} jobs, seed {Seed}");
        var pcg = new PCG(1, Seed);
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var sent = new List<string>(Jobs);
        var started = System.Diagnostics.Stopwatch.StartNew();
        for (var i = 0; i < Jobs; i++)
        {
            var body = Bodies.Generate(pcg, null, out _);
            var envelope = Envelopes.Generate(pcg, null, out _);
            var correlation = $"fz-{i:D3}-{suffix}";
            sent.Add(correlation);
            await h.Broker.PublishAsync(h.JobsQueue, body, p => Apply(p, envelope, correlation));
        }
        h.Log($"{Jobs} generated jobs published in {started.Elapsed.TotalSeconds:F1} s");

        var expected = sent.ToHashSet(StringComparer.Ordinal);
        await ReliabilityHarness.WaitUntilAsync(() => expected.All(c => h.JobResults.Any(r => r.CorrelationId == c)) || worker.HasExited,
            $"a result for each of the {Jobs} jobs", TimeSpan.FromSeconds(Math.Max(150, Jobs / 2)), TimeSpan.FromMilliseconds(250));
        h.Log($"all answered {started.Elapsed.TotalSeconds:F1} s after the first publish");
        await ReliabilityHarness.WaitUntilAsync(async () => await h.Broker.MessageCountAsync(h.DeadLetterQueue) == 0
                && await h.Broker.MessageCountAsync(h.JobsQueue) == 0,
            "the jobs queue and the DLQ empty", TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(250));
        await Task.Delay(TimeSpan.FromSeconds(2)); // anything late (a duplicate) would arrive now

        Assert.False(worker.HasExited, "the worker died");
        Assert.Equal("ok", await worker.GetAsync("/healthz"));
        var results = h.JobResults;
        var byCorrelation = results.GroupBy(r => r.CorrelationId ?? "(none)", StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var figures = results.GroupBy(r => r.Result.Status == Contracts.JobStatus.Completed ? "completed" : r.Result.Error?.Code ?? "?")
            .OrderByDescending(g => g.Count()).Select(g => $"{g.Key} {g.Count()}");
        h.Log($"{results.Count} results for {Jobs} jobs: " + string.Join(", ", figures));
        Assert.DoesNotContain(sent, c => !byCorrelation.ContainsKey(c));
        Assert.Empty(byCorrelation.Where(kv => kv.Value != 1 || !expected.Contains(kv.Key)).Select(kv => $"{kv.Key} x{kv.Value}"));
        Assert.Equal(Jobs, results.Count);
        Assert.All(results, r => Assert.Equal(r.Result.Id, r.MessageId));
        Assert.DoesNotContain(results, r => r.Result.Error?.Code == Contracts.ErrorCodes.InternalError);
    }

    private static void Apply(BasicProperties p, Envelope e, string correlation)
    {
        p.CorrelationId = correlation;
        p.MessageId = e.MessageId;
        p.ReplyTo = e.ReplyTo;
        p.ContentType = e.ContentType;
        p.ContentEncoding = e.ContentEncoding;
        if (e.Timestamp is { } t and not -1) // -1: keep the publish time TestBroker sets
            p.Timestamp = new AmqpTimestamp(t);
        p.Expiration = e.Expiration;
        if (e.Priority is { } priority) p.Priority = priority;
        p.DeliveryMode = e.Persistent ? DeliveryModes.Persistent : DeliveryModes.Transient;
        p.Type = e.Type;
        p.Headers = e.Headers;
    }
}
