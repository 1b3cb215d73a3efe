using QueueWorker.Bench.ModelTools;
using QueueWorker.Inference;

namespace QueueWorker.Bench.Tests;

/// <summary>The whole bench, every section, on the 4M-parameter llama-micro preset: minutes become seconds.</summary>
[Trait("Category", "Integration")]
public sealed class BenchRunnerTests(MicroModelFixture micro) : IClassFixture<MicroModelFixture>
{
    private sealed class Recorder : IBenchProgress
    {
        public List<string> Events { get; } = [];
        public void BeginSection(string title, int steps) => Events.Add($"begin {title} {steps}");
        public void Step(string description) => Events.Add(description);
        public void EndSection() => Events.Add("end");
    }

    private sealed class FixtureModels(MicroModelFixture micro) : IModelProvider
    {
        public Task<string> GetAsync(QuantType quant, CancellationToken cancellationToken) =>
            Task.FromResult(quant.IsF16 ? micro.F16Path : quant.Name == "q4_0" ? micro.Q40Path : throw new InvalidOperationException($"no {quant.Name} in this test"));
    }

    /// <summary>
    /// Stands in for the worker's engine (not on this branch) to check EngineBatchRunner's accounting only:
    /// every job takes 20 ms and generates its max_tokens.
    /// </summary>
    private sealed class FixedDelayEngine : IInferenceEngine
    {
        public List<GenerationRequest> Requests { get; } = [];
        public EngineInfo? Info => null;
        public bool IsReady => true;
        public EngineStats Stats { get; } = new();

        public async Task<GenerationResult> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken)
        {
            lock (Requests)
            {
                Requests.Add(request);
            }

            await Task.Delay(20, cancellationToken);
            return new GenerationResult { Text = "x", FinishReason = "length", PromptTokens = 15, CompletionTokens = request.MaxTokens };
        }
    }

    [Fact]
    public async Task RunAsync_EverySection_MeasuresEveryConfiguration()
    {
        var plan = new BenchPlan(true, 1, 2, new JobShape(16, 4), 2, 2048, BenchRunner.DefaultSections, ["q4_0", "f16", "q8_0"], [1, 2, 4], 1);
        var progress = new Recorder();
        var engine = new FixedDelayEngine();
        var sections = await new BenchRunner(plan, micro.Q40Path, new FixtureModels(micro), progress,
            [(model, _) => Task.FromResult<IBatchRunner>(new EngineBatchRunner(engine, model, "engine", maxJobs: 2))]).RunAsync(CancellationToken.None);

        Assert.Equal([BenchRunner.Context, BenchRunner.Threads, BenchRunner.Mmap, BenchRunner.Quant, BenchRunner.Batch], sections.Select(s => s.Id));
        Assert.Equal(["2048", "512", "dynamic (256)"], sections[0].Configs.Select(c => c.Name));
        Assert.Equal(5, sections[1].Configs.Count);
        Assert.Equal("2 generation / 2 prompt", sections[1].Configs[1].Details["threads"]);
        Assert.Equal("1 generation / 1 prompt", sections[1].Configs[2].Details["threads"]);
        Assert.Equal(["mmap on", "mmap off"], sections[2].Configs.Select(c => c.Name));
        Assert.Equal(["q4_0", "f16"], sections[3].Configs.Select(c => c.Name));
        Assert.Contains(sections[3].Notes, n => n.StartsWith("q8_0: no model file", StringComparison.Ordinal));
        Assert.Equal(["1 job · raw LLamaSharp batched decode", "2 jobs · raw LLamaSharp batched decode", "4 jobs · raw LLamaSharp batched decode",
            "1 job · engine", "2 jobs · engine"], sections[4].Configs.Select(c => c.Name));

        // The engine got greedy jobs with real prompt text and max_tokens = the job's generated tokens.
        Assert.Equal((1 + 2) * (1 + 2), engine.Requests.Count);
        Assert.All(engine.Requests, r => Assert.True(r.Prompt!.Length > 20 && r.MaxTokens == 4 && r.Sampling.Temperature == 0));
        var engine2 = sections[4].Configs[4].Metrics;
        // The stand-in waits 20 ms per job; timers may fire a little early, so allow half of it.
        Assert.InRange(engine2[Metrics.JobMs].Median, 10, 2000);
        Assert.False(engine2.ContainsKey(Metrics.PrefillTps));

        // Verdicts judge the raw runner only.
        var batching = SeedClaims.Evaluate(sections, new BackendInfo("", "", "", [], false, "")).Single(v => v.Id == "batching");
        Assert.Contains("4 jobs · raw", batching.Claim);

        foreach (var config in sections.SelectMany(s => s.Configs))
        {
            foreach (var (metric, stat) in config.Metrics)
            {
                Assert.True(double.IsFinite(stat.Median) && stat.Median >= 0, $"{config.Name} {metric} = {stat.Median}");
            }
        }

        // Repetitions are recorded, warm-ups are not.
        Assert.All(sections.Where(s => s.Id != BenchRunner.Mmap).SelectMany(s => s.Configs), c => Assert.Equal(2, c.Metrics.First().Value.N));
        var f16 = sections[3].Configs[1];
        var q40 = sections[3].Configs[0];
        Assert.True(f16.Metrics[Metrics.FileMb].Median > q40.Metrics[Metrics.FileMb].Median);
        Assert.All(sections.SelectMany(s => s.Configs).Where(c => c.Metrics.ContainsKey(Metrics.JobMs)), c => Assert.True(c.Metrics[Metrics.JobMs].Median > 0));

        // 5 sections with progress, each step reported: (1 warm-up + 2 runs) x 5 threads configurations.
        Assert.Contains("begin threads 15", progress.Events);
        Assert.Equal(5, progress.Events.Count(e => e == "end"));
    }
}

[Trait("Category", "Integration")]
public sealed class ModelCacheTests
{
    [Fact]
    public async Task GetAsync_SecondCall_UsesTheCacheWithoutSynthesizing()
    {
        using var dir = new TempDir();
        var synthesized = 0;
        var cache = new ModelCache(dir.Path, ModelPreset.Get("llama-micro"), null, TestModels.TinyRandom, 42, 2,
            (options, ct) =>
            {
                synthesized++;
                return SyntheticModel.CreateAsync(options, null, ct);
            },
            _ => { });

        var q4 = await cache.GetAsync(QuantType.Get("q4_0"), CancellationToken.None);
        var q8 = await cache.GetAsync(QuantType.Get("q8_0"), CancellationToken.None);
        var again = await cache.GetAsync(QuantType.Get("q4_0"), CancellationToken.None);

        Assert.Equal(1, synthesized); // one F16 base, every format quantized from it
        Assert.Equal(q4, again);
        Assert.Equal(Path.Combine(dir.Path, "llama-micro-q4_0-seed42.gguf"), q4);
        Assert.Equal(GgmlType.Q8_0, GgufReader.Read(q8).Tensors.Single(t => t.Name == "blk.0.ffn_up.weight").Type);
        Assert.True(File.Exists(Path.Combine(dir.Path, "llama-micro-f16-seed42.gguf")));
        Assert.Empty(Directory.GetFiles(dir.Path, "*.partial"));
    }
}
