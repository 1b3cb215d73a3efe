using System.Collections;
using System.Globalization;

namespace QueueWorker.Bench.ModelTools;

/// <summary>Value types of GGUF metadata (gguf.h <c>enum gguf_type</c>).</summary>
public enum GgufValueType : uint
{
    UInt8 = 0,
    Int8 = 1,
    UInt16 = 2,
    Int16 = 3,
    UInt32 = 4,
    Int32 = 5,
    Float32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    UInt64 = 10,
    Int64 = 11,
    Float64 = 12,
}

/// <summary>
/// One typed GGUF metadata value. Scalars hold the boxed CLR value (byte, sbyte, ushort, short, uint,
/// int, float, bool, string, ulong, long, double); arrays hold a CLR array of the element's type
/// (<c>string[]</c>, <c>float[]</c>, ...; nested arrays as <c>GgufValue[]</c>).
/// </summary>
public sealed class GgufValue : IEquatable<GgufValue>
{
    private GgufValue(GgufValueType type, GgufValueType? elementType, object value)
    {
        Type = type;
        ElementType = elementType;
        Value = value;
    }

    public GgufValueType Type { get; }

    /// <summary>The element type when <see cref="Type"/> is <see cref="GgufValueType.Array"/>.</summary>
    public GgufValueType? ElementType { get; }

    public object Value { get; }

    public static GgufValue UInt8(byte v) => new(GgufValueType.UInt8, null, v);
    public static GgufValue Int8(sbyte v) => new(GgufValueType.Int8, null, v);
    public static GgufValue UInt16(ushort v) => new(GgufValueType.UInt16, null, v);
    public static GgufValue Int16(short v) => new(GgufValueType.Int16, null, v);
    public static GgufValue UInt32(uint v) => new(GgufValueType.UInt32, null, v);
    public static GgufValue Int32(int v) => new(GgufValueType.Int32, null, v);
    public static GgufValue Float32(float v) => new(GgufValueType.Float32, null, v);
    public static GgufValue Bool(bool v) => new(GgufValueType.Bool, null, v);
    public static GgufValue String(string v) => new(GgufValueType.String, null, v ?? throw new ArgumentNullException(nameof(v)));
    public static GgufValue UInt64(ulong v) => new(GgufValueType.UInt64, null, v);
    public static GgufValue Int64(long v) => new(GgufValueType.Int64, null, v);
    public static GgufValue Float64(double v) => new(GgufValueType.Float64, null, v);

    /// <summary>An array; <paramref name="items"/> must be a CLR array matching <paramref name="elementType"/>.</summary>
    public static GgufValue Array(GgufValueType elementType, System.Array items)
    {
        ArgumentNullException.ThrowIfNull(items);
        var expected = ClrType(elementType);
        if (items.GetType().GetElementType() != expected)
        {
            throw new ArgumentException($"a GGUF array of {elementType} needs a {expected.Name}[], got {items.GetType().Name}", nameof(items));
        }

        return new GgufValue(GgufValueType.Array, elementType, items);
    }

    public static GgufValue StringArray(params string[] items) => Array(GgufValueType.String, items);
    public static GgufValue Float32Array(params float[] items) => Array(GgufValueType.Float32, items);
    public static GgufValue Int32Array(params int[] items) => Array(GgufValueType.Int32, items);

    /// <summary>The CLR type that holds one value of <paramref name="type"/>.</summary>
    public static Type ClrType(GgufValueType type) => type switch
    {
        GgufValueType.UInt8 => typeof(byte),
        GgufValueType.Int8 => typeof(sbyte),
        GgufValueType.UInt16 => typeof(ushort),
        GgufValueType.Int16 => typeof(short),
        GgufValueType.UInt32 => typeof(uint),
        GgufValueType.Int32 => typeof(int),
        GgufValueType.Float32 => typeof(float),
        GgufValueType.Bool => typeof(bool),
        GgufValueType.String => typeof(string),
        GgufValueType.Array => typeof(GgufValue),
        GgufValueType.UInt64 => typeof(ulong),
        GgufValueType.Int64 => typeof(long),
        GgufValueType.Float64 => typeof(double),
        _ => throw new NotSupportedException($"GGUF value type {(uint)type} is unknown"),
    };

    public string AsString() => Value as string ?? throw Mismatch("string");

    public System.Array AsArray() => Value as System.Array ?? throw Mismatch("array");

    /// <summary>Any integer scalar as a 64-bit signed value.</summary>
    public long AsInt64() => Value switch
    {
        byte v => v,
        sbyte v => v,
        ushort v => v,
        short v => v,
        uint v => v,
        int v => v,
        ulong v => checked((long)v),
        long v => v,
        _ => throw Mismatch("integer"),
    };

    private InvalidOperationException Mismatch(string wanted) =>
        new($"GGUF value of type {Type} is not a {wanted}");

    public bool Equals(GgufValue? other)
    {
        if (other is null || other.Type != Type || other.ElementType != ElementType)
        {
            return false;
        }

        if (Value is System.Array a && other.Value is System.Array b)
        {
            return StructuralComparisons.StructuralEqualityComparer.Equals(a, b);
        }

        return Value.Equals(other.Value);
    }

    public override bool Equals(object? obj) => Equals(obj as GgufValue);

    public override int GetHashCode() => HashCode.Combine(Type, ElementType, Value is System.Array a ? a.Length : Value.GetHashCode());

    public override string ToString() => Value switch
    {
        System.Array a => $"[{ElementType} x {a.Length}]",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => Value.ToString() ?? "",
    };
}
