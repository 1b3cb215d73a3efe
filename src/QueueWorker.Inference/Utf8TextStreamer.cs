using System.Text;

namespace QueueWorker.Inference;

/// <summary>
/// Turns token pieces (raw bytes) into text. A token may end in the middle of a multi-byte UTF-8 character
/// (byte-fallback tokens): the <see cref="Decoder"/> keeps the partial bytes until the rest arrives.
/// </summary>
internal sealed class Utf8TextStreamer
{
    // Invalid sequences become U+FFFD rather than throwing: model output is not guaranteed to be valid UTF-8.
    private readonly Decoder _decoder = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false).GetDecoder();
    private char[] _chars = new char[64];

    /// <summary>The text completed by <paramref name="bytes"/> (may be empty while a character is incomplete).</summary>
    public string Append(ReadOnlySpan<byte> bytes) => Decode(bytes, flush: false);

    /// <summary>Ends the stream: an incomplete trailing character becomes U+FFFD.</summary>
    public string Flush() => Decode([], flush: true);

    private string Decode(ReadOnlySpan<byte> bytes, bool flush)
    {
        var needed = _decoder.GetCharCount(bytes, flush);
        if (needed > _chars.Length) _chars = new char[Math.Max(needed, _chars.Length * 2)];
        var n = _decoder.GetChars(bytes, _chars, flush);
        return n == 0 ? "" : new string(_chars, 0, n);
    }
}
