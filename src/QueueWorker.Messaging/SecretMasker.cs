using System.Text;
using System.Text.RegularExpressions;

namespace QueueWorker.Messaging;

/// <summary>
/// The one place that hides passwords in broker addresses before they reach a log line, an error or a report: the worker,
/// its options validator and qw all call <see cref="MaskUri"/>. It lives here because both the host and qw reference
/// Messaging, and a broker URI is Messaging's concern.
/// </summary>
public static partial class SecretMasker
{
    /// <summary>What a password becomes.</summary>
    public const string Mask = "***";

    /// <summary>
    /// <paramref name="text"/> with the password of every URI in it replaced by <see cref="Mask"/>: one URI, or several
    /// separated by commas, semicolons or white space (<c>amqp://a:x@h1, amqp://b:y@h2</c>). Works on the text, not on a
    /// parsed <see cref="Uri"/>, so that a malformed URI (the case an error message has to show) is masked too:
    /// <list type="bullet">
    /// <item>the password runs from the first ':' of the user info to the <b>last</b> '@' of the URI, so a password that
    /// holds a raw '@', '/', '#' or ':' (not percent-encoded, as it should be) is still hidden whole. An '@' later in
    /// the path or query (legal, rare in a vhost) is taken for the end of the password: better too much hidden than too
    /// little;</item>
    /// <item>an empty password is masked too, so the text never tells whether there is one;</item>
    /// <item>no '@' (<c>amqp://user:secret</c>, host missing): what follows the ':' is masked unless it is a port
    /// (digits);</item>
    /// <item>no scheme (<c>user:secret@host</c>): the user info before the last '@' is masked the same way.</item>
    /// </list>
    /// The schemes known are amqp, amqps, http and https (the broker and the OTLP collector); text in another scheme is
    /// masked as if it had none. A raw password that itself contains a separator followed by one of these schemes and
    /// <c>://</c> reads as the start of a second URI: percent-encode passwords.
    /// </summary>
    public static string MaskUri(string? text)
    {
        if (string.IsNullOrEmpty(text))
            return string.Empty;
        var masked = new StringBuilder(text.Length);
        var start = 0;
        foreach (var match in NextUri().EnumerateMatches(text))
        {
            if (match.Index == 0)
                continue;
            MaskOne(text.AsSpan(start, match.Index - start), masked);
            start = match.Index;
        }
        MaskOne(text.AsSpan(start), masked);
        return masked.ToString();
    }

    private static void MaskOne(ReadOnlySpan<char> item, StringBuilder masked)
    {
        // The separator before the next URI is not part of this one (it would make "h1:5672, " look like no port).
        var uri = item.TrimEnd(" \t\r\n,;");
        MaskUriOnly(uri, masked);
        masked.Append(item[uri.Length..]);
    }

    private static void MaskUriOnly(ReadOnlySpan<char> uri, StringBuilder masked)
    {
        var scheme = SchemeLength(uri);
        var authority = scheme < 0 ? 0 : scheme + 3;
        var rest = uri[authority..];
        var at = rest.LastIndexOf('@');
        if (at >= 0)
        {
            var colon = rest[..at].IndexOf(':');
            if (colon < 0)
            {
                masked.Append(uri); // a user, no password
                return;
            }
            masked.Append(uri[..(authority + colon + 1)]).Append(Mask).Append(rest[at..]);
            return;
        }
        if (scheme >= 0)
        {
            // No user info: "host:port" is fine; "user:secret" (the host forgotten) is not a port.
            var end = rest.IndexOfAny('/', '?', '#');
            var hostPort = end < 0 ? rest : rest[..end];
            var portColon = hostPort.StartsWith('[') ? IndexAfterBracket(hostPort) : hostPort.IndexOf(':');
            if (portColon >= 0 && portColon < hostPort.Length - 1 && !IsDigits(hostPort[(portColon + 1)..]))
            {
                masked.Append(uri[..(authority + portColon + 1)]).Append(Mask);
                return;
            }
        }
        masked.Append(uri);
    }

    // Only the schemes this project uses, and only at the start: in "user://secret@host" (no scheme, a raw password
    // starting with "//") "user" is no scheme. Any other scheme reads as a user ("redis:***@host"): more hidden, not less.
    private static int SchemeLength(ReadOnlySpan<char> uri)
    {
        foreach (var scheme in Schemes)
            if (uri.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
                return scheme.Length - 3;
        return -1;
    }

    // "[::1]:5672": the port's ':' comes after the bracket.
    private static int IndexAfterBracket(ReadOnlySpan<char> hostPort)
    {
        var close = hostPort.IndexOf(']');
        if (close < 0)
            return -1;
        var colon = hostPort[close..].IndexOf(':');
        return colon < 0 ? -1 : close + colon;
    }

    private static bool IsDigits(ReadOnlySpan<char> value) => !value.ContainsAnyExceptInRange('0', '9');

    private static readonly string[] Schemes = ["amqps://", "amqp://", "https://", "http://"];

    // The start of another URI in a list: a separator, then "scheme://".
    [GeneratedRegex(@"(?<=[\s,;])(amqps?|https?)://", RegexOptions.IgnoreCase)]
    private static partial Regex NextUri();
}
