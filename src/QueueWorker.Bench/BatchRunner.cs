namespace QueueWorker.Bench;

/// <summary>What one batching measurement returns: n jobs started together.</summary>
public sealed record BatchRunResult(
    int Jobs,
    int PromptTokensPerJob,
    int CompletionTokens,
    double WallMs,
    IReadOnlyList<double> JobLatencyMs,
    double? PrefillMs,
    double? DecodeMs)
{
    public double AggregateTps => CompletionTokens / (WallMs / 1000);
}

/// <summary>
/// Runs n jobs at once. <see cref="RawBatchRunner"/> decodes them as n sequences of one context with
/// LLamaSharp directly; <see cref="EngineBatchRunner"/> submits them to the worker's IInferenceEngine (its
/// continuous-batching scheduler). BenchRunner measures both side by side.
/// </summary>
public interface IBatchRunner : IAsyncDisposable
{
    string Name { get; }

    /// <summary>How it runs the jobs (one sentence for the report's notes).</summary>
    string Method { get; }

    /// <summary>The most jobs it can run at once.</summary>
    int MaxJobs { get; }

    Task<BatchRunResult> RunAsync(int jobs, JobShape shape, int variant, CancellationToken cancellationToken);
}

/// <summary>n sequences in one llama context, one decode per step for all of them (raw LLamaSharp).</summary>
public sealed class RawBatchRunner : IBatchRunner
{
    private readonly BenchModel _model;
    private readonly BenchContext _context;

    public RawBatchRunner(BenchModel model, int maxJobs, JobShape shape, int threads)
    {
        _model = model;
        var ctx = Math.Max(2048, RoundUp(maxJobs * (shape.PromptTokens + shape.GenTokens), 256));
        _context = new BenchContext(model, new ContextSpec(ctx, threads, maxJobs));
        MaxJobs = maxJobs;
    }

    public string Name => "raw LLamaSharp batched decode";

    public string Method => "n sequences of one context (unified KV cache), one decode per step for all of them; the prompts are prefilled first, all together.";

    public int MaxJobs { get; }

    public Task<BatchRunResult> RunAsync(int jobs, JobShape shape, int variant, CancellationToken cancellationToken)
    {
        var prompts = Enumerable.Range(0, jobs).Select(j => _model.Prompt(shape.PromptTokens, variant * 16 + j)).ToList();
        return Task.Run(() =>
        {
            var t = _context.Run(prompts, shape.GenTokens, cancellationToken);
            // All sequences start and finish together: each job's latency is the whole run.
            return new BatchRunResult(jobs, shape.PromptTokens, jobs * shape.GenTokens, t.TotalMs,
                Enumerable.Repeat(t.TotalMs, jobs).ToList(), t.PrefillMs, t.DecodeMs);
        }, cancellationToken);
    }

    public ValueTask DisposeAsync()
    {
        _context.Dispose();
        return ValueTask.CompletedTask;
    }

    internal static int RoundUp(int n, int multiple) => (n + multiple - 1) / multiple * multiple;
}
