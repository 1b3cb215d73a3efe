using System.Globalization;
using RabbitMQ.Client;

namespace QueueWorker.Messaging;

/// <summary>Builds an <see cref="IncomingJob"/> from an AMQP delivery.</summary>
public static class DeliveryMapper
{
    /// <summary>Set by quorum queues from the second delivery on (absent on the first).</summary>
    public const string DeliveryCountHeader = "x-delivery-count";

    // DateTimeOffset's range in unix seconds: a garbage timestamp must not throw.
    private const long MinUnixSeconds = -62_135_596_800;
    private const long MaxUnixSeconds = 253_402_300_799;

    /// <summary>
    /// Maps the properties and copies the body: the client reuses the delivery's buffer once the consumer callback
    /// returns. Empty strings count as absent (an empty <c>reply_to</c> must not become a routing key).
    /// </summary>
    public static IncomingJob ToIncomingJob(IReadOnlyBasicProperties properties, ReadOnlyMemory<byte> body, bool redelivered, DateTimeOffset receivedAt) => new()
    {
        Body = body.ToArray(),
        MessageId = NullIfEmpty(properties.MessageId),
        CorrelationId = NullIfEmpty(properties.CorrelationId),
        ReplyTo = NullIfEmpty(properties.ReplyTo),
        ContentType = NullIfEmpty(properties.ContentType),
        ContentEncoding = NullIfEmpty(properties.ContentEncoding),
        Timestamp = ReadTimestamp(properties),
        Expiration = ReadExpiration(properties.Expiration),
        Redelivered = redelivered,
        DeliveryCount = ReadDeliveryCount(properties.Headers),
        ReceivedAt = receivedAt,
    };

    /// <summary>
    /// Publish time. The AMQP timestamp has one-second resolution, too coarse for <c>queued_ms</c>, so a
    /// <c>timestamp_in_ms</c> header (the name RabbitMQ's message-timestamp plugin uses; qw sets it) wins
    /// when present. AMQP timestamps are unix seconds; 0 (or none) means the producer set none.
    /// </summary>
    public static DateTimeOffset? ReadTimestamp(IReadOnlyBasicProperties properties)
    {
        if (properties.Headers is { } headers && headers.TryGetValue(TimestampInMsHeader, out var raw)
            && raw is long or int && Convert.ToInt64(raw, CultureInfo.InvariantCulture) is var ms
            && ms > MinUnixSeconds * 1000L && ms < MaxUnixSeconds * 1000L)
            return DateTimeOffset.FromUnixTimeMilliseconds(ms);
        if (!properties.IsTimestampPresent())
            return null;
        var seconds = properties.Timestamp.UnixTime;
        return seconds is 0 or < MinUnixSeconds or > MaxUnixSeconds ? null : DateTimeOffset.FromUnixTimeSeconds(seconds);
    }

    public const string TimestampInMsHeader = "timestamp_in_ms";

    /// <summary>AMQP <c>expiration</c> is a string of milliseconds.</summary>
    public static TimeSpan? ReadExpiration(string? expiration) =>
        long.TryParse(expiration, NumberStyles.None, CultureInfo.InvariantCulture, out var ms) && ms <= (long)TimeSpan.MaxValue.TotalMilliseconds
            ? TimeSpan.FromMilliseconds(ms)
            : null;

    /// <summary>The header's integer type depends on who wrote it (the broker writes a long); absent = 0.</summary>
    public static long ReadDeliveryCount(IDictionary<string, object?>? headers)
    {
        if (headers is null || !headers.TryGetValue(DeliveryCountHeader, out var value))
            return 0;
        return value switch
        {
            long l => l,
            int i => i,
            short s => s,
            byte b => b,
            sbyte sb => sb,
            uint ui => ui,
            ushort us => us,
            ulong ul => ul > long.MaxValue ? long.MaxValue : (long)ul,
            byte[] bytes when long.TryParse(bytes, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) => parsed,
            string text when long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) => parsed,
            _ => 0,
        };
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
