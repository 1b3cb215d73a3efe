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
}
