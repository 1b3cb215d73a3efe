using System.Text;

namespace QueueWorker.Contracts;

/// <summary>
/// The AMQP 0-9-1 <c>shortstr</c> rule for values a result copies into its properties (<c>message_id</c>,
/// <c>correlation_id</c>, the <c>reply_to</c> routing key): at most 255 bytes. RabbitMQ.Client throws while
/// encoding a longer one, which would turn a job into a publish that can never succeed.
/// </summary>
public static class AmqpShortString
{
    public const int MaxBytes = 255;

    /// <summary>Bytes the client writes for <paramref name="value"/> (UTF-8; a lone surrogate becomes U+FFFD, 3 bytes).</summary>
    public static int ByteCount(string value) => Encoding.UTF8.GetByteCount(value);

    /// <summary>
    /// True when <paramref name="value"/> can be published as a short string and echoed unchanged: valid UTF-16
    /// (a lone surrogate would be replaced on the wire, so the echo would not match) and at most 255 UTF-8 bytes.
    /// </summary>
    public static bool Fits(string? value) =>
        value is not null && value.Length <= MaxBytes && IsValidUtf16(value) && ByteCount(value) <= MaxBytes;

    /// <summary>True when every surrogate in <paramref name="value"/> is part of a pair.</summary>
    public static bool IsValidUtf16(ReadOnlySpan<char> value) => FirstLoneSurrogate(value) < 0;

    /// <summary>The index of the first unpaired surrogate, or -1.</summary>
    public static int FirstLoneSurrogate(ReadOnlySpan<char> value)
    {
        for (var i = 0; i < value.Length; i++)
        {
            if (char.IsHighSurrogate(value[i]) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1])) i++;
            else if (char.IsSurrogate(value[i])) return i;
        }
        return -1;
    }

    /// <summary>
    /// The id a result is published under: the first candidate that can be echoed as the AMQP <c>message_id</c>
    /// unchanged (non-empty, <see cref="Fits"/>), else a new one (<c>job-</c> and a GUID).
    /// </summary>
    public static string EchoableIdOrNew(string? preferred, string? fallback = null) =>
        preferred is { Length: > 0 } && Fits(preferred) ? preferred
        : fallback is { Length: > 0 } && Fits(fallback) ? fallback
        : "job-" + Guid.NewGuid().ToString("N");
}
