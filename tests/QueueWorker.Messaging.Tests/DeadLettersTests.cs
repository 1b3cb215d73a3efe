using System.Text;
using QueueWorker.Contracts;
using RabbitMQ.Client;

namespace QueueWorker.Messaging.Tests;

[Trait("Category", "Unit")]
public sealed class DeadLettersTests
{
    private static readonly RabbitMqOptions Options = new() { JobsQueue = "llm.jobs", DeliveryLimit = 2 };

    private static Dictionary<string, object?> Death(string reason) => new()
    {
        ["count"] = 1L,
        ["reason"] = Encoding.UTF8.GetBytes(reason),
        ["queue"] = Encoding.UTF8.GetBytes("llm.jobs"),
    };

    [Theory]
    [InlineData("delivery_limit", ErrorCodes.PoisonJob, null)]
    [InlineData("expired", ErrorCodes.DeadlineExceeded, "expiration")]
    [InlineData("rejected", ErrorCodes.DeadLettered, null)]
    [InlineData("maxlen", ErrorCodes.DeadLettered, null)]
    [InlineData("something-new", ErrorCodes.DeadLettered, null)]
    public void ErrorFor_EachReason_ItsCodeAndTheParkedQueue(string reason, string code, string? field)
    {
        var error = DeadLetters.ErrorFor(reason, Options, "60000");
        Assert.Equal(code, error.Code);
        Assert.Equal(field, error.Field);
        Assert.Contains("llm.jobs.parked", error.Message, StringComparison.Ordinal);
        if (code == ErrorCodes.DeadLettered)
            Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReadReason_NewestDeathWinsOverFirstDeathReason()
    {
        // Replayed after expiring, then killed workers: x-first-death-reason still says expired.
        var headers = new Dictionary<string, object?>
        {
            ["x-death"] = new List<object?> { Death("delivery_limit"), Death("expired") },
            ["x-first-death-reason"] = Encoding.UTF8.GetBytes("expired"),
        };
        Assert.Equal("delivery_limit", DeadLetters.ReadReason(headers));
    }

    [Fact]
    public void ReadOriginalExpiration_FromTheNewestDeath()
    {
        var death = Death("expired");
        death["original-expiration"] = Encoding.UTF8.GetBytes("1500");
        var headers = new Dictionary<string, object?> { ["x-death"] = new List<object?> { death } };
        Assert.Equal("1500", DeadLetters.ReadOriginalExpiration(headers));
        Assert.Null(DeadLetters.ReadOriginalExpiration(new Dictionary<string, object?> { ["x-death"] = new List<object?> { Death("expired") } }));
        Assert.Null(DeadLetters.ReadOriginalExpiration(null));
    }

    [Fact]
    public void ReadReason_OnlyFirstDeathReason_Read()
    {
        Assert.Equal("expired", DeadLetters.ReadReason(new Dictionary<string, object?> { ["x-first-death-reason"] = "expired" }));
    }

    [Theory]
    [MemberData(nameof(OddHeaders))]
    public void ReadReason_OddHeaders_UnknownNeverThrows(Dictionary<string, object?>? headers)
    {
        Assert.Equal(DeadLetters.Unknown, DeadLetters.ReadReason(headers));
    }

    public static TheoryData<Dictionary<string, object?>?> OddHeaders() => new()
    {
        null,
        new Dictionary<string, object?>(),
        new Dictionary<string, object?> { ["x-death"] = "not a list" },
        new Dictionary<string, object?> { ["x-death"] = new List<object?>() },
        new Dictionary<string, object?> { ["x-death"] = new List<object?> { 42 } },
        new Dictionary<string, object?> { ["x-death"] = new List<object?> { new Dictionary<string, object?> { ["reason"] = null } } },
        new Dictionary<string, object?> { ["x-first-death-reason"] = Array.Empty<byte>() },
    };

    [Fact]
    public void Answer_ValidBody_BodyIdAndMetadata()
    {
        var job = Job("""{"id":"job-7","prompt":"x","metadata":{"doc":"d-1"}}""", messageId: "msg-7");
        var result = DeadLetters.Answer(job, DeadLetters.Poison(Options));
        Assert.Equal("job-7", result.Id);
        Assert.Equal(JobStatus.Failed, result.Status);
        Assert.Equal(ErrorCodes.PoisonJob, result.Error!.Code);
        Assert.Equal("d-1", result.Metadata!.Value.GetProperty("doc").GetString());
    }

    [Fact]
    public void Answer_InvalidBodyWithReadableId_ThatId()
    {
        var result = DeadLetters.Answer(Job("""{"id":"job-8","prompt":5}""", "msg-8"), DeadLetters.Poison(Options));
        Assert.Equal("job-8", result.Id);
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("""{"id":"\ud800","prompt":"x"}""")]
    [InlineData("")]
    public void Answer_NoUsableBodyId_MessageId(string body)
    {
        Assert.Equal("msg-9", DeadLetters.Answer(Job(body, "msg-9"), DeadLetters.Poison(Options)).Id);
    }

    [Fact]
    public void Answer_NeitherId_NewEchoableId()
    {
        var result = DeadLetters.Answer(Job("[]", null), DeadLetters.Poison(Options));
        Assert.StartsWith("job-", result.Id, StringComparison.Ordinal);
        Assert.True(AmqpShortString.Fits(result.Id));
    }

    [Fact]
    public void ParkedProperties_KeepsTheJobDropsCountsUserIdAndExpiration()
    {
        var original = new BasicProperties
        {
            MessageId = "m",
            CorrelationId = "c",
            ReplyTo = "amq.gen-x",
            ContentType = "application/json",
            UserId = "someone",
            Expiration = "60000",
            Timestamp = new AmqpTimestamp(1_700_000_000),
            Priority = 3,
            Headers = new Dictionary<string, object?>
            {
                ["x-delivery-count"] = 2L,
                [DeliveryMapper.CarriedDeliveriesHeader] = 1L,
                ["timestamp_in_ms"] = 1_700_000_000_123L,
                ["x-death"] = new List<object?>(),
            },
        };
        var parked = DeadLetters.ParkedProperties(original, DeadLetters.DeliveryLimit);
        Assert.Equal(("m", "c", "amq.gen-x", "application/json"), (parked.MessageId, parked.CorrelationId, parked.ReplyTo, parked.ContentType));
        Assert.Null(parked.UserId);
        Assert.Null(parked.Expiration);
        Assert.Equal(1_700_000_000, parked.Timestamp.UnixTime);
        Assert.Equal(3, parked.Priority);
        Assert.Equal(DeliveryModes.Persistent, parked.DeliveryMode);
        Assert.False(parked.Headers!.ContainsKey("x-delivery-count"));
        Assert.False(parked.Headers.ContainsKey(DeliveryMapper.CarriedDeliveriesHeader));
        Assert.Equal(1_700_000_000_123L, parked.Headers["timestamp_in_ms"]);
        Assert.True(parked.Headers.ContainsKey("x-death"));
        Assert.Equal("delivery_limit", parked.Headers[DeadLetters.ParkedReasonHeader]);
        // The original is untouched.
        Assert.True(original.Headers.ContainsKey("x-delivery-count"));
    }

    [Fact]
    public void RequeueProperties_CarriesPriorDeliveriesInPlaceOfTheBrokersCount()
    {
        var original = new BasicProperties { MessageId = "m", Expiration = "5000", Headers = new Dictionary<string, object?> { ["x-delivery-count"] = 1L, [DeliveryMapper.CarriedDeliveriesHeader] = 1L } };
        var copy = DeadLetters.RequeueProperties(original, 2);
        Assert.Equal(2L, copy.Headers![DeliveryMapper.CarriedDeliveriesHeader]);
        Assert.False(copy.Headers.ContainsKey("x-delivery-count"));
        Assert.Equal("5000", copy.Expiration);
        Assert.False(copy.IsDeliveryModePresent());

        var readBack = DeliveryMapper.ToIncomingJob(copy, Array.Empty<byte>(), redelivered: false, DateTimeOffset.UnixEpoch);
        Assert.Equal(2, readBack.PriorDeliveries);
    }

    [Theory]
    [InlineData(0, false, 0, 0)]
    [InlineData(0, true, 0, 1)] // a classic queue: redelivered, no count
    [InlineData(2, true, 0, 2)]
    [InlineData(1, true, 2, 3)]
    [InlineData(0, false, 3, 3)]
    [InlineData(long.MaxValue, true, 5, long.MaxValue)]
    public void PriorDeliveries_BrokerCountRedeliveredAndCarried(long count, bool redelivered, long carried, long expected)
    {
        Assert.Equal(expected, DeliveryMapper.PriorDeliveries(count, redelivered, carried));
    }

    [Theory]
    [InlineData(-3)]
    [InlineData("x")]
    [InlineData(1.5)]
    public void ReadCarriedDeliveries_NotANonNegativeInteger_Zero(object value)
    {
        Assert.Equal(0, DeliveryMapper.ReadCarriedDeliveries(new Dictionary<string, object?> { [DeliveryMapper.CarriedDeliveriesHeader] = value }));
    }

    private static IncomingJob Job(string body, string? messageId) => new()
    {
        Body = Encoding.UTF8.GetBytes(body),
        MessageId = messageId,
        ReceivedAt = DateTimeOffset.UnixEpoch,
    };
}
