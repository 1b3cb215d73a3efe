using QueueWorker.Bench.ModelTools;

namespace QueueWorker.Bench.Tests;

/// <summary>Synthesizes the llama-micro preset once (a few MB) and checks it as llama.cpp would use it.</summary>
public sealed class MicroModelFixture : IAsyncLifetime
{
    private readonly TempDir _dir = new();

    public string F16Path => _dir.File("micro-f16.gguf");
    public string Q40Path => _dir.File("micro-q4_0.gguf");
    public SynthesisResult F16 { get; private set; } = null!;
    public SynthesisResult Q40 { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var preset = ModelPreset.Get("llama-micro");
        F16 = await SyntheticModel.CreateAsync(Options(preset, QuantType.Get("f16"), F16Path), null, CancellationToken.None);
        Q40 = await SyntheticModel.CreateAsync(Options(preset, QuantType.Get("q4_0"), Q40Path), null, CancellationToken.None);
    }

    public Task DisposeAsync()
    {
        _dir.Dispose();
        return Task.CompletedTask;
    }

    private static SynthesisOptions Options(ModelPreset preset, QuantType quant, string path) => new()
    {
        Preset = preset,
        Quant = quant,
        OutputPath = path,
        TokenizerFrom = TestModels.TinyRandom,
        Threads = 2,
    };
}

[Trait("Category", "Integration")]
public sealed class SyntheticModelTests(MicroModelFixture micro) : IClassFixture<MicroModelFixture>
{
    [Fact]
    public void CreateAsync_F16_HasThePresetsShapesAndLlamaTensorNames()
    {
        var preset = ModelPreset.Get("llama-micro");
        var file = GgufReader.Read(micro.F16Path);
        Assert.Equal((ulong)preset.ParameterCount, file.ParameterCount);
        Assert.Equal(micro.F16.Parameters, file.ParameterCount);
        Assert.Equal(2 + 9 * preset.Layers + 1, file.Tensors.Count);
        var t = file.Tensors.ToDictionary(x => x.Name);
        Assert.Equal([64UL, 32000UL], t["token_embd.weight"].Dims);
        Assert.Equal([64UL, 32000UL], t["output.weight"].Dims);
        Assert.Equal([64UL, 32UL], t["blk.1.attn_k.weight"].Dims); // 2 KV heads x head dim 16
        Assert.Equal([128UL, 64UL], t["blk.0.ffn_down.weight"].Dims);
        Assert.Equal(GgmlType.F32, t["blk.0.attn_norm.weight"].Type);
        Assert.Equal(GgmlType.F16, t["blk.0.ffn_gate.weight"].Type);
        Assert.Equal("llama", file.Require("general.architecture").AsString());
        Assert.Equal(2, file.Require("llama.attention.head_count_kv").AsInt64());
        Assert.Equal(16, file.Require("llama.rope.dimension_count").AsInt64());
    }

    [Fact]
    public void CreateAsync_F16_CopiesEveryTokenizerKeyUnchanged()
    {
        var source = GgufReader.Read(TestModels.TinyRandom).Metadata.Where(kv => kv.Key.StartsWith("tokenizer.", StringComparison.Ordinal)).ToList();
        var written = GgufReader.Read(micro.F16Path).Metadata.Where(kv => kv.Key.StartsWith("tokenizer.", StringComparison.Ordinal)).ToList();
        Assert.True(source.Count >= 6);
        Assert.Equal(source, written);
    }

    [Fact]
    public void CreateAsync_F16_WeightsHaveTheRequestedSpread()
    {
        var file = GgufReader.Read(micro.F16Path);
        var bytes = GgufReader.ReadTensorData(micro.F16Path, file, file.Tensors.Single(t => t.Name == "blk.0.ffn_up.weight"));
        var values = Enumerable.Range(0, bytes.Length / 2).Select(i => (double)BitConverter.ToHalf(bytes, i * 2)).ToArray();
        var mean = values.Average();
        var std = Math.Sqrt(values.Select(v => (v - mean) * (v - mean)).Average());
        Assert.InRange(mean, -0.002, 0.002);
        Assert.InRange(std, 0.018, 0.022);
        var norm = GgufReader.ReadTensorData(micro.F16Path, file, file.Tensors.Single(t => t.Name == "output_norm.weight"));
        Assert.All(Enumerable.Range(0, norm.Length / 4), i => Assert.Equal(1f, BitConverter.ToSingle(norm, i * 4)));
    }

    [Fact]
    public void CreateAsync_Q4_0_IsQuantizedAndNoIntermediateIsLeft()
    {
        var file = GgufReader.Read(micro.Q40Path);
        Assert.Equal(GgmlType.Q4_0, file.Tensors.Single(t => t.Name == "blk.0.attn_q.weight").Type);
        Assert.Equal(2, file.Require("general.file_type").AsInt64()); // LLAMA_FTYPE_MOSTLY_Q4_0
        Assert.True(micro.Q40.FileBytes < micro.F16.FileBytes * 0.6, $"q4_0 {micro.Q40.FileBytes} B vs f16 {micro.F16.FileBytes} B");
        Assert.Equal([Path.GetFileName(micro.F16Path), Path.GetFileName(micro.Q40Path)],
            Directory.GetFiles(Path.GetDirectoryName(micro.Q40Path)!).Select(Path.GetFileName).Order());
    }

    [Theory]
    [InlineData("f16")]
    [InlineData("q4_0")]
    public async Task SmokeTest_MicroModel_LoadsInLLamaSharpAndGenerates(string quant)
    {
        var path = quant == "f16" ? micro.F16Path : micro.Q40Path;
        var result = await ModelSmokeTest.RunAsync(path, threads: 2, tokens: 6, CancellationToken.None);
        Assert.Equal((ulong)ModelPreset.Get("llama-micro").ParameterCount, result.Parameters);
        Assert.Equal(32000, result.VocabSize);
        Assert.Equal(6, result.Generated.Count);
        Assert.All(result.Generated, t => Assert.InRange(t, 0, 31999));
        // The borrowed tokenizer splits the prompt exactly as the model it came from does.
        var reference = await ModelSmokeTest.RunAsync(TestModels.TinyRandom, threads: 2, tokens: 1, CancellationToken.None);
        Assert.Equal(reference.PromptTokens, result.PromptTokens);
        Assert.True(result.PromptTokens > 5);
    }

    [Fact]
    public async Task CreateAsync_SameSeed_SameBytes()
    {
        using var dir = new TempDir();
        var options = new SynthesisOptions
        {
            Preset = ModelPreset.Get("llama-micro"),
            Quant = QuantType.Get("f16"),
            OutputPath = dir.File("again.gguf"),
            TokenizerFrom = TestModels.TinyRandom,
        };
        await SyntheticModel.CreateAsync(options, null, CancellationToken.None);
        Assert.Equal(await File.ReadAllBytesAsync(micro.F16Path), await File.ReadAllBytesAsync(options.OutputPath));
    }

    [Fact]
    public async Task CreateAsync_TokenizerVocabularyTooSmall_FailsNamingBothSizes()
    {
        using var dir = new TempDir();
        var options = new SynthesisOptions
        {
            Preset = ModelPreset.Get("llama-micro"),
            Quant = QuantType.Get("f16"),
            OutputPath = dir.File("x.gguf"),
            TokenizerFrom = TestModels.Find("stories260K.gguf"),
        };
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => SyntheticModel.CreateAsync(options, null, CancellationToken.None));
        Assert.Contains("512-token vocabulary", e.Message);
        Assert.Contains("needs 32000", e.Message);
        Assert.False(File.Exists(options.OutputPath));
    }
}

[Trait("Category", "Unit")]
public sealed class ModelPresetTests
{
    [Fact]
    public void ParameterCount_TinyLlama_Is1100048384()
    {
        // TinyLlama-1.1B's published count: 1,100,048,384.
        Assert.Equal(1_100_048_384, ModelPreset.Get("tinyllama-1.1b").ParameterCount);
    }

    [Fact]
    public void All_EveryPreset_IsValid()
    {
        Assert.All(ModelPreset.All, p => p.Validate());
    }

    [Fact]
    public void Get_UnknownName_ListsTheKnownOnes()
    {
        var e = Assert.Throws<ArgumentException>(() => ModelPreset.Get("gpt-5"));
        Assert.Contains("tinyllama-1.1b", e.Message);
    }

    [Fact]
    public void RandomWeights_SameSeed_SameSequence()
    {
        var a = new byte[1000];
        var b = new byte[1000];
        new RandomWeights(7, 0.02f).FillF16(a);
        new RandomWeights(7, 0.02f).FillF16(b);
        Assert.Equal(a, b);
        new RandomWeights(8, 0.02f).FillF16(b);
        Assert.NotEqual(a, b);
    }
}
