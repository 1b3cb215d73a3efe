using System.Globalization;
using Microsoft.Extensions.Configuration;
using QueueWorker.Inference;
using QueueWorker.Processing;

namespace QueueWorker.Bench;

/// <summary>
/// The worker's engine built the way the worker builds it: a Generic Host with <c>AddInference()</c> and the same
/// configuration keys (<c>Model:Path</c>, <c>Inference:*</c>), its hosted services started. Only the keys given are
/// set; everything else keeps the engine's defaults (no appsettings.json, no environment), so a run is reproducible.
/// </summary>
public sealed class EngineHost : IAsyncDisposable
{
    private readonly InProcessEngineHost _host;

    private EngineHost(InProcessEngineHost host)
    {
        _host = host;
        Engine = host.Engine;
    }

    public IInferenceEngine Engine { get; }

    /// <summary>Builds and starts the host; a bad setting or model fails here with the engine's own message.</summary>
    public static async Task<EngineHost> StartAsync(IReadOnlyDictionary<string, string?> settings, CancellationToken cancellationToken)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        try
        {
            // No log provider: qw's terminal shows progress bars; the engine's log would tear through them.
            return new EngineHost(await InProcessEngineHost.StartAsync(configuration, EngineHostLogging.None, cancellationToken));
        }
        finally
        {
            // The engine routed llama.cpp's log to its (silent) logger: qw keeps its own ring of recent lines.
            LlamaNative.ReclaimLog();
        }
    }

    /// <summary>
    /// An <see cref="EngineBatchRunner"/> over a new engine with one slot per job of the largest batch, the bench's threads,
    /// and prefix reuse off: the raw runner prefills every prompt, so the engine must too for a like-for-like comparison.
    /// </summary>
    public static async Task<IBatchRunner> CreateBatchRunnerAsync(string modelPath, BenchModel model, BenchPlan plan, CancellationToken cancellationToken)
    {
        var slots = plan.BatchJobs.Max();
        // Admission counts prompt + max_tokens per job; re-tokenized prompt text can come out a few tokens longer.
        var contextSize = RawBatchRunner.RoundUp(Math.Max(2048, slots * (plan.Job.PromptTokens + plan.Job.GenTokens + 16)), 256);
        var inv = CultureInfo.InvariantCulture;
        var host = await StartAsync(new Dictionary<string, string?>
        {
            ["Model:Path"] = modelPath,
            ["Inference:Slots"] = slots.ToString(inv),
            ["Inference:Threads"] = plan.AllThreads.ToString(inv),
            ["Inference:BatchThreads"] = plan.AllThreads.ToString(inv),
            ["Inference:ContextSize"] = contextSize.ToString(inv),
            ["Inference:MaxTokens"] = Math.Max(512, plan.Job.GenTokens).ToString(inv),
            ["Inference:PrefixReuse"] = "false",
        }, cancellationToken);
        return new EngineBatchRunner(host.Engine, model, "worker engine", slots, host,
            $"n concurrent jobs on the worker's engine (LlamaEngine via AddInference: Inference:Slots = {slots}, context {contextSize}, " +
            $"{plan.AllThreads} threads, prefix reuse off), greedy: continuous batching with the worker's own tokenization, admission and sampling.");
    }

    public ValueTask DisposeAsync() => _host.DisposeAsync();
}
