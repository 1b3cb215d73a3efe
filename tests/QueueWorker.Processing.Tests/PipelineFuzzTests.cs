using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using CsCheck;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using QueueWorker.Contracts;
using QueueWorker.Inference;
using RabbitMQ.Client;
using Xunit.Abstractions;

namespace QueueWorker.Processing.Tests;

/// <summary>
/// The "exactly one result" promise, fuzzed through the whole in-process path: any body and any envelope values,
/// through <see cref="JobPipeline.RunAsync(JobInput, CancellationToken)"/> with an engine that completes, refuses
/// (<c>prompt_too_long</c>, <c>engine_error</c>) or throws something unforeseen, then <see cref="JobSerializer"/> and
/// the AMQP properties the worker would publish the result with. Each case yields exactly one well-formed result.
/// Iterations: QW_FUZZ_ITERATIONS (default 100 000); for a long run:
/// <c>QW_FUZZ_ITERATIONS=1000000 dotnet test tests/QueueWorker.Processing.Tests -c Release --filter "FullyQualifiedName~PipelineFuzzTests"</c>.
/// A failure prints the CsCheck seed; CsCheck_Seed=&lt;seed&gt; replays it.
/// </summary>
[Trait("Category", "Unit")]
public sealed class PipelineFuzzTests(ITestOutputHelper output)
{
    private static readonly WorkerIdentity Identity = new("worker-fuzz", "1.0.0");

    private static long Iterations(long defaultCount) =>
        long.TryParse(Environment.GetEnvironmentVariable("QW_FUZZ_ITERATIONS"), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : defaultCount;

    /// <summary>Codes the pipeline gives a job it refuses before the engine sees it.</summary>
    private static readonly HashSet<string> BeforeEngine =
        [ErrorCodes.EmptyBody, ErrorCodes.InvalidUtf8, ErrorCodes.InvalidJson, ErrorCodes.NotAnObject, ErrorCodes.InvalidField,
         ErrorCodes.MissingPrompt, ErrorCodes.BodyTooLarge, ErrorCodes.UnsupportedContentType, ErrorCodes.DeadlineExceeded];

    internal enum EngineMode
    {
        Complete,
        PromptTooLong,
        EngineError,
        Unexpected,
    }

    // ---- generators ----

    /// <summary>One character of envelope text: ASCII, any BMP character, an astral one, or a lone surrogate.</summary>
    private static readonly Gen<string> Piece = Gen.Frequency(
        (6, Gen.Char['a', 'z'].Select(c => c.ToString())),
        (2, Gen.Int[0x80, 0xFFFF].Where(c => !char.IsSurrogate((char)c)).Select(c => ((char)c).ToString())),
        (1, Gen.Int[0x10000, 0x10FFFF].Select(char.ConvertFromUtf32)),
        (1, Gen.Int[0xD800, 0xDFFF].Select(c => ((char)c).ToString())));

    /// <summary>Envelope text: absent, empty, short, around the 255-byte shortstr limit in 1- to 4-byte characters, or long.</summary>
    private static readonly Gen<string?> EnvText = Gen.Frequency(
        (2, Gen.Const((string?)null)),
        (1, Gen.Const((string?)string.Empty)),
        (4, Piece.Array[1, 16].Select(p => (string?)string.Concat(p))),
        (2, Gen.Select(Gen.Int[60, 300], Gen.OneOf("a", "é", "€", "😀")).Select((n, c) => (string?)string.Concat(Enumerable.Repeat(c, c.Length == 2 ? n / 2 : n)))),
        (1, Piece.Array[200, 300].Select(p => (string?)string.Concat(p))));

    private static readonly Gen<string?> ContentType = Gen.Frequency(
        (16, Gen.OneOf<string?>(null, "application/json")),
        (2, Gen.OneOf<string?>("", "application/json; charset=utf-8", "APPLICATION/JSON", "text/plain", "application/octet-stream")),
        (1, EnvText));

    private static readonly Gen<string?> ContentEncoding = Gen.Frequency(
        (16, Gen.OneOf<string?>(null, "utf-8", "identity")),
        (2, Gen.OneOf<string?>("", "UTF-8", "gzip", "deflate")),
        (1, EnvText));

    /// <summary>Publish times: none, near receipt (either side), or anywhere from year 1 to 9999 (the edges included).</summary>
    private static readonly Gen<DateTimeOffset?> PublishedAt = Gen.Frequency(
        (2, Gen.Const((DateTimeOffset?)null)),
        (3, Gen.Long[-7 * 86_400_000L, 86_400_000L].Select(ms => (DateTimeOffset?)Clock.Start.AddMilliseconds(ms))),
        (2, Gen.Long[DateTimeOffset.MinValue.UtcTicks, DateTimeOffset.MaxValue.UtcTicks].Select(t => (DateTimeOffset?)new DateTimeOffset(t, TimeSpan.Zero))),
        (1, Gen.OneOf<DateTimeOffset?>(DateTimeOffset.MinValue, DateTimeOffset.MaxValue, DateTimeOffset.UnixEpoch)));

    /// <summary>Expirations: none, zero, any RabbitMQ TTL, and values no broker would send (up to <see cref="TimeSpan.MaxValue"/>).</summary>
    private static readonly Gen<TimeSpan?> Expiration = Gen.Frequency(
        (3, Gen.Const((TimeSpan?)null)),
        (1, Gen.Const((TimeSpan?)TimeSpan.Zero)),
        (3, Gen.Long[0, uint.MaxValue].Select(ms => (TimeSpan?)TimeSpan.FromMilliseconds(ms))),
        (1, Gen.Long[0, long.MaxValue].Select(t => (TimeSpan?)TimeSpan.FromTicks(t))),
        (1, Gen.Const((TimeSpan?)TimeSpan.MaxValue)));

    private static readonly Gen<long> DeliveryCount = Gen.Frequency((4, Gen.Long[0, 5]), (1, Gen.Long[0, long.MaxValue]), (1, Gen.Const(long.MaxValue)));

    /// <summary>A job the parser accepts unless its id or prompt breaks a rule: mostly reaches the engine.</summary>
    private static readonly Gen<string> ValidJob = Gen.Select(
        Gen.Frequency((2, Gen.Int[0, 999_999].Select(i => $"\"job-{i}\"")), (2, JobBodyGen.JsonString), (1, JobBodyGen.LongId)),
        Gen.Frequency((2, Gen.Const("\"Once upon a time\"")), (2, JobBodyGen.JsonString.Where(s => s.Length > 2))),
        Gen.Int[1, 600],
        Gen.Frequency((3, Gen.Const(string.Empty)), (1, JobBodyGen.JsonNumber.Select(n => ",\"timeout_ms\":" + n))),
        (id, prompt, max, timeout) => $$"""{"id":{{id}},"prompt":{{prompt}},"max_tokens":{{max}}{{timeout}}}""");

    private static readonly Gen<byte[]> Body = Gen.Frequency(
        (6, JobBodyGen.AnyBody),
        (4, ValidJob.Select(Encoding.UTF8.GetBytes)),
        (1, Gen.Const(Array.Empty<byte>())),
        (1, Gen.Byte.Array[1, 512]));

    private static readonly Gen<Func<Exception>> Unexpected = Gen.OneOf<Func<Exception>>(
        () => new InvalidOperationException("boom"),
        () => new NullReferenceException(),
        () => new ArgumentOutOfRangeException("x"),
        () => new FormatException("bad"),
        () => new KeyNotFoundException(),
        () => new AggregateException(new IOException("disk")),
        () => new JsonException("json"),
        () => new OverflowException());

    /// <summary>A body limit this close to it marks one relative to the body: its length -2 .. +2 bytes, right at the limit.</summary>
    private const long RelativeLimit = long.MinValue / 2;

    internal sealed record Envelope(
        string? MessageId, string? CorrelationId, string? ContentType, string? ContentEncoding, long? BodyLimit,
        DateTimeOffset? PublishedAt, TimeSpan? Expiration, long DeliveryCount);

    internal sealed record Engine(EngineMode Mode, bool Synchronous, string Text, string FinishReason, int PromptTokens, int CompletionTokens,
        double Ms, long AdvanceMs, Func<Exception> Fault);

    internal sealed record Case(byte[] Body, Envelope Envelope, Engine Engine);

    private static readonly Gen<Envelope> EnvelopeGen = Gen.Select(
        Gen.Select(EnvText, EnvText, ContentType, ContentEncoding),
        Gen.Frequency((3, Gen.Const((long?)(1 << 20))), (1, Gen.Const((long?)null)), (1, Gen.Long[-2, 2].Select(d => (long?)(RelativeLimit + d)))),
        PublishedAt, Expiration, DeliveryCount,
        (s, limit, published, expiration, count) => new Envelope(s.Item1, s.Item2, s.Item3, s.Item4, limit, published, expiration, count));

    private static readonly Gen<Engine> EngineGen = Gen.Select(
        Gen.Frequency((6, Gen.Const(EngineMode.Complete)), (1, Gen.Const(EngineMode.PromptTooLong)), (1, Gen.Const(EngineMode.EngineError)), (2, Gen.Const(EngineMode.Unexpected))),
        Gen.Bool,
        Gen.Select(EnvText.Select(t => t ?? string.Empty), Gen.OneOf(FinishReasons.Stop, FinishReasons.Length, FinishReasons.StopSequence, FinishReasons.Timeout)),
        Gen.Select(Gen.Frequency((3, Gen.Int[0, 600]), (1, Gen.Int[0, int.MaxValue])), Gen.Frequency((3, Gen.Int[0, 600]), (1, Gen.Int[0, int.MaxValue]))),
        Gen.Frequency((3, Gen.Double[0, 10_000]), (1, Gen.Const(0.0)), (1, Gen.Double[0, 1e12])),
        Gen.Frequency((3, Gen.Const(0L)), (1, Gen.Long[0, 30L * 86_400_000])),
        Unexpected,
        (mode, sync, text, tokens, ms, advance, fault) => new Engine(mode, sync, text.Item1, text.Item2, tokens.Item1, tokens.Item2, ms, advance, fault));

    private static readonly Gen<Case> CaseGen = Gen.Select(Body, EnvelopeGen, EngineGen, (b, e, g) => new Case(b, e, g));

    private static string Print(Case c) =>
        $"body ({c.Body.Length} bytes): {Encoding.UTF8.GetString(c.Body, 0, Math.Min(c.Body.Length, 2000))}\n{c.Envelope}\n{c.Engine}";

    // ---- the property ----

    [Fact]
    public async Task AnyBodyAnyEnvelopeAnyEngineOutcome_ExactlyOneWellFormedPublishableResult()
    {
        var iterations = Iterations(100_000);
        long cases = 0, results = 0, exceptions = 0;
        var outcomes = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        var stopwatch = Stopwatch.StartNew();

        await CaseGen.SampleAsync(async c =>
        {
            Interlocked.Increment(ref cases);
            JobResult result;
            try
            {
                result = await RunCaseAsync(c);
                Interlocked.Increment(ref results);
            }
            catch (Exception)
            {
                Interlocked.Increment(ref exceptions);
                throw;
            }
            var outcome = result.Status == JobStatus.Completed ? JobStatus.Completed : result.Error!.Code;
            outcomes.AddOrUpdate(outcome, 1, (_, n) => n + 1);
        }, iter: iterations, print: Print);

        stopwatch.Stop();
        output.WriteLine($"cases {cases}, results {results}, exceptions {exceptions}, {stopwatch.Elapsed.TotalSeconds:F1} s");
        foreach (var (code, n) in outcomes.OrderByDescending(o => o.Value))
            output.WriteLine($"  {code,-26} {n,9} ({100.0 * n / cases:F2} %)");

        Assert.Equal(0, exceptions);
        Assert.Equal(cases, results);
        // The generators must reach every outcome that matters, not only the refusals.
        foreach (var code in new[] { JobStatus.Completed, ErrorCodes.InternalError, ErrorCodes.EngineError, ErrorCodes.PromptTooLong, ErrorCodes.InvalidField })
            Assert.True(outcomes.GetValueOrDefault(code) > iterations / 200, $"{code}: only {outcomes.GetValueOrDefault(code)} of {cases}");
    }

    /// <summary>One case, every assertion: returns the result for the tally.</summary>
    private static async Task<JobResult> RunCaseAsync(Case c)
    {
        var time = new FakeTimeProvider(Clock.Start);
        var engine = new FakeEngine { Answer = (_, _) => Answer(c.Engine, time) };
        var observer = new RecordingObserver();
        var pipeline = new JobPipeline(engine, new InferenceOptions(), Identity, observer, time, NullLogger<JobPipeline>.Instance);
        var e = c.Envelope;
        var input = new JobInput
        {
            Body = c.Body,
            ReceivedAt = time.GetUtcNow(),
            MessageId = e.MessageId,
            ContentType = e.ContentType,
            ContentEncoding = e.ContentEncoding,
            BodyLimit = e.BodyLimit is { } max ? new BodyLimit(max < 0 ? Math.Max(0, c.Body.Length + (max - RelativeLimit)) : max, "Worker:MaxBodyBytes") : null,
            PublishedAt = e.PublishedAt,
            Expiration = e.Expiration,
            DeliveryCount = e.DeliveryCount,
        };

        var result = await pipeline.RunAsync(input, CancellationToken.None);

        // Exactly one result, heard of once; the engine asked at most once.
        Assert.NotNull(result);
        Assert.Equal(1, observer.Calls);
        Assert.True(engine.Requests.Count <= 1, $"engine asked {engine.Requests.Count} times");
        Assert.False(string.IsNullOrEmpty(result.Id), "empty result id");
        Assert.True(AmqpShortString.Fits(result.Id), $"result id of {AmqpShortString.ByteCount(result.Id)} bytes or with a lone surrogate");
        if (result.Status == JobStatus.Completed)
        {
            Assert.Equal(EngineMode.Complete, c.Engine.Mode);
            Assert.Null(result.Error);
            Assert.Single(observer.Completed);
        }
        else
        {
            Assert.Equal(JobStatus.Failed, result.Status);
            var error = Assert.IsType<JobError>(result.Error);
            Assert.False(string.IsNullOrWhiteSpace(error.Message));
            var expected = error.Code switch
            {
                ErrorCodes.InternalError => c.Engine.Mode == EngineMode.Unexpected,
                ErrorCodes.PromptTooLong => c.Engine.Mode == EngineMode.PromptTooLong,
                ErrorCodes.EngineError => c.Engine.Mode == EngineMode.EngineError,
                _ => BeforeEngine.Contains(error.Code),
            };
            Assert.True(expected, $"{error.Code} ({error.Message}) with engine {c.Engine.Mode}");
            Assert.Equal(BeforeEngine.Contains(error.Code) ? 0 : 1, engine.Requests.Count);
            Assert.Equal(error.Code, Assert.Single(observer.Failed));
            // Refused on its envelope, before the body is read: answered under the message id when it can be echoed.
            if (error.Code is ErrorCodes.UnsupportedContentType or ErrorCodes.BodyTooLarge && AmqpShortString.Fits(e.MessageId) && e.MessageId!.Length > 0)
                Assert.Equal(e.MessageId, result.Id);
        }

        // Serialized: never throws, parses back with the id and the status.
        var json = JobSerializer.Serialize(result);
        using (var doc = JsonDocument.Parse(json))
        {
            Assert.Equal(result.Id, doc.RootElement.GetProperty("id").GetString());
            Assert.Equal(result.Status, doc.RootElement.GetProperty("status").GetString());
            if (result.Error is { } err)
                Assert.Equal(err.Code, doc.RootElement.GetProperty("error").GetProperty("code").GetString());
        }

        // Published: the properties the worker sets; every shortstr within AMQP's 255 bytes.
        var properties = new BasicProperties
        {
            MessageId = result.Id,
            CorrelationId = Echoable(e.CorrelationId),
            ContentType = "application/json",
            Type = "queueworker.result.v1",
            DeliveryMode = DeliveryModes.Persistent,
            Timestamp = new AmqpTimestamp(time.GetUtcNow().ToUnixTimeSeconds()),
        };
        foreach (var shortstr in new[] { properties.MessageId, properties.CorrelationId, properties.ContentType, properties.Type })
        {
            if (shortstr is null) continue;
            Assert.True(AmqpShortString.Fits(shortstr), $"shortstr {shortstr} does not fit");
            Assert.InRange(Encoding.UTF8.GetByteCount(shortstr), 0, 255);
        }
        // And RabbitMQ.Client's own encoder writes them (it throws on a shortstr over 255 bytes).
        Assert.True(Encode(properties) > 0);
        return result;
    }

    /// <summary>The content header's properties as the client writes them into a frame; its byte count.</summary>
    private static int Encode(BasicProperties properties)
    {
        IAmqpWriteable writeable = properties;
        var buffer = new byte[writeable.GetRequiredBufferSize()];
        return writeable.WriteTo(buffer);
    }

    [Fact]
    public void ClientEncoder_ShortstrOver255Bytes_Throws()
    {
        // The encoder check above means something: the client refuses what AmqpShortString.Fits refuses.
        Assert.True(Encode(new BasicProperties { MessageId = new string('a', 255) }) > 255);
        Assert.ThrowsAny<Exception>(() => Encode(new BasicProperties { MessageId = new string('a', 256) }));
        Assert.ThrowsAny<Exception>(() => Encode(new BasicProperties { CorrelationId = string.Concat(Enumerable.Repeat("€", 86)) }));
        Assert.False(AmqpShortString.Fits(string.Concat(Enumerable.Repeat("€", 86))));
    }

    /// <summary>The rule <c>DeliveryMapper</c> applies to <c>correlation_id</c>: empty or not a publishable shortstr = absent.</summary>
    private static string? Echoable(string? value) => string.IsNullOrEmpty(value) || !AmqpShortString.Fits(value) ? null : value;

    private static Task<GenerationResult> Answer(Engine g, FakeTimeProvider time)
    {
        if (g.AdvanceMs > 0) time.Advance(TimeSpan.FromMilliseconds(g.AdvanceMs));
        Exception? fault = g.Mode switch
        {
            EngineMode.PromptTooLong => new InferenceException(ErrorCodes.PromptTooLong, "The prompt has too many tokens."),
            EngineMode.EngineError => new InferenceException(ErrorCodes.EngineError, "llama_decode returned -1."),
            EngineMode.Unexpected => g.Fault(),
            _ => null,
        };
        if (fault is not null)
            return g.Synchronous ? throw fault : Task.FromException<GenerationResult>(fault);
        var generated = new GenerationResult
        {
            Text = g.Text,
            FinishReason = g.FinishReason,
            PromptTokens = g.PromptTokens,
            CompletionTokens = g.CompletionTokens,
            CachedTokens = g.PromptTokens / 2,
            WaitMs = g.Ms,
            PromptMs = g.Ms / 3,
            FirstTokenMs = g.Ms / 2,
            GenerationMs = g.Ms,
        };
        return g.Synchronous ? Task.FromResult(generated) : Task.Run(() => generated);
    }
}
