using System.Globalization;
using QueueWorker.Contracts;
using QueueWorker.Messaging;

namespace QueueWorker.Cli.Running;

/// <summary>
/// Durations as qw's flags take them (<c>--completion-window 24h</c>, <c>--expires-in 30m</c>): a whole number followed by
/// one unit, <c>ms</c>, <c>s</c>, <c>m</c>, <c>h</c> or <c>d</c> (OpenAI's <c>completion_window</c> is <c>24h</c>). Nothing
/// else is read: no sign, fraction, space, upper case or combined units, so a typo is an error, never a guess.
/// </summary>
internal static class Durations
{
    /// <summary>The largest duration: RabbitMQ's largest per-message TTL (2^32 − 1 ms, about 49.7 days).</summary>
    public static readonly TimeSpan Max = TimeSpan.FromMilliseconds(DeliveryMapper.MaxExpirationMs);

    /// <summary>The rule, for error messages.</summary>
    public const string Rule = "a whole number and a unit, ms, s, m, h or d (e.g. 24h, 30m, 90s, 2d), more than 0 and at most 4294967295 ms (about 49.7 days, RabbitMQ's largest message TTL)";

    private static readonly (string Suffix, long Ms)[] Units = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];

    /// <summary>Reads <paramref name="text"/>; false when it breaks <see cref="Rule"/> (zero, negative and too large included).</summary>
    public static bool TryParse(string? text, out TimeSpan value)
    {
        value = default;
        if (string.IsNullOrEmpty(text)) return false;
        var digits = text.TakeWhile(char.IsAsciiDigit).Count();
        if (digits == 0 || digits > 12) return false; // 12 digits of days are far past Max already; no overflow below
        var suffix = text[digits..];
        var unit = Array.FindIndex(Units, u => u.Suffix == suffix);
        if (unit < 0) return false;
        // In decimal: 12 digits of days overflow a long.
        var ms = (decimal)long.Parse(text.AsSpan(0, digits), NumberStyles.None, CultureInfo.InvariantCulture) * Units[unit].Ms;
        if (ms <= 0 || ms > DeliveryMapper.MaxExpirationMs) return false;
        value = TimeSpan.FromMilliseconds((long)ms);
        return true;
    }

    /// <summary>Reads the value of <paramref name="flag"/> or throws a <see cref="Infrastructure.CliException"/> naming the flag and the rule (exit 2).</summary>
    public static TimeSpan ParseFlag(string flag, string? text) =>
        TryParse(text, out var value)
            ? value
            : throw new Infrastructure.CliException($"{flag} must be {Rule}; got '{text}'.");

    /// <summary>The shortest text <see cref="TryParse"/> reads back as <paramref name="value"/>: the largest unit that divides it.</summary>
    public static string Format(TimeSpan value)
    {
        var ms = (long)value.TotalMilliseconds;
        for (var i = Units.Length - 1; i > 0; i--)
        {
            if (ms % Units[i].Ms == 0)
                return (ms / Units[i].Ms).ToString(CultureInfo.InvariantCulture) + Units[i].Suffix;
        }
        return ms.ToString(CultureInfo.InvariantCulture) + "ms";
    }
}

/// <summary>
/// When a job stops being worth running (<c>qw batch --completion-window</c>, <c>qw submit --expires-in</c>): an instant,
/// not a span, so every publish of the job (the first, and again after a reconnect) sends the time left as its AMQP
/// <c>expiration</c>, and a job whose time is up before it is published is answered here instead of being sent.
/// </summary>
/// <param name="At">The instant.</param>
/// <param name="Source">What set it, for messages, e.g. <c>--completion-window 24h</c>.</param>
internal sealed record JobExpiry(DateTimeOffset At, string Source)
{
    /// <summary>The AMQP <c>expiration</c> to publish at <paramref name="now"/>: the milliseconds left, rounded up; null when none are left.</summary>
    public string? AmqpExpiration(DateTimeOffset now)
    {
        var left = At - now;
        if (left <= TimeSpan.Zero) return null;
        // Rounded up: a job published with a few microseconds left gets 1 ms, not 0 (which would make it expire at once
        // on a queue that has no consumer ready).
        var ms = Math.Min(DeliveryMapper.MaxExpirationMs, (long)Math.Ceiling(left.TotalMilliseconds));
        return ms.ToString(CultureInfo.InvariantCulture);
    }

    public bool HasPassed(DateTimeOffset now) => At <= now;

    /// <summary>The answer to a job whose time was up before qw published it: one <c>deadline_exceeded</c> result, as the worker gives an expired job.</summary>
    public JobResult NotPublished(string jobId) =>
        JobResult.Failed(jobId, new JobError(ErrorCodes.DeadlineExceeded,
            $"qw did not publish the job: {Source} ended at {At.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture)} before its turn came.",
            // The field a worker names when a job's AMQP expiration ran out: one code and field for both.
            Processing.JobDeadline.ExpirationField));
}
