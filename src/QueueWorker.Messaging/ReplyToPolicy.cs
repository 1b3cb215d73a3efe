using System.Diagnostics.CodeAnalysis;
using System.Text.RegularExpressions;

namespace QueueWorker.Messaging;

/// <summary>
/// Which <c>reply_to</c> a result may be published to. A producer names any queue it likes, and the worker's user may
/// write to queues the producer's may not (another tenant's results, the jobs queue), so only these are honoured:
/// server-named queues (<c>amq.gen-…</c>, which a client cannot declare, and the direct reply-to
/// <c>amq.rabbitmq.reply-to…</c>), the results queue itself, and names matching <c>RabbitMq:ReplyToPattern</c> (anchored at
/// both ends; empty = none). The worker's jobs, dead-letter and parked queues are never honoured, whatever the pattern says.
/// Anything else gets its result on the results queue, with a warning in the result.
/// </summary>
public sealed class ReplyToPolicy
{
    public const string PatternKey = "RabbitMq:ReplyToPattern";
    /// <summary>The prefix of the names the broker gives queues declared with an empty name.</summary>
    public const string ServerNamedPrefix = "amq.gen-";
    /// <summary>A pattern that takes longer than this on one name does not match it (a pathological pattern cannot stall publishing).</summary>
    public static readonly TimeSpan MatchTimeout = TimeSpan.FromMilliseconds(100);

    private readonly Regex? _pattern;
    private readonly string _resultsQueue;
    private readonly string _jobsQueue;
    private readonly string _deadLetterQueue;
    private readonly string _parkedQueue;

    public ReplyToPolicy(RabbitMqOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!TryCompile(options.ReplyToPattern, out _pattern, out var error))
            throw new ArgumentException(error, nameof(options));
        _resultsQueue = options.ResultsQueue;
        _jobsQueue = options.JobsQueue;
        _deadLetterQueue = options.EffectiveDeadLetterQueue;
        _parkedQueue = options.EffectiveParkedQueue;
    }

    /// <summary>True when a result may go to <paramref name="replyTo"/>; false sends it to the results queue with <see cref="Warning"/>.</summary>
    public bool IsAllowed(string replyTo)
    {
        ArgumentNullException.ThrowIfNull(replyTo);
        if (string.Equals(replyTo, _jobsQueue, StringComparison.Ordinal) || string.Equals(replyTo, _deadLetterQueue, StringComparison.Ordinal)
            || string.Equals(replyTo, _parkedQueue, StringComparison.Ordinal))
            return false;
        if (IsServerNamed(replyTo) || string.Equals(replyTo, _resultsQueue, StringComparison.Ordinal))
            return true;
        if (_pattern is null)
            return false;
        try
        {
            return _pattern.IsMatch(replyTo);
        }
        catch (RegexMatchTimeoutException)
        {
            return false;
        }
    }

    /// <summary>
    /// A name only the broker can give: <c>amq.gen-</c> followed by something, or the direct reply-to pseudo-queue
    /// (<c>amq.rabbitmq.reply-to</c>, or the <c>amq.rabbitmq.reply-to.…</c> form the broker hands the worker). Case-sensitive,
    /// like the broker.
    /// </summary>
    public static bool IsServerNamed(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length > ServerNamedPrefix.Length && name.StartsWith(ServerNamedPrefix, StringComparison.Ordinal))
            return true;
        return string.Equals(name, ResultPublisher.DirectReplyToPrefix, StringComparison.Ordinal)
            || (name.Length > ResultPublisher.DirectReplyToPrefix.Length + 1
                && name.StartsWith(ResultPublisher.DirectReplyToPrefix + ".", StringComparison.Ordinal));
    }

    /// <summary>The warning put into a result whose <c>reply_to</c> was not honoured.</summary>
    public static string Warning(string replyTo) =>
        $"reply_to '{replyTo}' is not allowed ({PatternKey}); the result went to the results queue";

    /// <summary>
    /// Compiles <paramref name="pattern"/> anchored at both ends; null or blank = no pattern (true, <paramref name="regex"/>
    /// null). False with an error naming the key when it is not a .NET regular expression.
    /// </summary>
    public static bool TryCompile(string? pattern, out Regex? regex, [NotNullWhen(false)] out string? error)
    {
        regex = null;
        error = null;
        if (string.IsNullOrWhiteSpace(pattern))
            return true;
        try
        {
            // Compiled alone first: a pattern such as "a)|(b" would otherwise escape the anchoring group.
            _ = new Regex(pattern, RegexOptions.CultureInvariant, MatchTimeout);
            regex = new Regex(@"\A(?:" + pattern + @")\z", RegexOptions.CultureInvariant, MatchTimeout);
            return true;
        }
        catch (ArgumentException ex)
        {
            error = $"{PatternKey} '{pattern}' is not a valid .NET regular expression: {ex.Message}";
            return false;
        }
    }
}
