using QueueWorker.Bench.ModelTools;

namespace QueueWorker.Bench.Tests;

[Trait("Category", "Integration")]
public sealed class GgufRoundTripTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task WriteThenRead_EveryValueTypeAndTensor_RoundTrips()
    {
        var path = _dir.File("all.gguf");
        var metadata = new List<KeyValuePair<string, GgufValue>>
        {
            new("t.u8", GgufValue.UInt8(200)),
            new("t.i8", GgufValue.Int8(-100)),
            new("t.u16", GgufValue.UInt16(60000)),
            new("t.i16", GgufValue.Int16(-30000)),
            new("t.u32", GgufValue.UInt32(4_000_000_000)),
            new("t.i32", GgufValue.Int32(-2_000_000_000)),
            new("t.f32", GgufValue.Float32(1e-5f)),
            new("t.bool", GgufValue.Bool(true)),
            new("t.str", GgufValue.String("héllo ▁wörld <s>")),
            new("t.u64", GgufValue.UInt64(ulong.MaxValue - 1)),
            new("t.i64", GgufValue.Int64(long.MinValue + 1)),
            new("t.f64", GgufValue.Float64(Math.PI)),
            new("t.strs", GgufValue.StringArray("<unk>", "<s>", "", "▁the")),
            new("t.f32s", GgufValue.Float32Array(0f, -1.5f, float.MaxValue)),
            new("t.i32s", GgufValue.Int32Array(1, 2, 3)),
            new("t.empty", GgufValue.Int32Array()),
            new("t.nested", GgufValue.Array(GgufValueType.Array, new[] { GgufValue.Int32Array(1, 2), GgufValue.StringArray("x") })),
        };

        var f32 = Enumerable.Range(0, 5).SelectMany(i => BitConverter.GetBytes(i * 0.5f)).ToArray(); // 20 bytes: needs padding
        var f16 = Enumerable.Range(0, 64 * 3).SelectMany(i => BitConverter.GetBytes((Half)(i / 7f))).ToArray();
        var q40 = Enumerable.Range(0, 18 * 4).Select(i => (byte)i).ToArray(); // 2 rows of 64 = 4 blocks

        await using (var stream = File.Create(path))
        {
            var w = new GgufWriter(stream);
            foreach (var kv in metadata)
            {
                w.AddMetadata(kv.Key, kv.Value);
            }

            w.AddTensor("a.f32", GgmlType.F32, 5);
            w.AddTensor("b.f16", GgmlType.F16, 64, 3);
            w.AddTensor("c.q4_0", GgmlType.Q4_0, 64, 2);
            await w.WriteHeaderAsync(CancellationToken.None);
            await w.WriteTensorDataAsync(f32, CancellationToken.None);
            await w.WriteTensorDataAsync(f16.AsMemory(0, 100), CancellationToken.None);
            await w.WriteTensorDataAsync(f16.AsMemory(100), CancellationToken.None);
            await w.WriteTensorDataAsync(q40, CancellationToken.None);
            await w.FinishAsync(CancellationToken.None);
        }

        var file = GgufReader.Read(path);
        Assert.Equal(3u, file.Version);
        Assert.Equal(32u, file.Alignment);
        Assert.Equal(0, file.DataOffset % 32);
        Assert.Equal(GgufValue.UInt32(32), file.Require(GgufWriter.AlignmentKey));
        Assert.Equal(metadata, file.Metadata.Where(kv => kv.Key != GgufWriter.AlignmentKey));

        Assert.Equal(["a.f32", "b.f16", "c.q4_0"], file.Tensors.Select(t => t.Name));
        Assert.Equal([5UL], file.Tensors[0].Dims);
        Assert.Equal([64UL, 3UL], file.Tensors[1].Dims);
        Assert.Equal(GgmlType.Q4_0, file.Tensors[2].Type);
        Assert.All(file.Tensors, t => Assert.Equal(0UL, t.Offset % 32));
        Assert.Equal(f32, GgufReader.ReadTensorData(path, file, file.Tensors[0]));
        Assert.Equal(f16, GgufReader.ReadTensorData(path, file, file.Tensors[1]));
        Assert.Equal(q40, GgufReader.ReadTensorData(path, file, file.Tensors[2]));
        Assert.Equal(5UL + 192 + 128, file.ParameterCount);
        // Every tensor, the last included, is padded to the alignment (as ggml's own writer does).
        Assert.Equal((file.DataOffset + (long)file.Tensors[2].Offset + q40.Length + 31) / 32 * 32, new FileInfo(path).Length);
    }

    [Fact]
    public async Task WriteTensorData_ChunkPastTensorEnd_Throws()
    {
        await using var stream = new MemoryStream();
        var w = new GgufWriter(stream);
        w.AddTensor("x", GgmlType.F32, 4);
        await w.WriteHeaderAsync(CancellationToken.None);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => w.WriteTensorDataAsync(new byte[20], CancellationToken.None));
        Assert.Contains("'x' has 16 bytes left", e.Message);
    }

    [Fact]
    public async Task FinishAsync_TensorIncomplete_ThrowsNamingTheTensor()
    {
        await using var stream = new MemoryStream();
        var w = new GgufWriter(stream);
        w.AddTensor("x", GgmlType.F32, 4);
        await w.WriteHeaderAsync(CancellationToken.None);
        await w.WriteTensorDataAsync(new byte[8], CancellationToken.None);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => w.FinishAsync(CancellationToken.None));
        Assert.Contains("'x' is incomplete: 8 of 16", e.Message);
    }

    [Fact]
    public void AddMetadata_DuplicateKey_Throws()
    {
        var w = new GgufWriter(new MemoryStream());
        w.AddMetadata("k", GgufValue.Bool(true));
        Assert.Throws<ArgumentException>(() => w.AddMetadata("k", GgufValue.Bool(false)));
    }

    [Fact]
    public void AddTensor_RowNotMultipleOfBlock_Throws()
    {
        var w = new GgufWriter(new MemoryStream());
        var e = Assert.Throws<ArgumentException>(() => w.AddTensor("q", GgmlType.Q4_0, 48, 2));
        Assert.Contains("block size 32", e.Message);
    }

    [Fact]
    public void Read_NotGguf_ThrowsInvalidData()
    {
        var e = Assert.Throws<InvalidDataException>(() => GgufReader.Read(new MemoryStream("GGML0000000000000000000000"u8.ToArray())));
        Assert.Contains("not a GGUF file", e.Message);
    }

    [Fact]
    public void Read_LlamaTinyRandom_HasLlamaVocabularyAndTensors()
    {
        var file = GgufReader.Read(TestModels.TinyRandom);
        Assert.Equal("llama", file.Require("general.architecture").AsString());
        Assert.Equal("llama", file.Require("tokenizer.ggml.model").AsString());
        var tokens = (string[])file.Require("tokenizer.ggml.tokens").AsArray();
        Assert.Equal(32000, tokens.Length);
        Assert.Equal("<s>", tokens[1]);
        Assert.Equal(1, file.Require("tokenizer.ggml.bos_token_id").AsInt64());
        Assert.Equal(12, file.Tensors.Count);
        Assert.Equal([8UL, 32000UL], file.Tensors.Single(t => t.Name == "token_embd.weight").Dims);
        // The last tensor ends exactly at the end of the file.
        var last = file.Tensors.MaxBy(t => t.Offset)!;
        Assert.Equal(new FileInfo(TestModels.TinyRandom).Length, file.DataOffset + (long)(last.Offset + last.ByteSize));
    }

    [Fact]
    public async Task Rewrite_LlamaTinyRandomHeaderAndData_ProducesIdenticalBytes()
    {
        // Writing back what the reader read must reproduce the original file byte for byte.
        var source = TestModels.TinyRandom;
        var file = GgufReader.Read(source);
        var path = _dir.File("copy.gguf");
        await using (var stream = File.Create(path))
        {
            var w = new GgufWriter(stream, file.Alignment);
            foreach (var kv in file.Metadata.Where(kv => kv.Key != GgufWriter.AlignmentKey))
            {
                w.AddMetadata(kv.Key, kv.Value);
            }

            foreach (var t in file.Tensors)
            {
                var declared = w.AddTensor(t.Name, t.Type, [.. t.Dims]);
                Assert.Equal(t.Offset, declared.Offset);
            }

            await w.WriteHeaderAsync(CancellationToken.None);
            foreach (var t in file.Tensors)
            {
                await w.WriteTensorDataAsync(GgufReader.ReadTensorData(source, file, t), CancellationToken.None);
            }

            await w.FinishAsync(CancellationToken.None);
        }

        // The source has no general.alignment key; ours adds it, so compare from the data section on.
        var copy = GgufReader.Read(path);
        var original = await File.ReadAllBytesAsync(source);
        var written = await File.ReadAllBytesAsync(path);
        Assert.Equal(original.AsSpan((int)file.DataOffset).ToArray(), written.AsSpan((int)copy.DataOffset).ToArray());
        Assert.Equal(file.Metadata, copy.Metadata.Where(kv => kv.Key != GgufWriter.AlignmentKey));
    }
}
