namespace QueueWorker.Cli.Batch;

/// <summary>One line of a file: its bytes (without <c>\n</c> or <c>\r\n</c>), where it starts, and how it ended.</summary>
/// <param name="Bytes">Valid until the next read.</param>
/// <param name="Terminated">False for a last line without a newline (in an output file: a write cut short).</param>
/// <param name="TooLong">Longer than the reader's limit; <paramref name="Bytes"/> is then empty and the line was skipped.</param>
internal readonly record struct RawLine(ReadOnlyMemory<byte> Bytes, long Offset, long Length, bool Terminated, bool TooLong);

/// <summary>
/// Reads a file line by line as UTF-8 bytes with byte offsets, through one reusable buffer: memory
/// stays bounded by the longest line (capped by <c>maxLineBytes</c>), whatever the file's size.
/// </summary>
internal sealed class Utf8LineReader(Stream stream, int maxLineBytes)
{
    private byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;
    private long _consumed;   // file offset of _buffer[_start]
    private bool _eof;

    public async ValueTask<RawLine?> ReadLineAsync(CancellationToken cancellationToken)
    {
        var skipping = false;
        long skipStart = 0;
        var searchFrom = _start;
        while (true)
        {
            var newline = Array.IndexOf(_buffer, (byte)'\n', searchFrom, _end - searchFrom);
            if (newline >= 0)
            {
                var offset = _consumed;
                var length = newline - _start;
                var line = new ReadOnlyMemory<byte>(_buffer, _start, length);
                _consumed += length + 1;
                _start = newline + 1;
                if (skipping)
                    return new RawLine(ReadOnlyMemory<byte>.Empty, skipStart, offset - skipStart + length, true, true);
                if (length > maxLineBytes)
                    return new RawLine(ReadOnlyMemory<byte>.Empty, offset, length, true, true);
                return new RawLine(TrimCarriageReturn(line), offset, length, true, false);
            }

            if (_eof)
            {
                if (_start == _end && !skipping) return null;
                var offset = _consumed;
                var length = _end - _start;
                var line = new ReadOnlyMemory<byte>(_buffer, _start, length);
                _consumed += length;
                _start = _end;
                if (skipping) return new RawLine(ReadOnlyMemory<byte>.Empty, skipStart, offset - skipStart + length, false, true);
                if (length > maxLineBytes) return new RawLine(ReadOnlyMemory<byte>.Empty, offset, length, false, true);
                return new RawLine(TrimCarriageReturn(line), offset, length, false, false);
            }

            if (_end - _start > maxLineBytes)
            {
                // Too long to keep: drop what we have and look for the end of the line.
                if (!skipping) skipStart = _consumed;
                skipping = true;
                _consumed += _end - _start;
                _start = _end = 0;
            }
            else if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            if (_end == _buffer.Length)
                Array.Resize(ref _buffer, Math.Min(_buffer.Length * 2, Math.Max(_buffer.Length, maxLineBytes + 2)));
            searchFrom = _end;
            var read = await stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken);
            if (read == 0) _eof = true;
            else _end += read;
        }
    }

    private static ReadOnlyMemory<byte> TrimCarriageReturn(ReadOnlyMemory<byte> line) =>
        line.Length > 0 && line.Span[^1] == (byte)'\r' ? line[..^1] : line;

    /// <summary>True for a line of only spaces and tabs (skipped in input files).</summary>
    public static bool IsBlank(ReadOnlySpan<byte> line) => line.Trim(" \t\r"u8).IsEmpty;
}
