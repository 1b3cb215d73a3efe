using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace QueueWorker.Inference.Tests;

[Trait("Category", "Integration")]
public sealed class HostingTests
{
    private static IHost Build(Dictionary<string, string?> settings)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddLogging();
        builder.AddInference();
        return builder.Build();
    }

    private static async Task<string> StartFailure(Dictionary<string, string?> settings)
    {
        using var host = Build(settings);
        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        return ex.Message;
    }

    [Fact]
    public async Task AddInference_ModelPathMissing_StartFailsWithOneLineNamingKeyAndValue()
    {
        var message = await StartFailure(new() { ["Model:Path"] = "/no/such/model.gguf" });

        Assert.Contains("Model:Path = '/no/such/model.gguf': the file does not exist", message);
        Assert.DoesNotContain('\n', message);
    }

    [Fact]
    public async Task AddInference_SlotsOutOfRange_NamesKeyAndValue()
    {
        var message = await StartFailure(new() { ["Model:Path"] = TestModels.Stories260K, ["Inference:Slots"] = "0" });

        Assert.Contains("Inference:Slots = 0 is out of range: must be from 1 to 64.", message);
    }

    [Fact]
    public async Task AddInference_QuantizedVCacheWithFlashAttentionOff_StartFailsNamingBothKeys()
    {
        var message = await StartFailure(new()
        {
            ["Model:Path"] = TestModels.Stories260K,
            ["Inference:TypeV"] = "q4_0",
            ["Inference:FlashAttention"] = "off",
        });

        Assert.Contains("Inference:TypeV = q4_0 needs flash attention, but Inference:FlashAttention = off", message);
    }

    [Theory]
    [InlineData("-1", "Inference:PromptCacheMb = -1 is out of range: must be from 0 to 1048576.")]
    [InlineData("1048576", "Inference:PromptCacheMb = 1048576 must be less than the memory available to the process")]
    public async Task AddInference_PromptCacheMbImpossible_StartFailsNamingTheKey(string value, string expected)
    {
        var message = await StartFailure(new() { ["Model:Path"] = TestModels.Stories260K, ["Inference:PromptCacheMb"] = value });

        Assert.Contains(expected, message);
    }

    [Theory]
    [InlineData("DefaultMaxTokens", "600", "Inference:DefaultMaxTokens = 600 must be at most Inference:MaxTokens = 512.")]
    [InlineData("MaxTokens", "2048", "Inference:MaxTokens = 2048 must be less than Inference:ContextSize = 2048")]
    [InlineData("BatchSize", "2", "Inference:BatchSize = 2 must be at least")]
    [InlineData("KvUnified", "false", "Inference:MaxTokens = 512 must be less than the cells of one slot: with Inference:KvUnified = false each slot owns " +
                                      "Inference:ContextSize / (Inference:Slots + Inference:PrioritySlots) = 2048 / 5, rounded up to a multiple of 256 as llama.cpp does: 512 cells; " +
                                      "raise ContextSize to at least 2880")]
    public async Task AddInference_CrossFieldRuleBroken_NamesKeysAndValues(string key, string value, string expected)
    {
        var message = await StartFailure(new()
        {
            ["Model:Path"] = TestModels.Stories260K,
            ["Inference:MaxTokens"] = "512",
            ["Inference:ContextSize"] = "2048",
            ["Inference:BatchSize"] = "512",
            [$"Inference:{key}"] = value,
        });

        Assert.Contains(expected, message);
    }

    [Fact]
    public async Task AddInference_ValidConfiguration_EngineReadyAfterStartAndStoppedAfterStop()
    {
        using var host = Build(new()
        {
            ["Model:Path"] = TestModels.Stories260K,
            ["Inference:Slots"] = "2",
            ["Inference:ContextSize"] = "512",
            ["Inference:BatchSize"] = "256",
            ["Inference:MaxTokens"] = "128",
            ["Inference:DefaultMaxTokens"] = "64",
        });
        var engine = host.Services.GetRequiredService<IInferenceEngine>();
        Assert.False(engine.IsReady);

        await host.StartAsync();
        Assert.True(engine.IsReady);
        Assert.Equal(2, engine.Info!.Slots);
        Assert.Equal(512, engine.Info.ContextSize);
        Assert.False(string.IsNullOrEmpty(engine.Info.ThreadsReason));
        var result = await engine.GenerateAsync(TestModels.Greedy("Once upon a time", 12), CancellationToken.None);
        Assert.Contains("little girl", result.Text);

        await host.StopAsync();
        Assert.False(engine.IsReady);
    }
}
