using System.Text;

namespace QueueWorker.Bench.ModelTools;

/// <summary>
/// Writes a GGUF v3 file in one forward pass, so multi-gigabyte models stream to disk: declare all
/// metadata and tensors, <see cref="WriteHeaderAsync"/>, then each tensor's bytes in declaration order
/// (<see cref="WriteTensorDataAsync"/> in chunks), then <see cref="FinishAsync"/>.
/// Layout: magic, version, tensor count, kv count, kv pairs, tensor infos, padding to the alignment,
/// tensor data (each tensor padded to the alignment).
/// </summary>
public sealed class GgufWriter
{
    public const string AlignmentKey = "general.alignment";
    public const uint Version = 3;

    private readonly Stream _output;
    private readonly uint _alignment;
    private readonly List<KeyValuePair<string, GgufValue>> _metadata = [];
    private readonly List<GgufTensorInfo> _tensors = [];
    private readonly HashSet<string> _names = [];
    private ulong _nextOffset;
    private bool _headerWritten;
    private int _current;
    private ulong _writtenInCurrent;

    /// <param name="output">Receives the file; written forward only (need not be seekable).</param>
    /// <param name="alignment">Data alignment in bytes (a power of two); written as <c>general.alignment</c>.</param>
    public GgufWriter(Stream output, uint alignment = 32)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(alignment), alignment, "alignment must be a power of two");
        }

        _output = output;
        _alignment = alignment;
        _metadata.Add(new(AlignmentKey, GgufValue.UInt32(alignment)));
    }

    public IReadOnlyList<GgufTensorInfo> Tensors => _tensors;

    public void AddMetadata(string key, GgufValue value)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentNullException.ThrowIfNull(value);
        EnsureDeclaring();
        if (key == AlignmentKey)
        {
            throw new ArgumentException($"{AlignmentKey} is set by the constructor's alignment", nameof(key));
        }

        if (_metadata.Exists(kv => kv.Key == key))
        {
            throw new ArgumentException($"metadata key '{key}' added twice", nameof(key));
        }

        _metadata.Add(new(key, value));
    }

    /// <summary>Declares a tensor; <paramref name="dims"/> in ggml order (dims[0] = row length).</summary>
    public GgufTensorInfo AddTensor(string name, GgmlType type, params ulong[] dims)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        EnsureDeclaring();
        if (dims.Length is 0 or > 4)
        {
            throw new ArgumentException($"tensor '{name}' needs 1 to 4 dimensions, got {dims.Length}", nameof(dims));
        }

        if (!_names.Add(name))
        {
            throw new ArgumentException($"tensor '{name}' added twice", nameof(name));
        }

        var info = new GgufTensorInfo(name, dims.ToArray(), type, _nextOffset);
        _nextOffset = Align(checked(_nextOffset + info.ByteSize));
        _tensors.Add(info);
        return info;
    }

    /// <summary>Writes everything before the tensor data. No metadata or tensor may be added afterwards.</summary>
    public async Task WriteHeaderAsync(CancellationToken cancellationToken)
    {
        EnsureDeclaring();
        var header = new MemoryStream();
        using (var w = new BinaryWriter(header, Encoding.UTF8, leaveOpen: true))
        {
            w.Write("GGUF"u8);
            w.Write(Version);
            w.Write((ulong)_tensors.Count);
            w.Write((ulong)_metadata.Count);
            foreach (var kv in _metadata)
            {
                WriteString(w, kv.Key);
                w.Write((uint)kv.Value.Type);
                WriteValue(w, kv.Value);
            }

            foreach (var t in _tensors)
            {
                WriteString(w, t.Name);
                w.Write((uint)t.Dims.Count);
                foreach (var d in t.Dims)
                {
                    w.Write(d);
                }

                w.Write((uint)t.Type);
                w.Write(t.Offset);
            }

            WritePadding(w, (ulong)header.Length);
        }

        _headerWritten = true;
        header.Position = 0;
        await header.CopyToAsync(_output, cancellationToken).ConfigureAwait(false);
        SkipEmptyTensors();
    }

    /// <summary>Appends bytes of the current tensor; a chunk may not run past the tensor's end.</summary>
    public async Task WriteTensorDataAsync(ReadOnlyMemory<byte> chunk, CancellationToken cancellationToken)
    {
        if (!_headerWritten)
        {
            throw new InvalidOperationException("write the header before tensor data");
        }

        if (_current >= _tensors.Count)
        {
            throw new InvalidOperationException("every declared tensor is already written");
        }

        var t = _tensors[_current];
        var remaining = t.ByteSize - _writtenInCurrent;
        if ((ulong)chunk.Length > remaining)
        {
            throw new InvalidOperationException($"tensor '{t.Name}' has {remaining} bytes left, chunk has {chunk.Length}");
        }

        await _output.WriteAsync(chunk, cancellationToken).ConfigureAwait(false);
        _writtenInCurrent += (ulong)chunk.Length;
        if (_writtenInCurrent == t.ByteSize)
        {
            var pad = (int)(Align(t.ByteSize) - t.ByteSize);
            if (pad > 0)
            {
                await _output.WriteAsync(new byte[pad], cancellationToken).ConfigureAwait(false);
            }

            _current++;
            _writtenInCurrent = 0;
            SkipEmptyTensors();
        }
    }

    /// <summary>The tensor whose bytes are expected next, or null when all are written.</summary>
    public GgufTensorInfo? CurrentTensor => _headerWritten && _current < _tensors.Count ? _tensors[_current] : null;

    /// <summary>Checks every tensor was written in full and flushes.</summary>
    public async Task FinishAsync(CancellationToken cancellationToken)
    {
        if (!_headerWritten)
        {
            throw new InvalidOperationException("the header was never written");
        }

        if (_current < _tensors.Count)
        {
            var t = _tensors[_current];
            throw new InvalidOperationException($"tensor '{t.Name}' is incomplete: {_writtenInCurrent} of {t.ByteSize} bytes written");
        }

        await _output.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    private void SkipEmptyTensors()
    {
        while (_current < _tensors.Count && _tensors[_current].ByteSize == 0)
        {
            _current++;
        }
    }

    private void EnsureDeclaring()
    {
        if (_headerWritten)
        {
            throw new InvalidOperationException("the header is written: no more metadata or tensors can be declared");
        }
    }

    private ulong Align(ulong n) => (n + _alignment - 1) / _alignment * _alignment;

    private void WritePadding(BinaryWriter w, ulong position)
    {
        for (var i = position; i < Align(position); i++)
        {
            w.Write((byte)0);
        }
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteValue(BinaryWriter w, GgufValue v)
    {
        switch (v.Type)
        {
            case GgufValueType.Array:
                var items = v.AsArray();
                w.Write((uint)v.ElementType!.Value);
                w.Write((ulong)items.Length);
                foreach (var item in items)
                {
                    WriteScalar(w, v.ElementType.Value, item!);
                }

                break;
            default:
                WriteScalar(w, v.Type, v.Value);
                break;
        }
    }

    private static void WriteScalar(BinaryWriter w, GgufValueType type, object value)
    {
        switch (type)
        {
            case GgufValueType.UInt8: w.Write((byte)value); break;
            case GgufValueType.Int8: w.Write((sbyte)value); break;
            case GgufValueType.UInt16: w.Write((ushort)value); break;
            case GgufValueType.Int16: w.Write((short)value); break;
            case GgufValueType.UInt32: w.Write((uint)value); break;
            case GgufValueType.Int32: w.Write((int)value); break;
            case GgufValueType.Float32: w.Write((float)value); break;
            case GgufValueType.Bool: w.Write((bool)value ? (byte)1 : (byte)0); break;
            case GgufValueType.String: WriteString(w, (string)value); break;
            case GgufValueType.UInt64: w.Write((ulong)value); break;
            case GgufValueType.Int64: w.Write((long)value); break;
            case GgufValueType.Float64: w.Write((double)value); break;
            case GgufValueType.Array:
                var nested = (GgufValue)value;
                WriteValue(w, nested);
                break;
            default: throw new NotSupportedException($"GGUF value type {(uint)type} is unknown");
        }
    }
}
