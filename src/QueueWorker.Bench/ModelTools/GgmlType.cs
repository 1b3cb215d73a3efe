namespace QueueWorker.Bench.ModelTools;

/// <summary>ggml tensor element types as numbered in GGUF files (ggml.h <c>enum ggml_type</c>).</summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
}

/// <summary>Block layout of the types whose byte size this code needs to know.</summary>
public static class GgmlTypeInfo
{
    /// <summary>(elements per block, bytes per block), from ggml's type traits.</summary>
    private static readonly Dictionary<GgmlType, (int BlockSize, int TypeSize)> Traits = new()
    {
        [GgmlType.F32] = (1, 4),
        [GgmlType.F16] = (1, 2),
        [GgmlType.BF16] = (1, 2),
        [GgmlType.F64] = (1, 8),
        [GgmlType.I8] = (1, 1),
        [GgmlType.I16] = (1, 2),
        [GgmlType.I32] = (1, 4),
        [GgmlType.I64] = (1, 8),
        [GgmlType.Q4_0] = (32, 18),
        [GgmlType.Q4_1] = (32, 20),
        [GgmlType.Q5_0] = (32, 22),
        [GgmlType.Q5_1] = (32, 24),
        [GgmlType.Q8_0] = (32, 34),
        [GgmlType.Q8_1] = (32, 36),
        [GgmlType.Q2_K] = (256, 84),
        [GgmlType.Q3_K] = (256, 110),
        [GgmlType.Q4_K] = (256, 144),
        [GgmlType.Q5_K] = (256, 176),
        [GgmlType.Q6_K] = (256, 210),
        [GgmlType.Q8_K] = (256, 292),
        [GgmlType.IQ4_NL] = (32, 18),
        [GgmlType.IQ4_XS] = (256, 136),
    };

    /// <summary>True when <see cref="ByteSize"/> knows the type.</summary>
    public static bool IsKnown(GgmlType type) => Traits.ContainsKey(type);

    /// <summary>Bytes of a tensor of <paramref name="type"/> with dims <paramref name="ne"/> (ne[0] = row length).</summary>
    public static ulong ByteSize(GgmlType type, IReadOnlyList<ulong> ne)
    {
        if (!Traits.TryGetValue(type, out var t))
        {
            throw new NotSupportedException($"ggml type {type} ({(uint)type}): block size unknown to this tool");
        }

        if (ne.Count == 0)
        {
            throw new ArgumentException("a tensor needs at least one dimension", nameof(ne));
        }

        if (ne[0] % (ulong)t.BlockSize != 0)
        {
            throw new ArgumentException($"row length ne0={ne[0]} is not a multiple of {type}'s block size {t.BlockSize}", nameof(ne));
        }

        ulong rows = 1;
        for (var i = 1; i < ne.Count; i++)
        {
            rows = checked(rows * ne[i]);
        }

        return checked(ne[0] / (ulong)t.BlockSize * (ulong)t.TypeSize * rows);
    }
}
