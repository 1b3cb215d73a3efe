using System.Globalization;
using QueueWorker.Contracts;
using RabbitMQ.Client;

namespace QueueWorker.Messaging;

/// <summary>
/// Builds an <see cref="IncomingJob"/> from an AMQP delivery. Never throws: every property is set by some
/// producer's client, so a value this worker cannot use is mapped to "absent", as documented on each reader.
/// </summary>
public static class DeliveryMapper
{
    /// <summary>Set by quorum queues from the second delivery on (absent on the first).</summary>
    public const string DeliveryCountHeader = "x-delivery-count";

    public const string TimestampInMsHeader = "timestamp_in_ms";

    /// <summary>
    /// Deliveries a job had before the worker put it back at the end of the jobs queue as a new message (whose broker
    /// count starts again at 0): see <see cref="SuspectIsolation"/>. Added to the broker's count.
    /// </summary>
    public const string CarriedDeliveriesHeader = "x-qw-deliveries";

    // DateTimeOffset's range in unix seconds: a garbage timestamp must not throw.
    private const long MinUnixSeconds = -62_135_596_800;
    private const long MaxUnixSeconds = 253_402_300_799;

    /// <summary>
    /// How far past its receipt a publish time may lie and still count as clock skew. Anything later (year 9999, …)
    /// is garbage: treated as unset, so deadlines count from receipt and their date arithmetic stays in range.
    /// </summary>
    public static readonly TimeSpan MaxClockSkew = TimeSpan.FromDays(1);

    /// <summary>
    /// RabbitMQ's largest per-message TTL (its timer limit, 2^32 − 1 ms, about 49.7 days); the broker refuses a
    /// larger <c>expiration</c> at publish, so a larger one did not come through a RabbitMQ queue and is ignored.
    /// </summary>
    public const long MaxExpirationMs = uint.MaxValue;

    /// <summary>
    /// Maps the properties and copies the body: the client reuses the delivery's buffer once the consumer callback
    /// returns. Empty strings count as absent (an empty <c>reply_to</c> must not become a routing key).
    /// </summary>
    public static IncomingJob ToIncomingJob(IReadOnlyBasicProperties properties, ReadOnlyMemory<byte> body, bool redelivered, DateTimeOffset receivedAt) => new()
    {
        Body = body.ToArray(),
        MessageId = Echoable(properties.MessageId),
        CorrelationId = Echoable(properties.CorrelationId),
        ReplyTo = Echoable(properties.ReplyTo),
        ContentType = NullIfEmpty(properties.ContentType),
        ContentEncoding = NullIfEmpty(properties.ContentEncoding),
        Timestamp = ReadTimestamp(properties, receivedAt),
        Expiration = ReadExpiration(properties.Expiration),
        Redelivered = redelivered,
        DeliveryCount = ReadDeliveryCount(properties.Headers),
        CarriedDeliveries = ReadCarriedDeliveries(properties.Headers),
        ReceivedAt = receivedAt,
    };

    /// <summary>
    /// Publish time. The AMQP timestamp has one-second resolution, too coarse for <c>queued_ms</c>, so a
    /// <c>timestamp_in_ms</c> header (the name RabbitMQ's message-timestamp plugin uses; qw sets it) wins
    /// when it holds an integer (any integer type, or decimal digits as a string or bytes); otherwise it is
    /// ignored. AMQP timestamps are unix seconds; 0 (or none) means the producer set none. A time before 1970
    /// or outside <see cref="DateTimeOffset"/>'s range is unset; so is one more than <see cref="MaxClockSkew"/>
    /// after <paramref name="receivedAt"/> when given.
    /// </summary>
    public static DateTimeOffset? ReadTimestamp(IReadOnlyBasicProperties properties, DateTimeOffset? receivedAt = null)
    {
        var latest = receivedAt is { } now && now <= DateTimeOffset.MaxValue - MaxClockSkew ? now + MaxClockSkew : DateTimeOffset.MaxValue;
        if (properties.Headers is { } headers && headers.TryGetValue(TimestampInMsHeader, out var raw)
            && ReadInteger(raw) is { } ms && ms > 0 && ms <= MaxUnixSeconds * 1000L)
        {
            var fromHeader = DateTimeOffset.FromUnixTimeMilliseconds(ms);
            if (fromHeader <= latest) return fromHeader;
        }
        if (!properties.IsTimestampPresent())
            return null;
        var seconds = properties.Timestamp.UnixTime;
        if (seconds is <= 0 or > MaxUnixSeconds)
            return null;
        var published = DateTimeOffset.FromUnixTimeSeconds(seconds);
        return published <= latest ? published : null;
    }

    /// <summary>
    /// AMQP <c>expiration</c> is a string of milliseconds: decimal digits only (no sign, no spaces), at most
    /// <see cref="MaxExpirationMs"/>. Anything else ("-1", " 5", "1e3", "abc") is ignored: RabbitMQ refuses such a
    /// publish, so it never set a TTL on the job. "0" is a TTL of zero: the job's deadline is its publish time.
    /// </summary>
    public static TimeSpan? ReadExpiration(string? expiration) =>
        long.TryParse(expiration, NumberStyles.None, CultureInfo.InvariantCulture, out var ms) && ms <= MaxExpirationMs
            ? TimeSpan.FromMilliseconds(ms)
            : null;

    /// <summary>
    /// The header's integer type depends on who wrote it (the broker writes a long). Absent, negative or not an
    /// integer (a float, a bool, a table, digits too long for a long) = 0, the first delivery.
    /// </summary>
    public static long ReadDeliveryCount(IDictionary<string, object?>? headers)
    {
        if (headers is null || !headers.TryGetValue(DeliveryCountHeader, out var value))
            return 0;
        return ReadInteger(value) is { } count and > 0 ? count : 0;
    }

    /// <summary>The <see cref="CarriedDeliveriesHeader"/> count, read like <see cref="ReadDeliveryCount"/>: anything but a non-negative integer is 0.</summary>
    public static long ReadCarriedDeliveries(IDictionary<string, object?>? headers)
    {
        if (headers is null || !headers.TryGetValue(CarriedDeliveriesHeader, out var value))
            return 0;
        return ReadInteger(value) is { } count and > 0 ? count : 0;
    }

    /// <summary>
    /// How many times the job was handed to a consumer before, by every count there is: the quorum queue's
    /// <c>x-delivery-count</c> (or, on a queue without one, 1 when the broker says <c>redelivered</c>) plus the deliveries
    /// it carried over from before the worker re-published it. Saturates instead of overflowing.
    /// </summary>
    public static long PriorDeliveries(long deliveryCount, bool redelivered, long carried)
    {
        var broker = Math.Max(deliveryCount, redelivered ? 1 : 0);
        return broker > long.MaxValue - carried ? long.MaxValue : broker + carried;
    }

    /// <summary>An integer header value of any AMQP integer type, or decimal digits as a string or bytes (longstr).</summary>
    private static long? ReadInteger(object? value) => value switch
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
        _ => null,
    };

    /// <summary>
    /// A value the result copies back into AMQP short-string properties (<c>message_id</c> as the fallback job id,
    /// <c>correlation_id</c>, <c>reply_to</c> as the routing key). The client decodes a short string as UTF-8 and replaces
    /// each invalid byte with U+FFFD (3 bytes), so 255 bytes on the wire can come back as 765: such a value could never
    /// be published, nor echoed as sent. It is treated as absent: the job id falls back to a generated one, the
    /// result goes without <c>correlation_id</c>, and to the results queue instead of <c>reply_to</c>.
    /// </summary>
    private static string? Echoable(string? value) => string.IsNullOrEmpty(value) || !AmqpShortString.Fits(value) ? null : value;

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
