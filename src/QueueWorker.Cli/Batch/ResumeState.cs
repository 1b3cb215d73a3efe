using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using QueueWorker.Cli.Infrastructure;

namespace QueueWorker.Cli.Batch;

/// <summary>
/// What an existing output file says is done. Lines are keyed by custom_id, or by input line number
/// for error lines that have no custom_id. A trailing partial line (a write cut short by a crash) and
/// any invalid lines after the last valid one are truncated away, so the file is valid JSONL again
/// before anything is appended.
/// </summary>
internal sealed class ResumeState
{
    private readonly HashSet<UInt128> _doneIds = [];
    private readonly HashSet<long> _doneLines = [];

    /// <summary>Output lines found (valid, kept).</summary>
    public long Count { get; private set; }

    /// <summary>Bytes cut from the end of the file (0 when it was intact).</summary>
    public long TruncatedBytes { get; private set; }

    public bool IsDone(string? customId, long lineNumber) =>
        customId is not null ? _doneIds.Contains(IdKey.Of(customId)) : _doneLines.Contains(lineNumber);

    public static async Task<ResumeState> LoadAndRepairAsync(string path, CancellationToken cancellationToken)
    {
        var state = new ResumeState();
        if (Directory.Exists(path)) throw new CliException($"--out {path} is a directory; give a file.");
        if (!File.Exists(path)) return state;

        long validEnd = 0;
        long? firstInvalidLine = null;
        long lineNumber = 0;
        await using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan))
        {
            var reader = new Utf8LineReader(stream, 64 * 1024 * 1024);
            while (await reader.ReadLineAsync(cancellationToken) is { } line)
            {
                lineNumber++;
                if (line.Terminated && !line.TooLong && Utf8LineReader.IsBlank(line.Bytes.Span))
                {
                    if (firstInvalidLine is null) validEnd = line.Offset + line.Length + 1;
                    continue;
                }
                var key = line.Terminated && !line.TooLong ? ReadKey(line.Bytes.Span) : null;
                if (key is null)
                {
                    firstInvalidLine ??= lineNumber;
                    continue;
                }
                if (firstInvalidLine is not null)
                    throw new CliException($"{path} line {firstInvalidLine} is not a valid output line, and valid lines follow it: " +
                                           "qw only repairs a damaged end of the file. Remove or fix that line, then run again.");
                state.Add(key.Value);
                validEnd = line.Offset + line.Length + 1;
            }
        }

        var length = new FileInfo(path).Length;
        if (validEnd < length)
        {
            await using var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.None);
            stream.SetLength(validEnd);
            state.TruncatedBytes = length - validEnd;
        }
        return state;
    }

    private void Add((string? CustomId, long? Line) key)
    {
        if (key.CustomId is not null) _doneIds.Add(IdKey.Of(key.CustomId));
        else if (key.Line is { } line) _doneLines.Add(line);
        Count++;
    }

    /// <summary>The key of a valid output line: an object with <c>custom_id</c> (string or null) and a <c>response</c> or an <c>error</c>.</summary>
    internal static (string? CustomId, long? Line)? ReadKey(ReadOnlySpan<byte> line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line.ToArray());
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("custom_id", out var customId)) return null;
            var hasResponse = root.TryGetProperty("response", out var response) && response.ValueKind == JsonValueKind.Object;
            var hasError = root.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object;
            if (!hasResponse && !hasError) return null;
            if (customId.ValueKind == JsonValueKind.String) return (customId.GetString(), null);
            if (customId.ValueKind != JsonValueKind.Null) return null;
            long? lineNumber = hasError && error.TryGetProperty("line", out var l) && l.TryGetInt64(out var n) ? n : null;
            return (null, lineNumber);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

/// <summary>
/// A 128-bit digest of a custom_id: a set of a million ids costs ~30-60 MB (16-byte keys plus set overhead) instead of the strings
/// (collisions are out of reach: ~10^-26 for a million ids).
/// </summary>
internal static class IdKey
{
    public static UInt128 Of(string id)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(id), hash);
        return new UInt128(BinaryPrimitives.ReadUInt64LittleEndian(hash), BinaryPrimitives.ReadUInt64LittleEndian(hash[8..]));
    }
}
