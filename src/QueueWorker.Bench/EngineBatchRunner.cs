using System.Diagnostics;
using QueueWorker.Inference;

namespace QueueWorker.Bench;

/// <summary>
/// n jobs submitted at once to the worker's engine (<see cref="IInferenceEngine"/>: continuous batching
/// across slots, its own tokenization and sampling), greedy. Each job's latency is its own wall time from
/// submission to result. qwbench builds the engine as the worker does (<see cref="EngineHost"/>) and passes
/// a factory to <see cref="BenchRunner"/> to measure it beside <see cref="RawBatchRunner"/>.
/// </summary>
/// <param name="owner">Stopped and disposed with the runner (e.g. the host that runs the engine).</param>
public sealed class EngineBatchRunner(IInferenceEngine engine, BenchModel model, string name, int maxJobs, IAsyncDisposable? owner = null,
    string? method = null) : IBatchRunner
{
    public string Name { get; } = name;

    public string Method { get; } = method ?? "n concurrent GenerateAsync calls on the worker's engine (continuous batching: its own tokenization, admission and sampling), greedy.";

    public int MaxJobs { get; } = maxJobs;

    public async Task<BatchRunResult> RunAsync(int jobs, JobShape shape, int variant, CancellationToken cancellationToken)
    {
        var prompts = Enumerable.Range(0, jobs).Select(j => model.PromptText(shape.PromptTokens, variant * 16 + j)).ToList();
        var clock = Stopwatch.StartNew();
        var results = await Task.WhenAll(prompts.Select(async (prompt, j) =>
        {
            var result = await engine.GenerateAsync(new GenerationRequest
            {
                JobId = $"bench-{variant}-{j}",
                Prompt = prompt,
                MaxTokens = shape.GenTokens,
                Sampling = SamplingParams.Greedy,
            }, cancellationToken);
            return (Result: result, LatencyMs: clock.Elapsed.TotalMilliseconds);
        }));
        var wall = clock.Elapsed.TotalMilliseconds;
        // A random-weights model may emit end-of-generation early: count the tokens actually generated.
        return new BatchRunResult(jobs, (int)results.Average(r => r.Result.PromptTokens), results.Sum(r => r.Result.CompletionTokens), wall,
            results.Select(r => r.LatencyMs).ToList(), null, null);
    }

    public ValueTask DisposeAsync() => owner?.DisposeAsync() ?? ValueTask.CompletedTask;
}
