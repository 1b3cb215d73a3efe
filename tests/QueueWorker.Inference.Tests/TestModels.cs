using Microsoft.Extensions.Logging.Abstractions;

// The engine tests load models and spin llama.cpp threads: on a 2-core machine running them in parallel only adds noise.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace QueueWorker.Inference.Tests;

/// <summary>The real model files (found by QueueWorker.Testing's locator) and the engine set up on them.</summary>
internal static class TestModels
{
    public static string Stories260K => global::QueueWorker.Testing.TestModels.Stories260K;
    public static string Llama2TinyRandom => global::QueueWorker.Testing.TestModels.TinyRandom;

    public static InferenceOptions Options(int slots = 4, int contextSize = 1024, int maxTokens = 256, bool prefixReuse = true, int batchSize = 512, int promptCacheMb = 256) => new()
    {
        Slots = slots,
        ContextSize = contextSize,
        BatchSize = Math.Min(batchSize, contextSize),
        MaxTokens = maxTokens,
        DefaultMaxTokens = Math.Min(64, maxTokens),
        PrefixReuse = prefixReuse,
        PromptCacheMb = promptCacheMb,
    };

    public static async Task<LlamaEngine> StartAsync(InferenceOptions options, string? model = null, string? chatTemplate = null, TimeProvider? time = null)
    {
        var engine = new LlamaEngine(new ModelOptions { Path = model ?? Stories260K, ChatTemplate = chatTemplate }, options,
            NullLogger<LlamaEngine>.Instance, time);
        await engine.StartAsync(CancellationToken.None);
        return engine;
    }

    public static GenerationRequest Greedy(string prompt, int maxTokens, string? id = null) => new()
    {
        JobId = id ?? Guid.NewGuid().ToString("N"),
        Prompt = prompt,
        MaxTokens = maxTokens,
        Sampling = SamplingParams.Greedy,
    };
}
