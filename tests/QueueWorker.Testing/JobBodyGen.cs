using System.Globalization;
using System.Text;
using CsCheck;

namespace QueueWorker.Testing;

/// <summary>
/// Generators of job bodies for property tests (the parser's, the pipeline's fuzz test): JSON text written by hand so
/// that it can hold what serializers never write (lone-surrogate escapes, duplicate keys, numeric extremes, nesting and
/// sizes near the limits), plus broken bytes.
/// </summary>
public static class JobBodyGen
{
    // ---- generators: JSON text, written by hand so that it can hold what serializers never write ----

    /// <summary>A piece of a JSON string's text (already escaped as it appears between the quotes).</summary>
    public static readonly Gen<string> StringPiece = Gen.Frequency(
        (8, Gen.Char['a', 'z'].Select(c => c.ToString())),
        (2, Gen.OneOf(" ", "\\n", "\\\"", "\\\\", "\\/", "\\t", "\\u0000", "\\u001f", "\\u00e9", "\\uffff", "\\ufffe")),
        (2, Gen.Int[0x80, 0xFFFF].Where(c => !char.IsSurrogate((char)c)).Select(c => ((char)c).ToString())),
        (1, Gen.Int[0x10000, 0x10FFFF].Select(char.ConvertFromUtf32)),
        (1, Gen.Int[0x10000, 0x10FFFF].Select(c => string.Concat(char.ConvertFromUtf32(c).Select(u => $"\\u{(int)u:x4}")))),
        (1, Gen.Int[0xD800, 0xDFFF].Select(c => $"\\u{c:x4}")));

    public static readonly Gen<string> JsonString = StringPiece.Array[0, 8].Select(p => "\"" + string.Concat(p) + "\"");

    public static readonly Gen<string> JsonNumber = Gen.Frequency(
        (4, Gen.OneOf("0", "-0", "1", "-1", "0.5", "2", "10", "3.0", "1e2", "1E+2", "1e999", "-1e999", "1e-320", "4.9e-324", "1e-45",
            "1e300", "1e39", "0.000001", "0.0000009", "4294967294", "4294967295", "4294967296", "2147483647", "2147483648",
            "9223372036854775807", "9223372036854775808", "-9223372036854775809", "18446744073709551616", "1e19", "100000", "100001",
            "604800000", "604800001", "1.0000000000000001", "2.0000000000000001", "-0.0", "0.9999999999")),
        (2, Gen.Double.Select(d => double.IsFinite(d) ? d.ToString("R", CultureInfo.InvariantCulture) : "1e999")),
        (2, Gen.Long.Select(l => l.ToString(CultureInfo.InvariantCulture))),
        (1, Gen.Int[0, 600].Select(i => i.ToString(CultureInfo.InvariantCulture))));

    public static readonly string[] KnownKeys =
        ["id", "prompt", "messages", "max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed", "stop",
         "timeout_ms", "metadata", "n", "stream", "model", "role", "content", "max_completion_tokens", "logit_bias", "presence_penalty",
         "frequency_penalty", "logprobs", "top_logprobs", "user", "tools", "echo", "input", "kind"];

    public static readonly Gen<string> JsonKey = Gen.Frequency(
        (3, Gen.OneOf(KnownKeys).Select(k => "\"" + k + "\"")),
        (1, Gen.OneOf("\"\\u0070rompt\"", "\"\\u0069d\"", "\"a\"", "\"\"")),
        (1, JsonString));

    public static readonly Gen<string> JsonValue = Gen.Recursive<string>((depth, value) => depth >= 5
        ? Gen.OneOf(JsonString, JsonNumber, Gen.OneOf("true", "false", "null"))
        : Gen.Frequency(
            (3, JsonString),
            (3, JsonNumber),
            (1, Gen.OneOf("true", "false", "null")),
            (1, value.Array[0, 4].Select(items => "[" + string.Join(",", items) + "]")),
            (1, Gen.Select(JsonKey, value).Array[0, 4].Select(Obj))));

    public static string Obj((string Key, string Value)[] members) => "{" + string.Join(",", members.Select(m => m.Key + ":" + m.Value)) + "}";

    public static readonly Gen<string> Role = Gen.Frequency((4, Gen.OneOf("\"user\"", "\"system\"", "\"assistant\"")), (1, JsonValue));

    public static readonly Gen<string> Message = Gen.Frequency(
        (4, Gen.Select(Role, JsonString).Select((r, c) => $$"""{"role":{{r}},"content":{{c}}}""")),
        (1, JsonValue));

    /// <summary>A value for a known field: mostly plausible for that field, sometimes anything.</summary>
    public static Gen<string> FieldValue(string key) => key switch
    {
        "id" => Gen.Frequency((3, JsonString), (1, JsonNumber), (1, LongId), (1, JsonValue)),
        "prompt" => Gen.Frequency((4, JsonString), (1, JsonValue)),
        "messages" => Gen.Frequency((4, Message.Array[0, 4].Select(m => "[" + string.Join(",", m) + "]")), (1, JsonValue)),
        "stop" => Gen.Frequency((2, JsonString), (2, JsonString.Array[0, 18].Select(s => "[" + string.Join(",", s) + "]")), (1, LongStop), (1, JsonValue)),
        "metadata" => Gen.Frequency((3, Gen.Select(JsonKey, JsonValue).Array[0, 5].Select(Obj)), (1, BigMetadata), (1, DeepNesting), (1, JsonValue)),
        "logit_bias" => Gen.Frequency((3, Gen.Select(JsonKey, JsonNumber).Array[0, 4].Select(Obj)), (1, JsonValue)),
        "input" => Gen.Frequency((2, JsonString), (2, JsonString.Array[0, 4].Select(s => "[" + string.Join(",", s) + "]")), (1, JsonValue)),
        "kind" => Gen.Frequency((2, Gen.OneOf("\"embedding\"", "\"completion\"", "\"x\"")), (1, JsonValue)),
        "logprobs" or "echo" => Gen.Frequency((2, Gen.OneOf("true", "false", "null", "1", "5", "21")), (1, JsonValue)),
        "stream" or "n" => Gen.Frequency((2, Gen.OneOf("true", "false", "null", "1", "\"true\"", "1.0", "2")), (1, JsonValue)),
        _ => Gen.Frequency((4, JsonNumber), (1, JsonValue)),
    };

    /// <summary>Ids around the 256-character and 255-byte limits, in 1-, 2-, 3- and 4-byte characters.</summary>
    public static readonly Gen<string> LongId = Gen.Select(Gen.Int[60, 260], Gen.OneOf("a", "é", "€", "😀"))
        .Select((n, c) => "\"" + string.Concat(Enumerable.Repeat(c, c.Length == 2 ? n / 2 : n)) + "\"");

    public static readonly Gen<string> LongStop = Gen.Int[250, 260].Select(n => "[\"" + new string('s', n) + "\"]");

    /// <summary>Metadata around the 16 KiB limit.</summary>
    public static readonly Gen<string> BigMetadata = Gen.Int[16_350, 16_400].Select(n => "{\"pad\":\"" + new string('m', n) + "\"}");

    /// <summary>Nesting around the depth limit of 32.</summary>
    public static readonly Gen<string> DeepNesting = Gen.Int[25, 40].Select(n => string.Concat(Enumerable.Repeat("{\"a\":", n)) + "1" + new string('}', n));

    /// <summary>A job object: known fields with plausible or odd values, sometimes repeated, sometimes unknown ones.</summary>
    public static readonly Gen<string> JobObject = Gen.Select(
        Gen.OneOf(KnownKeys).SelectMany(k => FieldValue(k).Select(v => ("\"" + k + "\"", v))).Array[0, 8],
        Gen.Select(JsonKey, JsonValue).Array[0, 2],
        Gen.Bool,
        (known, other, withPrompt) =>
        {
            var members = new List<(string, string)>();
            if (withPrompt) members.Add(("\"prompt\"", "\"Once upon a time\""));
            members.AddRange(known);
            members.AddRange(other);
            return Obj([.. members]);
        });

    public static readonly Gen<byte[]> AnyBody = Gen.Frequency(
        (10, JobObject.Select(Encoding.UTF8.GetBytes)),
        (2, JsonValue.Select(Encoding.UTF8.GetBytes)),
        (1, Gen.Byte.Array[0, 64]),
        // A job with one byte replaced, dropped or inserted: truncations, broken UTF-8, broken escapes.
        (3, Gen.Select(JobObject, Gen.Int[0, int.MaxValue], Gen.Byte, Gen.Int[0, 2]).Select((job, at, b, how) =>
        {
            var bytes = Encoding.UTF8.GetBytes(job).ToList();
            var i = at % bytes.Count;
            if (how == 0) bytes[i] = b;
            else if (how == 1) bytes.RemoveAt(i);
            else bytes.Insert(i, b);
            return bytes.ToArray();
        })),
        (1, JobObject.Select(j => new byte[] { 0xEF, 0xBB, 0xBF }.Concat(Encoding.UTF8.GetBytes(j)).ToArray())));
}
