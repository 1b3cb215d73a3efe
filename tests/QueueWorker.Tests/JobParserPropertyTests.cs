using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using CsCheck;
using QueueWorker.Contracts;

namespace QueueWorker.Tests;

/// <summary>
/// Property tests: whatever the body, the parser returns (never throws) a valid job or an error with a code (and a field
/// for field errors), and the result built from it serializes with an id that fits an AMQP message_id.
/// Iterations per property: QW_FUZZ_ITERATIONS (default 10 000, a few seconds each); for a long run:
/// <c>QW_FUZZ_ITERATIONS=1000000 dotnet test tests/QueueWorker.Tests --filter "FullyQualifiedName~PropertyTests"</c>.
/// A failure prints the CsCheck seed; CsCheck_Seed=&lt;seed&gt; replays it.
/// </summary>
[Trait("Category", "Unit")]
public class JobParserPropertyTests
{
    private static readonly JobLimits Limits = new() { MaxTokens = 512, DefaultMaxTokens = 64 };
    private const string FallbackId = "fallback-id";

    internal static long Iterations(long defaultCount) =>
        long.TryParse(Environment.GetEnvironmentVariable("QW_FUZZ_ITERATIONS"), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : defaultCount;

    private static readonly long Iter = Iterations(10_000);

    private static readonly HashSet<string> Codes =
        [ErrorCodes.EmptyBody, ErrorCodes.InvalidUtf8, ErrorCodes.InvalidJson, ErrorCodes.NotAnObject, ErrorCodes.InvalidField, ErrorCodes.MissingPrompt];

    // ---- generators: JSON text, written by hand so that it can hold what serializers never write ----

    /// <summary>A piece of a JSON string's text (already escaped as it appears between the quotes).</summary>
    private static readonly Gen<string> StringPiece = Gen.Frequency(
        (8, Gen.Char['a', 'z'].Select(c => c.ToString())),
        (2, Gen.OneOf(" ", "\\n", "\\\"", "\\\\", "\\/", "\\t", "\\u0000", "\\u001f", "\\u00e9", "\\uffff", "\\ufffe")),
        (2, Gen.Int[0x80, 0xFFFF].Where(c => !char.IsSurrogate((char)c)).Select(c => ((char)c).ToString())),
        (1, Gen.Int[0x10000, 0x10FFFF].Select(char.ConvertFromUtf32)),
        (1, Gen.Int[0x10000, 0x10FFFF].Select(c => string.Concat(char.ConvertFromUtf32(c).Select(u => $"\\u{(int)u:x4}")))),
        (1, Gen.Int[0xD800, 0xDFFF].Select(c => $"\\u{c:x4}")));

    private static readonly Gen<string> JsonString = StringPiece.Array[0, 8].Select(p => "\"" + string.Concat(p) + "\"");

    private static readonly Gen<string> JsonNumber = Gen.Frequency(
        (4, Gen.OneOf("0", "-0", "1", "-1", "0.5", "2", "10", "3.0", "1e2", "1E+2", "1e999", "-1e999", "1e-320", "4.9e-324", "1e-45",
            "1e300", "1e39", "0.000001", "0.0000009", "4294967294", "4294967295", "4294967296", "2147483647", "2147483648",
            "9223372036854775807", "9223372036854775808", "-9223372036854775809", "18446744073709551616", "1e19", "100000", "100001",
            "604800000", "604800001", "1.0000000000000001", "2.0000000000000001", "-0.0", "0.9999999999")),
        (2, Gen.Double.Select(d => double.IsFinite(d) ? d.ToString("R", CultureInfo.InvariantCulture) : "1e999")),
        (2, Gen.Long.Select(l => l.ToString(CultureInfo.InvariantCulture))),
        (1, Gen.Int[0, 600].Select(i => i.ToString(CultureInfo.InvariantCulture))));

    private static readonly string[] KnownKeys =
        ["id", "prompt", "messages", "max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed", "stop",
         "timeout_ms", "metadata", "n", "stream", "model", "role", "content"];

    private static readonly Gen<string> JsonKey = Gen.Frequency(
        (3, Gen.OneOf(KnownKeys).Select(k => "\"" + k + "\"")),
        (1, Gen.OneOf("\"\\u0070rompt\"", "\"\\u0069d\"", "\"a\"", "\"\"")),
        (1, JsonString));

    private static readonly Gen<string> JsonValue = Gen.Recursive<string>((depth, value) => depth >= 5
        ? Gen.OneOf(JsonString, JsonNumber, Gen.OneOf("true", "false", "null"))
        : Gen.Frequency(
            (3, JsonString),
            (3, JsonNumber),
            (1, Gen.OneOf("true", "false", "null")),
            (1, value.Array[0, 4].Select(items => "[" + string.Join(",", items) + "]")),
            (1, Gen.Select(JsonKey, value).Array[0, 4].Select(Obj))));

    private static string Obj((string Key, string Value)[] members) => "{" + string.Join(",", members.Select(m => m.Key + ":" + m.Value)) + "}";

    private static readonly Gen<string> Role = Gen.Frequency((4, Gen.OneOf("\"user\"", "\"system\"", "\"assistant\"")), (1, JsonValue));

    private static readonly Gen<string> Message = Gen.Frequency(
        (4, Gen.Select(Role, JsonString).Select((r, c) => $$"""{"role":{{r}},"content":{{c}}}""")),
        (1, JsonValue));

    /// <summary>A value for a known field: mostly plausible for that field, sometimes anything.</summary>
    private static Gen<string> FieldValue(string key) => key switch
    {
        "id" => Gen.Frequency((3, JsonString), (1, JsonNumber), (1, LongId), (1, JsonValue)),
        "prompt" => Gen.Frequency((4, JsonString), (1, JsonValue)),
        "messages" => Gen.Frequency((4, Message.Array[0, 4].Select(m => "[" + string.Join(",", m) + "]")), (1, JsonValue)),
        "stop" => Gen.Frequency((2, JsonString), (2, JsonString.Array[0, 18].Select(s => "[" + string.Join(",", s) + "]")), (1, LongStop), (1, JsonValue)),
        "metadata" => Gen.Frequency((3, Gen.Select(JsonKey, JsonValue).Array[0, 5].Select(Obj)), (1, BigMetadata), (1, DeepNesting), (1, JsonValue)),
        "stream" or "n" => Gen.Frequency((2, Gen.OneOf("true", "false", "null", "1", "\"true\"", "1.0", "2")), (1, JsonValue)),
        _ => Gen.Frequency((4, JsonNumber), (1, JsonValue)),
    };

    /// <summary>Ids around the 256-character and 255-byte limits, in 1-, 2-, 3- and 4-byte characters.</summary>
    private static readonly Gen<string> LongId = Gen.Select(Gen.Int[60, 260], Gen.OneOf("a", "é", "€", "😀"))
        .Select((n, c) => "\"" + string.Concat(Enumerable.Repeat(c, c.Length == 2 ? n / 2 : n)) + "\"");

    private static readonly Gen<string> LongStop = Gen.Int[250, 260].Select(n => "[\"" + new string('s', n) + "\"]");

    /// <summary>Metadata around the 16 KiB limit.</summary>
    private static readonly Gen<string> BigMetadata = Gen.Int[16_350, 16_400].Select(n => "{\"pad\":\"" + new string('m', n) + "\"}");

    /// <summary>Nesting around the depth limit of 32.</summary>
    private static readonly Gen<string> DeepNesting = Gen.Int[25, 40].Select(n => string.Concat(Enumerable.Repeat("{\"a\":", n)) + "1" + new string('}', n));

    /// <summary>A job object: known fields with plausible or odd values, sometimes repeated, sometimes unknown ones.</summary>
    private static readonly Gen<string> JobObject = Gen.Select(
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

    private static readonly Gen<byte[]> AnyBody = Gen.Frequency(
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

    // ---- properties ----

    [Fact]
    public void AnyBody_ParserNeverThrows_JobOrCodedErrorWhoseResultSerializes()
    {
        var valid = 0;
        AnyBody.Sample(body =>
        {
            AssertDefinedOutcome(body);
            if (JobParser.Parse(body, Limits, FallbackId).IsValid) valid++;
        }, iter: Iter, threads: 1, print: b => Encoding.UTF8.GetString(b));
        // The generator must reach the accepting paths too, not only the refusals.
        Assert.True(valid > Iter / 50, $"only {valid} of {Iter} bodies were valid jobs");
    }

    internal static void AssertDefinedOutcome(byte[] body)
    {
        var parsed = JobParser.Parse(body, Limits, FallbackId);

        Assert.True(parsed.IsValid != (parsed.Error is not null), "exactly one of a job and an error");
        var id = parsed.Id ?? FallbackId;
        Assert.True(AmqpShortString.Fits(id), $"result id of {AmqpShortString.ByteCount(id)} bytes");
        if (parsed.Metadata is { } metadata)
        {
            Assert.Equal(JsonValueKind.Object, metadata.ValueKind);
            Assert.True(JobSerializer.IsWritable(metadata), "echoed metadata must be writable");
        }

        if (parsed.Error is { } error)
        {
            Assert.Contains(error.Code, Codes);
            Assert.False(string.IsNullOrWhiteSpace(error.Message));
            if (error.Code is ErrorCodes.InvalidField or ErrorCodes.MissingPrompt)
                Assert.False(string.IsNullOrEmpty(error.Field), $"{error.Code} without a field: {error.Message}");
        }
        else
        {
            AssertUsable(parsed.Job!);
        }

        var result = parsed.Error is { } e
            ? JobResult.Failed(id, e, metadata: parsed.Metadata)
            : new JobResult { Id = id, Status = JobStatus.Completed, Text = "t", FinishReason = FinishReasons.Length, Metadata = parsed.Metadata };
        var json = JobSerializer.Serialize(result);
        using var doc = JsonDocument.Parse(json);
        Assert.Equal(id, doc.RootElement.GetProperty("id").GetString());
        Assert.Equal(parsed.Metadata.HasValue, doc.RootElement.TryGetProperty("metadata", out _));
    }

    /// <summary>A job the parser accepts is one the engine can run as meant: no value it would misread.</summary>
    private static void AssertUsable(JobRequest job)
    {
        Assert.True((job.Prompt is { Length: > 0 }) != (job.Messages is { Count: > 0 }));
        if (job.Prompt is { } prompt) Assert.True(AmqpShortString.IsValidUtf16(prompt));
        foreach (var m in job.Messages ?? [])
        {
            Assert.Contains(m.Role, new[] { "system", "user", "assistant" });
            Assert.True(AmqpShortString.IsValidUtf16(m.Content));
        }
        foreach (var s in job.Stop ?? [])
            Assert.True(s.Length is > 0 and <= 256 && AmqpShortString.IsValidUtf16(s));
        Assert.InRange(job.MaxTokens!.Value, 1, Limits.MaxTokens);
        if (job.Temperature is { } t) Assert.True(t == 0 || (t >= 1e-6f * 0.99f && t <= 2), $"temperature {t}");
        if (job.TopP is { } p) Assert.True(p > 0 && p <= 1, $"top_p {p}");
        if (job.MinP is { } mp) Assert.True(mp >= 0 && mp <= 1, $"min_p {mp}");
        if (job.RepeatPenalty is { } r) Assert.True(r >= 1e-6f * 0.99f && r <= 10, $"repeat_penalty {r}");
        if (job.TopK is { } k) Assert.InRange(k, 0, 100_000);
        if (job.TimeoutMs is { } ms) Assert.InRange(ms, 1, 7 * 24 * 3600 * 1000);
        Assert.NotEqual(uint.MaxValue, job.Seed);
    }

    /// <summary>Valid Unicode text of any script, as a .NET string (never a lone surrogate).</summary>
    private static readonly Gen<string> UnicodeText = Gen.Frequency(
            (4, Gen.Char['a', 'z'].Select(c => c.ToString())),
            (2, Gen.Int[0, 0xFFFF].Where(c => !char.IsSurrogate((char)c)).Select(c => ((char)c).ToString())),
            (1, Gen.Int[0x10000, 0x10FFFF].Select(char.ConvertFromUtf32)))
        .Array[1, 12].Select(string.Concat);

    private static readonly JsonSerializerOptions Escaped = new() { Encoder = JavaScriptEncoder.Default };
    private static readonly JsonSerializerOptions Raw = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    [Fact]
    public void ValidJob_AnyUnicodeEscapedOrNot_ParsedExactly() =>
        Gen.Select(UnicodeText, UnicodeText, UnicodeText, UnicodeText, Gen.Bool).Sample((id, prompt, stop, meta, escape) =>
        {
            var body = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
            {
                ["id"] = id,
                ["prompt"] = prompt,
                ["stop"] = new[] { stop },
                ["metadata"] = new Dictionary<string, string> { [meta] = meta },
            }, escape ? Escaped : Raw);
            var parsed = JobParser.Parse(body, Limits, FallbackId);
            if (id.Any(char.IsControl) || AmqpShortString.ByteCount(id) > AmqpShortString.MaxBytes)
            {
                Assert.Equal("id", parsed.Error?.Field);
                return;
            }
            Assert.True(parsed.IsValid, parsed.Error?.Message);
            Assert.Equal(id, parsed.Job!.Id);
            Assert.Equal(prompt, parsed.Job.Prompt);
            Assert.Equal([stop], parsed.Job.Stop);
            Assert.Equal(meta, parsed.Job.Metadata!.Value.GetProperty(meta).GetString());
        }, iter: Iter, threads: 1);

    private static string Encode(string text) => JsonEncodedText.Encode(text, JavaScriptEncoder.UnsafeRelaxedJsonEscaping).Value;

    private static readonly string[] StringFields = ["id", "prompt", "stop[0]", "metadata.k", "messages[0].content", "messages[0].role", "model"];

    [Fact]
    public void LoneSurrogate_InAnyStringField_InvalidFieldNamingItAndAPublishableResult() =>
        Gen.Select(Gen.OneOf(StringFields), UnicodeText, Gen.Int[0, 12], Gen.Int[0xD800, 0xDFFF], Gen.Bool).Sample((field, text, at, unit, upper) =>
        {
            var escape = upper ? $"\\u{unit:X4}" : $"\\u{unit:x4}";
            // Split the text between two characters (never inside a surrogate pair) and put the lone one there.
            var cut = Math.Min(at, text.Length);
            if (cut > 0 && cut < text.Length && char.IsLowSurrogate(text[cut])) cut--;
            var bad = Encode(text[..cut]) + escape + Encode(text[cut..]);
            string S(string f) => f == field ? bad : "ok";
            var body = field.StartsWith("messages", StringComparison.Ordinal)
                ? "\"messages\":[{\"role\":\"" + (field == "messages[0].role" ? bad : "user") + "\",\"content\":\"" + S("messages[0].content") + "\"}]"
                : "\"prompt\":\"" + S("prompt") + "\",\"stop\":[\"" + S("stop[0]") + "\"]";
            var json = "{\"id\":\"" + S("id") + "\"," + body + ",\"metadata\":{\"k\":\"" + S("metadata.k") + "\"},\"model\":\"" + S("model") + "\"}";

            var parsed = JobParser.Parse(Encoding.UTF8.GetBytes(json), Limits, FallbackId);

            Assert.Equal(ErrorCodes.InvalidField, parsed.Error?.Code);
            Assert.Equal(field, parsed.Error!.Field);
            Assert.Contains("unpaired surrogate", parsed.Error.Message);
            Assert.Equal(field == "id" ? FallbackId : "ok", parsed.Id);
            Assert.Equal(field != "metadata.k", parsed.Metadata.HasValue);
            AssertDefinedOutcome(Encoding.UTF8.GetBytes(json));
        }, iter: Iter, threads: 1);

    [Fact]
    public void DuplicateKey_AtAnyLevel_InvalidFieldNamingIt() =>
        Gen.Select(Gen.OneOf(KnownKeys), Gen.Int[0, 2], JsonNumber, JsonNumber).Sample((key, level, a, b) =>
        {
            var pair = $"\"{key}\":{a},\"{key}\":{b}";
            var (json, field) = level switch
            {
                0 => ($$"""{"prompt":"x",{{pair}}}""", key),
                1 => ("{\"prompt\":\"x\",\"metadata\":{" + pair + "}}", "metadata." + key),
                _ => ("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{" + pair + "}]}", "messages[1]." + key),
            };
            if (key == "prompt" && level == 0) json = "{" + pair + "}";
            var parsed = JobParser.Parse(json, Limits, FallbackId);
            Assert.Equal(ErrorCodes.InvalidField, parsed.Error?.Code);
            Assert.Equal(field, parsed.Error!.Field);
            AssertDefinedOutcome(Encoding.UTF8.GetBytes(json));
        }, iter: Iter, threads: 1);
}
