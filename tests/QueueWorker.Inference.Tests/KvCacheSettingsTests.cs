using QueueWorker.Contracts;

namespace QueueWorker.Inference.Tests;

/// <summary>Inference:TypeK, TypeV and FlashAttention: validated by key at start.</summary>
[Trait("Category", "Unit")]
public sealed class KvCacheSettingsTests
{
    private static List<string> Errors(string typeK = "f16", string typeV = "f16", string fa = "auto") =>
        KvCacheSettings.Validate(new InferenceOptions { TypeK = typeK, TypeV = typeV, FlashAttention = fa }).ToList();

    [Theory]
    [InlineData("f16", "f16", "auto")]
    [InlineData("q8_0", "q8_0", "on")]
    [InlineData("Q4_0", "q4_0", "auto")]
    [InlineData("q8_0", "f16", "off")]
    public void Validate_SupportedCombination_NoError(string k, string v, string fa) => Assert.Empty(Errors(k, v, fa));

    [Fact]
    public void Validate_QuantizedVWithFlashAttentionOff_NamesBothKeys()
    {
        var error = Assert.Single(Errors(typeV: "q8_0", fa: "off"));
        Assert.Contains("Inference:TypeV = q8_0 needs flash attention", error);
        Assert.Contains("Inference:FlashAttention = off", error);
    }

    [Theory]
    [InlineData("q5_k", "f16", "auto", "Inference:TypeK = 'q5_k' is not a KV cache type: use one of f16, q8_0, q4_0.")]
    [InlineData("f16", "bf16", "auto", "Inference:TypeV = 'bf16' is not a KV cache type")]
    [InlineData("f16", "f16", "yes", "Inference:FlashAttention = 'yes' must be auto, on or off.")]
    public void Validate_UnknownValue_NamesKeyValueAndChoices(string k, string v, string fa, string expected) =>
        Assert.Contains(Errors(k, v, fa), e => e.StartsWith(expected, StringComparison.Ordinal));

    [Fact]
    public void Bytes_Q8Cache_IsAbout53PercentOfF16()
    {
        var f16 = KvCacheSettings.Bytes(2048, 22, 256, "f16", "f16");
        Assert.Equal(2048.0 * 22 * 256 * 4, f16);
        Assert.Equal(34.0 / 64, KvCacheSettings.Bytes(2048, 22, 256, "q8_0", "q8_0") / f16, 6);
    }
}

/// <summary>The settings on a real model: f16 with flash attention either way runs; a quantized cache on a model whose heads are not blocks of 32 is refused by key (llama.cpp would abort).</summary>
[Trait("Category", "Integration")]
public sealed class KvCacheEngineTests
{
    [Theory]
    [InlineData("on")]
    [InlineData("off")]
    public async Task GenerateAsync_F16CacheFlashAttention_GeneratesEveryToken(string fa)
    {
        var options = TestModels.Options(slots: 2);
        options.FlashAttention = fa;
        await using var engine = await TestModels.StartAsync(options);

        var result = await engine.GenerateAsync(TestModels.Greedy("Once upon a time", 16), CancellationToken.None);

        Assert.Equal(16, result.CompletionTokens);
        Assert.Equal(FinishReasons.Length, result.FinishReason);
    }

    [Fact]
    public async Task StartAsync_QuantizedCacheOnEightValueHeads_FailsNamingTypeK()
    {
        var options = TestModels.Options(slots: 2);
        options.TypeK = "q8_0";
        options.TypeV = "q8_0";
        options.FlashAttention = "on";

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => TestModels.StartAsync(options));

        Assert.Contains("Inference:TypeK = q8_0 needs attention heads of a multiple of 32 values, but this model's K heads have 8", ex.Message);
    }
}
