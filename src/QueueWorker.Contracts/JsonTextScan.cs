using System.Text;
using System.Text.Json;

namespace QueueWorker.Contracts;

/// <summary>
/// One pass over a body that already parsed as JSON, before any field is read. It finds what
/// <see cref="JsonElement"/> cannot be trusted with: an escaped lone surrogate (<c>"\ud800"</c>) is valid JSON text,
/// but <c>GetString</c>, <c>TryGetProperty</c> (past such a key) and <c>WriteTo</c> throw
/// <see cref="InvalidOperationException"/> on it; and a duplicate key, which <see cref="JsonDocument"/> keeps while
/// <c>TryGetProperty</c> silently picks the last one. It also notes where the top-level values a failed result
/// echoes (<c>id</c>, <c>metadata</c>) are, so they can still be read when they are clean.
/// </summary>
internal static class JsonTextScan
{
    public sealed record Problem(string Field, string Message);

    public readonly record struct Slice(int Start, int Length);

    public sealed class Result
    {
        /// <summary>The first problem in document order, or null.</summary>
        public Problem? Problem { get; set; }

        /// <summary>Captured top-level values: a slice when clean and given once, null when tainted or duplicated.</summary>
        public Dictionary<string, Slice?> TopLevel { get; } = new(StringComparer.Ordinal);
    }

    private sealed class Frame(string path, bool isArray)
    {
        public string Path { get; } = path;
        public bool IsArray { get; } = isArray;
        public int Index { get; set; } = -1;
        public string Key { get; set; } = "";
        public HashSet<string>? Keys { get; set; }
    }

    private const int MaxKeyInPath = 64;

    public static Result Scan(ReadOnlySpan<byte> json, int maxDepth, IReadOnlySet<string> capture)
    {
        var result = new Result();
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = maxDepth, CommentHandling = JsonCommentHandling.Disallow });
        var stack = new List<Frame>();
        string? topKey = null;
        var topStart = -1;
        var topClean = true;

        while (reader.Read())
        {
            var token = reader.TokenType;
            if (token is JsonTokenType.EndObject or JsonTokenType.EndArray)
            {
                stack.RemoveAt(stack.Count - 1);
                if (stack.Count == 1) EndTopValue(result, capture, topKey, topStart, (int)reader.BytesConsumed, topClean);
                continue;
            }

            if (token == JsonTokenType.PropertyName)
            {
                var frame = stack[^1];
                if (stack.Count == 1) { topKey = null; topClean = true; }
                if (reader.ValueIsEscaped && FindLoneSurrogate(reader.ValueSpan) is { } badKey)
                {
                    // The key cannot be read as a string: name it as written (its escapes are plain ASCII text).
                    var written = Shorten(Encoding.UTF8.GetString(reader.ValueSpan));
                    frame.Key = written;
                    result.Problem ??= new Problem(Join(frame.Path, written),
                        $"A key {(frame.Path.Length == 0 ? "of the job" : $"in \"{frame.Path}\"")} (written \"{written}\") contains an unpaired surrogate {badKey.Escape} at character {badKey.Index}; strings must be valid Unicode.");
                    topClean = false;
                    continue;
                }
                var key = reader.GetString()!;
                frame.Key = Shorten(key);
                if (!(frame.Keys ??= new HashSet<string>(StringComparer.Ordinal)).Add(key))
                {
                    var field = Join(frame.Path, frame.Key);
                    result.Problem ??= new Problem(field,
                        $"\"{field}\" is given twice in one object; JSON keys must be unique, since which value was meant is ambiguous.");
                    if (stack.Count == 1 && capture.Contains(key)) result.TopLevel[key] = null;
                }
                if (stack.Count == 1) topKey = key;
                continue;
            }

            // A value: the root, an array item or a property's value.
            var parent = stack.Count == 0 ? null : stack[^1];
            if (parent is { IsArray: true }) parent.Index++;
            var path = parent is null ? "" : parent.IsArray ? $"{parent.Path}[{parent.Index}]" : Join(parent.Path, parent.Key);
            if (stack.Count == 1) topStart = (int)reader.TokenStartIndex;

            if (token is JsonTokenType.StartObject or JsonTokenType.StartArray)
            {
                stack.Add(new Frame(path, token == JsonTokenType.StartArray));
                continue;
            }
            if (token == JsonTokenType.String && reader.ValueIsEscaped && FindLoneSurrogate(reader.ValueSpan) is { } bad)
            {
                result.Problem ??= new Problem(path,
                    $"\"{path}\" contains an unpaired surrogate {bad.Escape} at character {bad.Index}; strings must be valid Unicode.");
                topClean = false;
            }
            if (stack.Count == 1) EndTopValue(result, capture, topKey, topStart, (int)reader.BytesConsumed, topClean);
        }
        return result;
    }

    private static void EndTopValue(Result result, IReadOnlySet<string> capture, string? key, int start, int end, bool clean)
    {
        if (key is null || !capture.Contains(key)) return;
        // A second occurrence was already marked ambiguous at its key; never let it overwrite that.
        if (result.TopLevel.ContainsKey(key)) { result.TopLevel[key] = null; return; }
        result.TopLevel[key] = clean ? new Slice(start, end - start) : null;
    }

    /// <summary>
    /// The first escaped surrogate in a raw (still escaped) JSON string that is not half of a <c>\uD8xx\uDCxx</c>
    /// pair, with its index in the unescaped string (UTF-16 units). Raw UTF-8 cannot hold a surrogate (the body
    /// passed a UTF-8 check), so only escapes can.
    /// </summary>
    internal static (string Escape, int Index)? FindLoneSurrogate(ReadOnlySpan<byte> raw)
    {
        var chars = 0;
        for (var i = 0; i < raw.Length;)
        {
            var b = raw[i];
            if (b != (byte)'\\')
            {
                // A UTF-8 lead byte starts one UTF-16 unit, or two for a 4-byte sequence; continuation bytes add none.
                if ((b & 0xC0) != 0x80) chars += b >= 0xF0 ? 2 : 1;
                i++;
                continue;
            }
            if (raw[i + 1] != (byte)'u')
            {
                chars++;
                i += 2;
                continue;
            }
            var unit = Hex4(raw.Slice(i + 2, 4));
            if (char.IsHighSurrogate(unit) && i + 12 <= raw.Length && raw[i + 6] == (byte)'\\' && raw[i + 7] == (byte)'u'
                && char.IsLowSurrogate(Hex4(raw.Slice(i + 8, 4))))
            {
                chars += 2;
                i += 12;
                continue;
            }
            if (char.IsSurrogate(unit))
                return (Encoding.ASCII.GetString(raw.Slice(i, 6)), chars);
            chars++;
            i += 6;
        }
        return null;
    }

    private static char Hex4(ReadOnlySpan<byte> hex)
    {
        var value = 0;
        foreach (var h in hex)
            value = (value << 4) | (h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
        return (char)value;
    }

    private static string Join(string path, string key) => path.Length == 0 ? key : $"{path}.{key}";

    /// <summary>A key as it appears in a field path: shortened, and an empty key as <c>""</c> so the path never ends empty.</summary>
    private static string Shorten(string key)
    {
        if (key.Length == 0) return "\"\"";
        if (key.Length <= MaxKeyInPath) return key;
        // Never cut a surrogate pair in half: the field name is echoed in the result.
        var cut = char.IsHighSurrogate(key[MaxKeyInPath - 1]) ? MaxKeyInPath - 1 : MaxKeyInPath;
        return key[..cut] + "…";
    }
}
