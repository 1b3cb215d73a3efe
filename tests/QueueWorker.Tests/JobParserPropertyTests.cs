using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using CsCheck;
using QueueWorker.Contracts;
using static QueueWorker.Testing.JobBodyGen;

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
        if (job.Input is { } inputs)
        {
            // An embedding job: texts only, nothing of a completion.
            Assert.InRange(inputs.Count, 1, JobLimits.Default.MaxInputs);
            Assert.All(inputs, i => Assert.True(i.Length > 0 && AmqpShortString.IsValidUtf16(i)));
            Assert.True(job.Prompt is null && job.Messages is null && job.MaxTokens is null && job.Temperature is null && job.Stop is null);
            return;
        }
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
