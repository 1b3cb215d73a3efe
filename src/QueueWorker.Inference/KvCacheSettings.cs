using LLama.Native;

namespace QueueWorker.Inference;

/// <summary>
/// The KV cache and attention settings (<c>Inference:TypeK</c>, <c>Inference:TypeV</c>, <c>Inference:FlashAttention</c>)
/// as llama.cpp values. One place for the names the configuration accepts and the rules between them.
/// </summary>
public static class KvCacheSettings
{
    /// <summary>The cache types accepted, with their size in bytes per element (blocks of 32: q8_0 34 bytes, q4_0 18).</summary>
    public static IReadOnlyDictionary<string, (GGMLType Type, double BytesPerElement)> Types { get; } =
        new Dictionary<string, (GGMLType, double)>(StringComparer.OrdinalIgnoreCase)
        {
            ["f16"] = (GGMLType.GGML_TYPE_F16, 2.0),
            ["q8_0"] = (GGMLType.GGML_TYPE_Q8_0, 34.0 / 32),
            ["q4_0"] = (GGMLType.GGML_TYPE_Q4_0, 18.0 / 32),
        };

    /// <summary>LLamaSharp's <c>ModelParams.FlashAttention</c>: null leaves llama.cpp's automatic choice.</summary>
    public static IReadOnlyDictionary<string, bool?> FlashAttentionModes { get; } =
        new Dictionary<string, bool?>(StringComparer.OrdinalIgnoreCase)
        {
            ["auto"] = null,
            ["on"] = true,
            ["off"] = false,
        };

    /// <summary>The rules, as messages naming the keys (empty when the settings are valid).</summary>
    public static IEnumerable<string> Validate(InferenceOptions o)
    {
        const string S = InferenceOptions.Section;
        var names = string.Join(", ", Types.Keys);
        if (!Types.ContainsKey(o.TypeK ?? ""))
            yield return $"{S}:TypeK = '{o.TypeK}' is not a KV cache type: use one of {names}.";
        if (!Types.ContainsKey(o.TypeV ?? ""))
            yield return $"{S}:TypeV = '{o.TypeV}' is not a KV cache type: use one of {names}.";
        if (!FlashAttentionModes.ContainsKey(o.FlashAttention ?? ""))
            yield return $"{S}:FlashAttention = '{o.FlashAttention}' must be auto, on or off.";
        // llama.cpp refuses to create such a context ("quantized V cache requires flash_attn"): say so at start, by key.
        if (Types.TryGetValue(o.TypeV ?? "", out var v) && v.Type != GGMLType.GGML_TYPE_F16
            && string.Equals(o.FlashAttention, "off", StringComparison.OrdinalIgnoreCase))
            yield return $"{S}:TypeV = {o.TypeV} needs flash attention, but {S}:FlashAttention = off: set {S}:FlashAttention to auto or on, or {S}:TypeV to f16.";
    }

    /// <summary>KV cache bytes of <paramref name="cells"/> cells: per layer, K and V of every KV head.</summary>
    public static double Bytes(int cells, int layers, int kvEmbedding, string typeK, string typeV) =>
        (double)cells * layers * kvEmbedding * (Types[typeK].BytesPerElement + Types[typeV].BytesPerElement);

    /// <summary>
    /// The rule only the loaded model can answer: a quantized cache stores each head's row in blocks of 32 values, so the
    /// head size must be a multiple of 32 (llama.cpp aborts the whole process otherwise). Null when the settings fit.
    /// </summary>
    public static string? CheckModel(InferenceOptions o, IReadOnlyDictionary<string, string> metadata)
    {
        ArgumentNullException.ThrowIfNull(o);
        ArgumentNullException.ThrowIfNull(metadata);
        if (Types[o.TypeK].Type == GGMLType.GGML_TYPE_F16 && Types[o.TypeV].Type == GGMLType.GGML_TYPE_F16) return null;
        var arch = metadata.TryGetValue("general.architecture", out var a) ? a : "llama";
        int Read(string key) => metadata.TryGetValue($"{arch}.{key}", out var v)
            && int.TryParse(v, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : 0;
        var heads = Read("attention.head_count");
        var headK = Read("attention.key_length") is > 0 and var k ? k : heads > 0 ? Read("embedding_length") / heads : 0;
        var headV = Read("attention.value_length") is > 0 and var v ? v : headK;
        const string S = InferenceOptions.Section;
        if (Types[o.TypeK].Type != GGMLType.GGML_TYPE_F16 && headK % 32 != 0)
            return $"{S}:TypeK = {o.TypeK} needs attention heads of a multiple of 32 values, but this model's K heads have {headK}: use {S}:TypeK = f16.";
        if (Types[o.TypeV].Type != GGMLType.GGML_TYPE_F16 && headV % 32 != 0)
            return $"{S}:TypeV = {o.TypeV} needs attention heads of a multiple of 32 values, but this model's V heads have {headV}: use {S}:TypeV = f16.";
        return null;
    }
}
