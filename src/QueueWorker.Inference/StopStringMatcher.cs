using System.Text;

namespace QueueWorker.Inference;

/// <summary>
/// Finds the job's stop strings in streamed text. Text that could be the start of a stop string is held back
/// until it is known not to be one, so a stop string is never released, even when it spans several tokens.
/// </summary>
internal sealed class StopStringMatcher
{
    private readonly string[] _stops;
    private readonly StringBuilder _held = new();

    public StopStringMatcher(IReadOnlyList<string> stops)
    {
        _stops = stops.Where(s => s.Length > 0).ToArray();
    }

    /// <summary>True once a stop string appeared; later text is ignored.</summary>
    public bool Stopped { get; private set; }

    /// <summary>The stop string that ended the text, if any.</summary>
    public string? MatchedStop { get; private set; }

    /// <summary>Adds text; returns the part that is now safe to release (never part of a stop string).</summary>
    public string Append(string text)
    {
        if (Stopped) return "";
        if (_stops.Length == 0) return text;
        _held.Append(text);
        var held = _held.ToString();

        var first = -1;
        foreach (var stop in _stops)
        {
            var at = held.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first))
            {
                first = at;
                MatchedStop = stop;
            }
        }
        if (first >= 0)
        {
            Stopped = true;
            _held.Clear();
            return held[..first];
        }

        var keep = LongestSuffixThatStartsAStop(held);
        _held.Clear().Append(held, held.Length - keep, keep);
        return held[..^keep];
    }

    /// <summary>At the end of generation, the held text was not a stop string after all: release it.</summary>
    public string Flush()
    {
        if (Stopped) return "";
        var rest = _held.ToString();
        _held.Clear();
        return rest;
    }

    private int LongestSuffixThatStartsAStop(string text)
    {
        var best = 0;
        foreach (var stop in _stops)
        {
            for (var len = Math.Min(stop.Length - 1, text.Length); len > best; len--)
            {
                if (text.AsSpan(text.Length - len).SequenceEqual(stop.AsSpan(0, len)))
                {
                    best = len;
                    break;
                }
            }
        }
        return best;
    }
}
