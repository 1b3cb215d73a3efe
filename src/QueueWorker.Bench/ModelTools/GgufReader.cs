using System.Text;

namespace QueueWorker.Bench.ModelTools;

/// <summary>One tensor's entry in a GGUF file. <see cref="Dims"/> are ggml order: Dims[0] (ne0) is the row length.</summary>
public sealed record GgufTensorInfo(string Name, IReadOnlyList<ulong> Dims, GgmlType Type, ulong Offset)
{
    public ulong ElementCount
    {
        get
        {
            ulong n = 1;
            foreach (var d in Dims)
            {
                n = checked(n * d);
            }

            return n;
        }
    }

    /// <summary>Bytes of the tensor's data; throws for types this tool does not know.</summary>
    public ulong ByteSize => GgmlTypeInfo.ByteSize(Type, Dims);
}

/// <summary>What a GGUF file's header says: metadata in file order, tensor infos, where the data starts.</summary>
public sealed class GgufFile
{
    public required uint Version { get; init; }
    public required IReadOnlyList<KeyValuePair<string, GgufValue>> Metadata { get; init; }
    public required IReadOnlyList<GgufTensorInfo> Tensors { get; init; }
    public required uint Alignment { get; init; }

    /// <summary>File offset of the tensor data section (tensor offsets are relative to it).</summary>
    public required long DataOffset { get; init; }

    public GgufValue? Get(string key)
    {
        foreach (var kv in Metadata)
        {
            if (kv.Key == key)
            {
                return kv.Value;
            }
        }

        return null;
    }

    public GgufValue Require(string key) =>
        Get(key) ?? throw new InvalidDataException($"GGUF metadata key '{key}' is missing");

    /// <summary>Sum of every tensor's element count: the model's parameter count.</summary>
    public ulong ParameterCount => Tensors.Aggregate(0UL, (sum, t) => checked(sum + t.ElementCount));
}

/// <summary>Reads GGUF headers (versions 2 and 3, little-endian): metadata and tensor infos, not the weights.</summary>
public static class GgufReader
{
    // Far above anything real, low enough that a corrupt length fails fast instead of exhausting memory.
    private const ulong MaxStringBytes = 1UL << 30;
    private const ulong MaxArrayItems = 1UL << 28;
    private const ulong MaxCount = 1UL << 24;

    public static GgufFile Read(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        try
        {
            return Read(stream);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"{path}: GGUF header is truncated", e);
        }
    }

    /// <summary>Reads the header from the start of <paramref name="stream"/>.</summary>
    public static GgufFile Read(Stream stream)
    {
        using var r = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        var magic = r.ReadBytes(4);
        if (magic.Length != 4 || magic[0] != 'G' || magic[1] != 'G' || magic[2] != 'U' || magic[3] != 'F')
        {
            throw new InvalidDataException("not a GGUF file: the first 4 bytes are not 'GGUF'");
        }

        var version = r.ReadUInt32();
        if (version is not (2 or 3))
        {
            throw new InvalidDataException($"GGUF version {version} is not supported (2 and 3 are)");
        }

        var tensorCount = CheckCount(r.ReadUInt64(), MaxCount, "tensor count");
        var kvCount = CheckCount(r.ReadUInt64(), MaxCount, "metadata count");

        var metadata = new List<KeyValuePair<string, GgufValue>>((int)kvCount);
        for (ulong i = 0; i < kvCount; i++)
        {
            var key = ReadString(r, "metadata key");
            var type = (GgufValueType)r.ReadUInt32();
            metadata.Add(new(key, ReadValue(r, type, key)));
        }

        var tensors = new List<GgufTensorInfo>((int)tensorCount);
        for (ulong i = 0; i < tensorCount; i++)
        {
            var name = ReadString(r, "tensor name");
            var nDims = r.ReadUInt32();
            if (nDims is 0 or > 4)
            {
                throw new InvalidDataException($"tensor '{name}' has {nDims} dimensions (1 to 4 allowed)");
            }

            var dims = new ulong[nDims];
            for (var d = 0; d < nDims; d++)
            {
                dims[d] = r.ReadUInt64();
            }

            var type = (GgmlType)r.ReadUInt32();
            var offset = r.ReadUInt64();
            tensors.Add(new GgufTensorInfo(name, dims, type, offset));
        }

        uint alignment = 32;
        foreach (var kv in metadata)
        {
            if (kv.Key == GgufWriter.AlignmentKey)
            {
                alignment = kv.Value.Value is uint a && a > 0 && (a & (a - 1)) == 0
                    ? a
                    : throw new InvalidDataException($"{GgufWriter.AlignmentKey} must be a power-of-two uint32, got {kv.Value}");
            }
        }

        var headerEnd = stream.Position;
        var dataOffset = (headerEnd + alignment - 1) / alignment * alignment;
        return new GgufFile
        {
            Version = version,
            Metadata = metadata,
            Tensors = tensors,
            Alignment = alignment,
            DataOffset = dataOffset,
        };
    }

    /// <summary>Reads one tensor's raw bytes (for tests and small tensors: the whole tensor is loaded).</summary>
    public static byte[] ReadTensorData(string path, GgufFile file, GgufTensorInfo tensor)
    {
        var size = tensor.ByteSize;
        if (size > int.MaxValue)
        {
            throw new NotSupportedException($"tensor '{tensor.Name}' is {size} bytes: too large to read whole");
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        stream.Position = checked(file.DataOffset + (long)tensor.Offset);
        var data = new byte[size];
        stream.ReadExactly(data);
        return data;
    }

    private static ulong CheckCount(ulong n, ulong max, string what) =>
        n <= max ? n : throw new InvalidDataException($"GGUF {what} {n} is implausible (more than {max})");

    private static string ReadString(BinaryReader r, string what)
    {
        var len = CheckCount(r.ReadUInt64(), MaxStringBytes, what + " length");
        var bytes = r.ReadBytes((int)len);
        if ((ulong)bytes.Length != len)
        {
            throw new EndOfStreamException();
        }

        return Encoding.UTF8.GetString(bytes);
    }

    private static GgufValue ReadValue(BinaryReader r, GgufValueType type, string key) => type switch
    {
        GgufValueType.UInt8 => GgufValue.UInt8(r.ReadByte()),
        GgufValueType.Int8 => GgufValue.Int8(r.ReadSByte()),
        GgufValueType.UInt16 => GgufValue.UInt16(r.ReadUInt16()),
        GgufValueType.Int16 => GgufValue.Int16(r.ReadInt16()),
        GgufValueType.UInt32 => GgufValue.UInt32(r.ReadUInt32()),
        GgufValueType.Int32 => GgufValue.Int32(r.ReadInt32()),
        GgufValueType.Float32 => GgufValue.Float32(r.ReadSingle()),
        GgufValueType.Bool => GgufValue.Bool(r.ReadByte() != 0),
        GgufValueType.String => GgufValue.String(ReadString(r, key)),
        GgufValueType.UInt64 => GgufValue.UInt64(r.ReadUInt64()),
        GgufValueType.Int64 => GgufValue.Int64(r.ReadInt64()),
        GgufValueType.Float64 => GgufValue.Float64(r.ReadDouble()),
        GgufValueType.Array => ReadArray(r, key),
        _ => throw new InvalidDataException($"metadata '{key}' has unknown value type {(uint)type}"),
    };

    private static GgufValue ReadArray(BinaryReader r, string key)
    {
        var elementType = (GgufValueType)r.ReadUInt32();
        var n = (int)CheckCount(r.ReadUInt64(), MaxArrayItems, $"array length of '{key}'");
        Array items = elementType switch
        {
            GgufValueType.UInt8 => Fill(n, r.ReadByte),
            GgufValueType.Int8 => Fill(n, r.ReadSByte),
            GgufValueType.UInt16 => Fill(n, r.ReadUInt16),
            GgufValueType.Int16 => Fill(n, r.ReadInt16),
            GgufValueType.UInt32 => Fill(n, r.ReadUInt32),
            GgufValueType.Int32 => Fill(n, r.ReadInt32),
            GgufValueType.Float32 => Fill(n, r.ReadSingle),
            GgufValueType.Bool => Fill(n, () => r.ReadByte() != 0),
            GgufValueType.String => Fill(n, () => ReadString(r, key)),
            GgufValueType.UInt64 => Fill(n, r.ReadUInt64),
            GgufValueType.Int64 => Fill(n, r.ReadInt64),
            GgufValueType.Float64 => Fill(n, r.ReadDouble),
            GgufValueType.Array => Fill(n, () => ReadArray(r, key)),
            _ => throw new InvalidDataException($"metadata '{key}' is an array of unknown type {(uint)elementType}"),
        };
        return GgufValue.Array(elementType, items);
    }

    private static T[] Fill<T>(int n, Func<T> read)
    {
        var a = new T[n];
        for (var i = 0; i < n; i++)
        {
            a[i] = read();
        }

        return a;
    }
}
