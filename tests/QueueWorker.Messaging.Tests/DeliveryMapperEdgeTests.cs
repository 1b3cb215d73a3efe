using System.Globalization;
using System.Text;
using CsCheck;
using QueueWorker.Contracts;
using RabbitMQ.Client;

namespace QueueWorker.Messaging.Tests;

/// <summary>
/// Whatever a producer's client puts in the properties, mapping never throws, and nothing it maps can make the result
/// unpublishable or the deadline arithmetic overflow. Property iterations: QW_FUZZ_ITERATIONS (default 10 000); for a
/// long run: <c>QW_FUZZ_ITERATIONS=1000000 dotnet test tests/QueueWorker.Messaging.Tests --filter "FullyQualifiedName~DeliveryMapperEdgeTests"</c>.
/// </summary>
[Trait("Category", "Unit")]
public sealed class DeliveryMapperEdgeTests
{
    private static readonly DateTimeOffset Now = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    private static readonly long Iter =
        long.TryParse(Environment.GetEnvironmentVariable("QW_FUZZ_ITERATIONS"), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : 10_000;

    [Theory]
    [InlineData(253_402_300_799L)] // 9999-12-31T23:59:59
    [InlineData(253_402_300_800L)]
    [InlineData(long.MaxValue)]
    [InlineData(long.MinValue)]
    [InlineData(-1L)]
    [InlineData(-62_135_596_800L)] // 0001-01-01
    [InlineData(0L)]
    public void Timestamp_OutOfRangeOrFarFutureOrBefore1970_Unset(long seconds)
    {
        var job = Map(new BasicProperties { Timestamp = new AmqpTimestamp(seconds) });
        Assert.Null(job.Timestamp);
    }

    [Fact]
    public void Timestamp_ClockSkewWithinADay_Kept()
    {
        var ahead = Now.AddHours(23);
        Assert.Equal(ahead, Map(new BasicProperties { Timestamp = new AmqpTimestamp(ahead.ToUnixTimeSeconds()) }).Timestamp);
        var old = Now.AddYears(-3);
        Assert.Equal(old, Map(new BasicProperties { Timestamp = new AmqpTimestamp(old.ToUnixTimeSeconds()) }).Timestamp);
    }

    public static TheoryData<object?, long?> MillisecondHeaders => new()
    {
        { 1_700_000_000_123L, 1_700_000_000_123L },
        { 1_700_000_000, 1_700_000_000L },
        { 1_700_000_000_123UL, 1_700_000_000_123L },
        { "1700000000123", 1_700_000_000_123L },
        { "1700000000123"u8.ToArray(), 1_700_000_000_123L },
        { -1L, null },
        { 0L, null },
        { long.MaxValue, null },
        { long.MinValue, null },
        { ulong.MaxValue, null },
        { 253_402_300_799_999L, null },
        { "99999999999999999999999", null },
        { "-5", null },
        { " 1700000000123", null },
        { 1.7e12, null },
        { 1.7e12m, null },
        { true, null },
        { new byte[10_000], null },
        { new Dictionary<string, object?>(), null },
        { null, null },
    };

    [Theory]
    [MemberData(nameof(MillisecondHeaders))]
    public void TimestampInMs_AnyTypeAndSize_ReadWhenAnIntegerElseIgnored(object? value, long? expectedMs)
    {
        var job = Map(new BasicProperties { Headers = new Dictionary<string, object?> { [DeliveryMapper.TimestampInMsHeader] = value } });
        Assert.Equal(expectedMs is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null, job.Timestamp);
    }

    [Theory]
    [InlineData("0", 0L)]
    [InlineData("4294967295", 4_294_967_295L)]
    [InlineData("4294967296", null)]
    [InlineData("922337203685477", null)]
    [InlineData("99999999999999999999999999", null)]
    [InlineData("-1", null)]
    [InlineData("+5", null)]
    [InlineData(" 5", null)]
    [InlineData("5 ", null)]
    [InlineData("\t", null)]
    [InlineData("1e3", null)]
    [InlineData("1.5", null)]
    [InlineData("٣", null)] // a non-ASCII digit
    public void Expiration_EdgeValues_ParsedOrIgnored(string value, long? expectedMs)
    {
        Assert.Equal(expectedMs is { } ms ? TimeSpan.FromMilliseconds(ms) : null, DeliveryMapper.ReadExpiration(value));
    }

    public static TheoryData<object?, long> OddDeliveryCounts => new()
    {
        { -3L, 0 },
        { sbyte.MinValue, 0 },
        { ulong.MaxValue, long.MaxValue },
        { "-1", 0 },
        { "99999999999999999999", 0 },
        { 2.0, 0 },
        { 2.0m, 0 },
        { true, 0 },
        { new List<object?> { 1L }, 0 },
        { new AmqpTimestamp(5), 0 },
    };

    [Theory]
    [MemberData(nameof(OddDeliveryCounts))]
    public void DeliveryCount_OddTypes_NonNegativeNeverThrows(object? value, long expected) =>
        Assert.Equal(expected, DeliveryMapper.ReadDeliveryCount(new Dictionary<string, object?> { [DeliveryMapper.DeliveryCountHeader] = value }));

    [Fact]
    public void ShortStrings_ThatCannotBeEchoed_Absent()
    {
        // What RabbitMQ.Client gives for 255 bytes of invalid UTF-8: 255 replacement characters, 765 bytes.
        var expanded = new string('\uFFFD', 255);
        var job = Map(new BasicProperties { MessageId = expanded, CorrelationId = expanded, ReplyTo = expanded });
        Assert.Null(job.MessageId);
        Assert.Null(job.CorrelationId);
        Assert.Null(job.ReplyTo);

        var lone = Map(new BasicProperties { MessageId = "m\ud800", CorrelationId = "c\udc00" });
        Assert.Null(lone.MessageId);
        Assert.Null(lone.CorrelationId);
    }

    [Fact]
    public void ShortStrings_UpTo255Bytes_Kept()
    {
        var fits = new string('€', 85); // 255 bytes
        var job = Map(new BasicProperties { MessageId = fits, CorrelationId = "c-😀", ReplyTo = "amq.rabbitmq.reply-to.g1h2" });
        Assert.Equal(fits, job.MessageId);
        Assert.Equal("c-😀", job.CorrelationId);
        Assert.Equal("amq.rabbitmq.reply-to.g1h2", job.ReplyTo);
    }

    // ---- property ----

    private static readonly Gen<string?> ShortString = Gen.Frequency<string?>(
        (1, Gen.Const((string?)null)),
        (1, Gen.Const<string?>("")),
        (3, Gen.String.Select(s => (string?)s)),
        (2, Gen.Char.Array[0, 300].Select(c => (string?)new string(c))),
        (2, Gen.Select(Gen.Int[0, 300], Gen.OneOf("a", "é", "€", "😀", "\uFFFD", "\ud800")).Select((count, c) => (string?)string.Concat(Enumerable.Repeat(c, count)))));

    private static readonly Gen<object?> HeaderValue = Gen.Frequency<object?>(
        (3, Gen.Long.Select(v => (object?)v)),
        (1, Gen.Int.Select(v => (object?)v)),
        (1, Gen.Short.Select(v => (object?)v)),
        (1, Gen.Byte.Select(v => (object?)v)),
        (1, Gen.SByte.Select(v => (object?)v)),
        (1, Gen.UInt.Select(v => (object?)v)),
        (1, Gen.UShort.Select(v => (object?)v)),
        (1, Gen.ULong.Select(v => (object?)v)),
        (1, Gen.Double.Select(v => (object?)v)),
        (1, Gen.Float.Select(v => (object?)v)),
        (1, Gen.Decimal.Select(v => (object?)v)),
        (1, Gen.Bool.Select(v => (object?)v)),
        (2, Gen.String.Select(v => (object?)v)),
        (2, Gen.Long.Select(v => (object?)v.ToString(CultureInfo.InvariantCulture))),
        (2, Gen.Long.Select(v => (object?)Encoding.UTF8.GetBytes(v.ToString(CultureInfo.InvariantCulture)))),
        (1, Gen.Byte.Array[0, 64].Select(v => (object?)v)),
        (1, Gen.Long.Select(v => (object?)new AmqpTimestamp(v))),
        (1, Gen.Const((object?)null)),
        (1, Gen.Const<object?>(new List<object?> { 1L, "x" })),
        (1, Gen.Const<object?>(new Dictionary<string, object?> { ["a"] = 1L })));

    private static readonly Gen<string?> Expiration = Gen.Frequency<string?>(
        (1, Gen.Const((string?)null)),
        (2, Gen.Long.Select(v => (string?)v.ToString(CultureInfo.InvariantCulture))),
        (2, Gen.Long[0, 10_000_000_000L].Select(v => (string?)v.ToString(CultureInfo.InvariantCulture))),
        (1, Gen.OneOf<string?>("0", "-1", "-0", " 5", "5 ", "\t", "", "1e3", "abc", "4294967295", "4294967296", "922337203685477", "99999999999999999999999")),
        (1, ShortString));

    private static readonly Gen<long> TimestampSeconds = Gen.Frequency(
        (3, Gen.Long),
        (2, Gen.Long[-62_135_596_800L, 253_402_300_799L]),
        (1, Gen.OneOf(0L, -1L, 1L, long.MinValue, long.MaxValue, 253_402_300_799L, 253_402_300_800L, -62_135_596_800L, -62_135_596_801L)));

    [Fact]
    public void AnyProperties_MappingNeverThrows_EchoedValuesPublishable_DeadlineArithmeticInRange()
    {
        var gen = Gen.Select(
            Gen.Select(ShortString, ShortString, ShortString, ShortString, ShortString),
            Gen.Select(Gen.Bool, TimestampSeconds, Expiration),
            Gen.Select(Gen.Bool, HeaderValue, Gen.Bool, HeaderValue),
            Gen.Long[Now.AddYears(-30).ToUnixTimeMilliseconds(), Now.AddYears(50).ToUnixTimeMilliseconds()]);
        gen.Sample((strings, time, headers, receivedMs) =>
        {
            var (messageId, correlationId, replyTo, contentType, contentEncoding) = strings;
            var (hasTimestamp, seconds, expiration) = time;
            var (hasMs, ms, hasCount, count) = headers;
            var properties = new BasicProperties
            {
                MessageId = messageId,
                CorrelationId = correlationId,
                ReplyTo = replyTo,
                ContentType = contentType,
                ContentEncoding = contentEncoding,
                Expiration = expiration,
                Headers = new Dictionary<string, object?>(),
            };
            if (hasTimestamp) properties.Timestamp = new AmqpTimestamp(seconds);
            if (hasMs) properties.Headers[DeliveryMapper.TimestampInMsHeader] = ms;
            if (hasCount) properties.Headers[DeliveryMapper.DeliveryCountHeader] = count;
            var receivedAt = DateTimeOffset.FromUnixTimeMilliseconds(receivedMs);

            var job = DeliveryMapper.ToIncomingJob(properties, "{}"u8.ToArray(), redelivered: false, receivedAt);

            foreach (var echoed in new[] { job.MessageId, job.CorrelationId, job.ReplyTo })
                Assert.True(echoed is null || (echoed.Length > 0 && AmqpShortString.Fits(echoed)), $"unpublishable: {echoed}");
            Assert.True(job.DeliveryCount >= 0);
            if (job.Timestamp is { } published)
                Assert.InRange(published, DateTimeOffset.UnixEpoch, receivedAt + DeliveryMapper.MaxClockSkew);
            if (job.Expiration is { } ttl)
                Assert.InRange(ttl, TimeSpan.Zero, TimeSpan.FromMilliseconds(DeliveryMapper.MaxExpirationMs));

            // The deadline arithmetic the job pipeline does (timeout_ms up to 7 days, expiration, MaxJobSeconds) must not overflow.
            var origin = job.Timestamp ?? job.ReceivedAt;
            _ = origin.AddMilliseconds(7 * 24 * 3600 * 1000.0).Add(job.Expiration ?? TimeSpan.Zero);
            _ = job.ReceivedAt.AddSeconds(24 * 3600);

            // The result for it: the fallback id (message_id or a generated one) serializes and fits.
            var id = job.MessageId ?? "job-" + Guid.NewGuid().ToString("N");
            var result = JobResult.Failed(id, new JobError(ErrorCodes.UnsupportedContentType, $"content_type must be application/json, got \"{job.ContentType}\".", "content_type"));
            Assert.NotEmpty(JobSerializer.Serialize(result));
        }, iter: Iter, threads: 1);
    }

    private static IncomingJob Map(BasicProperties properties) => DeliveryMapper.ToIncomingJob(properties, ReadOnlyMemory<byte>.Empty, false, Now);
}
