using System.Runtime.InteropServices;

namespace QueueWorker.Bench.ModelTools;

/// <summary>
/// Fast, seeded, reproducible random F16 weights: a table of 65536 normal samples (std <c>std</c>)
/// indexed by xorshift output, 4 weights per 64-bit draw. A 1.1B model's worth takes seconds; the
/// values only need to look like weights (speed depends on shapes and types, not on values).
/// </summary>
public sealed class RandomWeights
{
    private readonly ushort[] _table = new ushort[65536];
    private ulong _state;

    public RandomWeights(ulong seed, float std)
    {
        if (!(std > 0 && float.IsFinite(std)))
        {
            throw new ArgumentOutOfRangeException(nameof(std), std, "std must be a positive finite number");
        }

        _state = seed == 0 ? 0x9E3779B97F4A7C15UL : seed;
        for (var i = 0; i < _table.Length; i += 2)
        {
            // Box-Muller on two uniform (0,1] draws gives two independent normals.
            var u1 = (NextUInt64() >> 11) * (1.0 / (1UL << 53)) + double.Epsilon;
            var u2 = (NextUInt64() >> 11) * (1.0 / (1UL << 53));
            var r = Math.Sqrt(-2.0 * Math.Log(u1)) * std;
            _table[i] = BitConverter.HalfToUInt16Bits((Half)(r * Math.Cos(2 * Math.PI * u2)));
            _table[i + 1] = BitConverter.HalfToUInt16Bits((Half)(r * Math.Sin(2 * Math.PI * u2)));
        }
    }

    /// <summary>xorshift64*.</summary>
    public ulong NextUInt64()
    {
        var x = _state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        _state = x;
        return x * 0x2545F4914F6CDD1DUL;
    }

    /// <summary>Fills <paramref name="destination"/> (an even number of bytes) with little-endian F16 weights.</summary>
    public void FillF16(Span<byte> destination)
    {
        if (destination.Length % 2 != 0)
        {
            throw new ArgumentException("F16 data needs an even number of bytes", nameof(destination));
        }

        var halves = MemoryMarshal.Cast<byte, ushort>(destination);
        var i = 0;
        for (; i + 4 <= halves.Length; i += 4)
        {
            var r = NextUInt64();
            halves[i] = _table[(int)(r & 0xFFFF)];
            halves[i + 1] = _table[(int)((r >> 16) & 0xFFFF)];
            halves[i + 2] = _table[(int)((r >> 32) & 0xFFFF)];
            halves[i + 3] = _table[(int)(r >> 48)];
        }

        for (; i < halves.Length; i++)
        {
            halves[i] = _table[(int)(NextUInt64() >> 48)];
        }
    }
}
