using RabbitMQ.Client;

namespace QueueWorker.Messaging.Tests;

[Trait("Category", "Unit")]
public sealed class DeliveryMapperTests
{
    private static readonly DateTimeOffset Now = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void ToIncomingJob_AllProperties_MapsEachOne()
    {
        var properties = new BasicProperties
        {
            MessageId = "m-1",
            CorrelationId = "c-1",
            ReplyTo = "replies",
            ContentType = "application/json",
            ContentEncoding = "utf-8",
            Timestamp = new AmqpTimestamp(1_700_000_000),
            Expiration = "60000",
            Headers = new Dictionary<string, object?> { ["x-delivery-count"] = 2L },
        };
        var buffer = "{\"prompt\":\"hi\"}"u8.ToArray();

        var job = DeliveryMapper.ToIncomingJob(properties, buffer, redelivered: true, Now);

        Assert.Equal("m-1", job.MessageId);
        Assert.Equal("c-1", job.CorrelationId);
        Assert.Equal("replies", job.ReplyTo);
        Assert.Equal("application/json", job.ContentType);
        Assert.Equal("utf-8", job.ContentEncoding);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1_700_000_000), job.Timestamp);
        Assert.Equal(TimeSpan.FromSeconds(60), job.Expiration);
        Assert.True(job.Redelivered);
        Assert.Equal(2, job.DeliveryCount);
        Assert.Equal(Now, job.ReceivedAt);
        Assert.Equal(buffer, job.Body.ToArray());
    }

    [Fact]
    public void ToIncomingJob_BufferReusedAfterwards_BodyIsACopy()
    {
        var buffer = "abc"u8.ToArray();

        var job = DeliveryMapper.ToIncomingJob(new BasicProperties(), buffer, false, Now);
        buffer[0] = (byte)'X';

        Assert.Equal("abc"u8.ToArray(), job.Body.ToArray());
    }

    [Fact]
    public void ToIncomingJob_NoProperties_AllAbsent()
    {
        var job = DeliveryMapper.ToIncomingJob(new BasicProperties { ReplyTo = "", MessageId = "" }, ReadOnlyMemory<byte>.Empty, false, Now);

        Assert.Null(job.MessageId);
        Assert.Null(job.ReplyTo);
        Assert.Null(job.Timestamp);
        Assert.Null(job.Expiration);
        Assert.Equal(0, job.DeliveryCount);
        Assert.False(job.Redelivered);
    }

    [Fact]
    public void ReadTimestamp_Zero_IsAbsent()
    {
        Assert.Null(DeliveryMapper.ReadTimestamp(new BasicProperties { Timestamp = new AmqpTimestamp(0) }));
    }

    [Fact]
    public void ReadTimestamp_MillisecondHeader_WinsOverSecondsTimestamp()
    {
        var props = new BasicProperties
        {
            Timestamp = new AmqpTimestamp(1_700_000_000),
            Headers = new Dictionary<string, object?> { [DeliveryMapper.TimestampInMsHeader] = 1_700_000_000_123L },
        };
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_123L), DeliveryMapper.ReadTimestamp(props));
    }

    [Fact]
    public void ReadTimestamp_MillisecondHeaderNotANumber_FallsBackToTimestamp()
    {
        var props = new BasicProperties
        {
            Timestamp = new AmqpTimestamp(1_700_000_000),
            Headers = new Dictionary<string, object?> { [DeliveryMapper.TimestampInMsHeader] = "soon" },
        };
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1_700_000_000), DeliveryMapper.ReadTimestamp(props));
    }

    [Fact]
    public void ReadTimestamp_OutOfRange_IsAbsentNotAnException()
    {
        Assert.Null(DeliveryMapper.ReadTimestamp(new BasicProperties { Timestamp = new AmqpTimestamp(long.MaxValue) }));
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("", null)]
    [InlineData("abc", null)]
    [InlineData("-5", null)]
    [InlineData("0", 0L)]
    [InlineData("1500", 1500L)]
    public void ReadExpiration_MillisecondString_ParsesOrAbsent(string? value, long? expectedMs)
    {
        Assert.Equal(expectedMs is { } ms ? TimeSpan.FromMilliseconds(ms) : null, DeliveryMapper.ReadExpiration(value));
    }

    public static TheoryData<object?, long> DeliveryCounts => new()
    {
        { 3L, 3 },
        { 3, 3 },
        { (short)3, 3 },
        { (byte)3, 3 },
        { 3u, 3 },
        { "3"u8.ToArray(), 3 },
        { "garbage", 0 },
        { null, 0 },
    };

    [Theory]
    [MemberData(nameof(DeliveryCounts))]
    public void ReadDeliveryCount_AnyIntegerType_Reads(object? value, long expected)
    {
        Assert.Equal(expected, DeliveryMapper.ReadDeliveryCount(new Dictionary<string, object?> { ["x-delivery-count"] = value }));
    }

    [Fact]
    public void ReadDeliveryCount_HeaderAbsent_IsZero()
    {
        Assert.Equal(0, DeliveryMapper.ReadDeliveryCount(new Dictionary<string, object?>()));
        Assert.Equal(0, DeliveryMapper.ReadDeliveryCount(null));
    }
}
