using LLama.Native;

namespace QueueWorker.Bench.ModelTools;

/// <summary>A weight format <c>qwbench model synth</c> can produce, by its llama.cpp name.</summary>
public sealed record QuantType(string Name, LLamaFtype Ftype, string Description)
{
    public static IReadOnlyList<QuantType> All { get; } =
    [
        new("q3_k_m", LLamaFtype.MOSTLY_Q3_K_M, "3-bit k-quant, mixed (the seed's \"Q3\")"),
        new("q4_0", LLamaFtype.MOSTLY_Q4_0, "4-bit, plain blocks of 32"),
        new("q4_k_m", LLamaFtype.MOSTLY_Q4_K_M, "4-bit k-quant, mixed"),
        new("q8_0", LLamaFtype.MOSTLY_Q8_0, "8-bit (the seed's \"int8\")"),
        new("f16", LLamaFtype.MOSTLY_F16, "16-bit floats, unquantized"),
    ];

    public static QuantType Get(string name) =>
        All.FirstOrDefault(q => string.Equals(q.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"unknown quantization '{name}'; known: {string.Join(", ", All.Select(q => q.Name))}");

    public bool IsF16 => Ftype == LLamaFtype.MOSTLY_F16;
}
