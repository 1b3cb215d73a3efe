using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

// The engine tests load models and spin llama.cpp threads: on a 2-core machine running them in parallel only adds noise.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace QueueWorker.Inference.Tests;

/// <summary>The real model files. A missing file fails the test with the places searched.</summary>
internal static class TestModels
{
    public static string Stories260K => Find("stories260K.gguf");
    public static string Llama2TinyRandom => Find("llama-2-tiny-random.gguf");

    private static string Find(string file)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            foreach (var candidate in new[] { Path.Combine(dir.FullName, "shared", "models", file), Path.Combine(dir.FullName, "models", file) })
            {
                if (File.Exists(candidate)) return candidate;
            }
        }
        throw new FileNotFoundException($"Test model {file} not found in shared/models/ or models/ above {AppContext.BaseDirectory}.");
    }

    public static InferenceOptions Options(int slots = 4, int contextSize = 1024, int maxTokens = 256, bool prefixReuse = true, int batchSize = 512) => new()
    {
        Slots = slots,
        ContextSize = contextSize,
        BatchSize = Math.Min(batchSize, contextSize),
        MaxTokens = maxTokens,
        DefaultMaxTokens = Math.Min(64, maxTokens),
        PrefixReuse = prefixReuse,
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
