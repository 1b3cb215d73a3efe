using QueueWorker.Bench.ModelTools;

namespace QueueWorker.Bench;

/// <summary>Gives the bench the model file of a weight format (synthesized or re-quantized on demand, cached).</summary>
public interface IModelProvider
{
    Task<string> GetAsync(QuantType quant, CancellationToken cancellationToken);
}

/// <summary>Progress of a running bench (the command shows it with Spectre.Console).</summary>
public interface IBenchProgress
{
    void BeginSection(string title, int steps);
    void Step(string description);
    void EndSection();
}

/// <summary>
/// Runs the comparisons. Every comparison is measured side by side in one process and one run: each
/// configuration gets its warm-up, then repetitions go round-robin over the configurations (rotated each
/// round) so slow drifts of a shared machine hit all of them alike. Reports medians with min–max.
/// </summary>
/// <param name="extraBatchRunners">More ways to run the batching section beside raw LLamaSharp, e.g. the worker's
/// engine through <see cref="EngineBatchRunner"/>; each is made once from the loaded model.</param>
public sealed class BenchRunner(
    BenchPlan plan,
    string mainModel,
    IModelProvider models,
    IBenchProgress progress,
    IReadOnlyList<Func<BenchModel, CancellationToken, Task<IBatchRunner>>>? extraBatchRunners = null)
{
    public const string Context = "context";
    public const string Threads = "threads";
    public const string Mmap = "mmap";
    public const string Quant = "quant";
    public const string Batch = "batch";
    public const string Blas = "blas";
    public const string Worker = "worker";
    public const string Kv = "kv";
    public const string Peer = PeerBenchRunner.Peer;
    public const string Scheduling = "scheduling";
    public const string Overhead = "overhead";
    public const string Schema = "schema";

    /// <summary>What a plain <c>qwbench</c> measures: the seed's claims.</summary>
    public static IReadOnlyList<string> DefaultSections { get; } = [Context, Threads, Mmap, Quant, Batch, Blas];

    /// <summary>Every section; <see cref="Worker"/> (the worker's throughput targets, through the real worker and a broker) is opt-in.</summary>
    public static IReadOnlyList<string> AllSections { get; } = [Context, Threads, Mmap, Quant, Batch, Blas, Kv, Schema, Worker, Peer, Scheduling, Overhead];

    public async Task<IReadOnlyList<SectionResult>> RunAsync(CancellationToken cancellationToken)
    {
        var results = new List<SectionResult>();
        foreach (var section in plan.Sections)
        {
            SectionResult? result = section switch
            {
                Context => await RunContextAsync(cancellationToken),
                Threads => await RunThreadsAsync(cancellationToken),
                Mmap => await RunMmapAsync(cancellationToken),
                Quant => await RunQuantAsync(cancellationToken),
                Batch => await RunBatchAsync(cancellationToken),
                Kv => await RunKvAsync(cancellationToken),
                Schema => await RunSchemaAsync(cancellationToken),
                Blas => null, // Nothing to time: the backend is described in the report.
                Worker => null, // WorkerBenchRunner: it needs the worker binary and a broker.
                Peer => null, // PeerBenchRunner: the worker binary, a broker and llama-server.
                Scheduling => null, // SchedulingBenchRunner: worker binaries and a broker too.
                Overhead => null, // OverheadBenchRunner: the worker binary, a broker and a raw loop process.
                _ => throw new ArgumentException($"unknown section '{section}'"),
            };
            if (result is not null)
            {
                results.Add(result);
            }
        }

        return results;
    }

    private int Steps(int configs) => (plan.Warmup + plan.Repetitions) * configs;

    private static int RoundUp(int n, int m) => RawBatchRunner.RoundUp(n, m);

    private async Task<SectionResult> RunContextAsync(CancellationToken ct)
    {
        using var model = await BenchModel.LoadAsync(mainModel, plan.Mmap, ct);
        var job = plan.Job;
        var dynamic = Math.Max(256, RoundUp(job.PromptTokens + job.GenTokens, 256));
        var sizes = new List<(string Name, int Size)> { ("2048", 2048), ("512", 512), ($"dynamic ({dynamic})", dynamic) };
        var notes = new List<string>
        {
            $"dynamic = the job's prompt + max_tokens rounded up to 256 ({job.PromptTokens} + {job.GenTokens} -> {dynamic}); the worker gets the " +
            "same effect inside one shared context by admitting each job's KV cells (llama.cpp attends only over the cells in use).",
        };
        var fitting = sizes.Where(s => s.Size >= job.PromptTokens + job.GenTokens).ToList();
        foreach (var s in sizes.Except(fitting))
        {
            notes.Add($"{s.Name}: skipped, a {job.PromptTokens}+{job.GenTokens}-token job does not fit.");
        }

        var contexts = new List<(string Name, BenchContext Ctx, double RssMb)>();
        try
        {
            foreach (var (name, size) in fitting)
            {
                var before = ProcessMemory.Read().TotalMb;
                var ctx = new BenchContext(model, new ContextSpec(size, plan.AllThreads));
                contexts.Add((name, ctx, ProcessMemory.Read().TotalMb - before));
            }

            progress.BeginSection("context size", Steps(contexts.Count));
            var samples = await InterleaveAsync(contexts.Select(c => (c.Name, c.Ctx)).ToList(), (ctx, rep) => JobAsync(ctx, model, rep, ct), ct);
            var configs = contexts.Select(c =>
            {
                samples[c.Name].Add(Metrics.ContextCreateMs, c.Ctx.CreateMs);
                samples[c.Name].Add(Metrics.ContextRssMb, Math.Max(0, c.RssMb));
                return new ConfigResult(c.Name, samples[c.Name].Summarize(), Details(c.Ctx));
            }).ToList();
            return new SectionResult(Context, "Context size", $"one job of {Describe(job)} per repetition, {plan.AllThreads} threads", configs, notes);
        }
        finally
        {
            contexts.ForEach(c => c.Ctx.Dispose());
            progress.EndSection();
        }
    }

    private async Task<SectionResult> RunThreadsAsync(CancellationToken ct)
    {
        using var model = await BenchModel.LoadAsync(mainModel, plan.Mmap, ct);
        var all = plan.AllThreads;
        var fewer = Math.Max(1, all - 1);
        var load = plan.CompetingLoadProcesses;
        var specs = new List<(string Name, int? Threads, int Load)>
        {
            ("default (unset)", null, 0),
            ($"all ({all})", all, 0),
            ($"cores - 1 ({fewer})", fewer, 0),
            ($"all ({all}) + load", all, load),
            ($"cores - 1 ({fewer}) + load", fewer, load),
        };
        var contexts = specs.Select(s => (s.Name, Item: (Ctx: new BenchContext(model, new ContextSpec(plan.ContextSize, s.Threads)), s.Load))).ToList();
        try
        {
            progress.BeginSection("threads", Steps(contexts.Count));
            var samples = await InterleaveAsync(contexts, async (item, rep) =>
            {
                using var competing = item.Load > 0 ? await CpuLoad.StartAsync(item.Load, ct) : null;
                return await JobAsync(item.Ctx, model, rep, ct);
            }, ct);
            var configs = contexts.Select(c =>
            {
                var details = new Dictionary<string, string>(Details(c.Item.Ctx))
                {
                    ["competing_load"] = c.Item.Load > 0 ? $"{c.Item.Load} busy-loop process(es)" : "none",
                };
                return new ConfigResult(c.Name, samples[c.Name].Summarize(), details);
            }).ToList();
            var notes = new List<string>
            {
                $"all = the CPUs this process may use ({all}); the competing load is {load} `sh` busy loop(s) started beside the job, as another program on the machine.",
                $"default (unset) = ModelParams.Threads left unset: LLamaSharp/llama.cpp choose ({contexts[0].Item.Ctx.GenerationThreads} here).",
            };
            return new SectionResult(Threads, "Threads", $"one job of {Describe(plan.Job)} per repetition, context {plan.ContextSize}", configs, notes);
        }
        finally
        {
            contexts.ForEach(c => c.Item.Ctx.Dispose());
            progress.EndSection();
        }
    }

    private async Task<SectionResult> RunMmapAsync(CancellationToken ct)
    {
        var modes = new List<(string Name, bool Mmap)> { ("mmap on", true), ("mmap off", false) };
        var evicted = true;
        progress.BeginSection("mmap", Steps(modes.Count));
        try
        {
            var samples = await InterleaveAsync(modes, async (mmap, rep) =>
            {
                var m = new List<(string, double)>();
                evicted &= PageCache.TryEvict(mainModel);
                var rss0 = ProcessMemory.Read().TotalMb;
                using (var model = await BenchModel.LoadAsync(mainModel, mmap, ct))
                {
                    m.Add((Metrics.LoadColdMs, model.LoadMs));
                    m.Add((Metrics.RssAfterLoadMb, ProcessMemory.Read().TotalMb - rss0));
                    using var ctx = new BenchContext(model, new ContextSpec(plan.ContextSize, plan.AllThreads));
                    var first = await RunAsync(ctx, model, rep, ct);
                    m.Add((Metrics.FirstJobMs, first.TotalMs));
                    m.Add((Metrics.StartToFirstResultMs, model.LoadMs + ctx.CreateMs + first.TotalMs));
                    m.Add((Metrics.RssAfterJobMb, ProcessMemory.Read().TotalMb - rss0));
                    var second = await RunAsync(ctx, model, rep + 1, ct);
                    m.Add((Metrics.SecondJobMs, second.TotalMs));
                    m.Add((Metrics.PrefillTps, second.PrefillTps));
                    m.Add((Metrics.DecodeTps, second.DecodeTps));
                    if (plan.MmapIdleSeconds > 0)
                    {
                        // The kernel reclaims file-backed pages left unused for a while (DAMON pageout after ~60 s on the
                        // project machine, a container near its memory limit sooner): a job right after load never sees it.
                        await Task.Delay(TimeSpan.FromSeconds(plan.MmapIdleSeconds), ct);
                        var faults0 = ProcessMemory.MajorFaults();
                        var third = await RunAsync(ctx, model, rep + 2, ct);
                        m.Add((Metrics.DecodeAfterIdleTps, third.DecodeTps));
                        if (faults0 is { } f0 && ProcessMemory.MajorFaults() is { } f1) m.Add((Metrics.MajorFaultsAfterIdle, f1 - f0));
                    }
                }

                using (var warm = await BenchModel.LoadAsync(mainModel, mmap, ct))
                {
                    m.Add((Metrics.LoadWarmMs, warm.LoadMs));
                }

                return m;
            }, ct);
            var notes = new List<string>
            {
                evicted
                    ? "cold = the model file's pages dropped from the OS page cache first (posix_fadvise DONTNEED), as after a reboot; warm = loaded again right after."
                    : "the page cache could not be dropped here: 'cold' loads may be warm.",
                "RSS counts a memory-mapped model as file-backed pages (shared, reclaimable by the OS); without mmap the weights are private anonymous memory.",
                plan.MmapIdleSeconds > 0
                    ? $"after idle = one more job after {plan.MmapIdleSeconds} s without work (--mmap-idle): major page faults count the weights read back from the file, a figure the machine's load does not change."
                    : "no job after idle (--mmap-idle 0): reclaim of memory-mapped weights, the cost mmap has on a machine under memory pressure or DAMON pageout, is not measured.",
            };
            var configs = modes.Select(m => new ConfigResult(m.Name, samples[m.Name].Summarize(), new Dictionary<string, string>())).ToList();
            return new SectionResult(Mmap, "Memory-mapped loading", $"per repetition: load, first job, second job of {Describe(plan.Job)}; then a warm reload", configs, notes);
        }
        finally
        {
            progress.EndSection();
        }
    }

    private async Task<SectionResult> RunQuantAsync(CancellationToken ct)
    {
        var notes = new List<string>();
        var loaded = new List<(string Name, BenchModel Model, BenchContext Ctx, long Bytes, ulong Parameters)>();
        try
        {
            foreach (var name in plan.Quants)
            {
                var quant = QuantType.Get(name);
                string path;
                try
                {
                    path = await models.GetAsync(quant, ct);
                }
                catch (InvalidOperationException e)
                {
                    notes.Add($"{name}: no model file ({e.Message})");
                    continue;
                }

                var model = await BenchModel.LoadAsync(path, mmap: true, ct);
                loaded.Add((name, model, new BenchContext(model, new ContextSpec(plan.ContextSize, plan.AllThreads)),
                    new FileInfo(path).Length, model.Weights.ParameterCount));
            }

            progress.BeginSection("quantization", Steps(loaded.Count));
            var samples = await InterleaveAsync(loaded.Select(l => (l.Name, l)).ToList(), (l, rep) => JobAsync(l.Ctx, l.Model, rep, ct), ct);
            var configs = loaded.Select(l =>
            {
                samples[l.Name].Add(Metrics.FileMb, l.Bytes / 1048576.0);
                return new ConfigResult(l.Name, samples[l.Name].Summarize(), new Dictionary<string, string>
                {
                    ["file"] = l.Model.Path,
                    ["parameters"] = l.Parameters.ToString(System.Globalization.CultureInfo.InvariantCulture),
                });
            }).ToList();
            notes.Add("every file has the same shapes and parameter count; llama.cpp keeps some tensors (e.g. output) at higher precision per type, as llama-quantize does.");
            return new SectionResult(Quant, "Quantization", $"one job of {Describe(plan.Job)} per repetition, {plan.AllThreads} threads, context {plan.ContextSize}", configs, notes);
        }
        finally
        {
            foreach (var l in loaded)
            {
                l.Ctx.Dispose();
                l.Model.Dispose();
            }

            progress.EndSection();
        }
    }

    private async Task<SectionResult> RunBatchAsync(CancellationToken ct)
    {
        using var model = await BenchModel.LoadAsync(mainModel, plan.Mmap, ct);
        var max = plan.BatchJobs.Max();
        var runners = new List<IBatchRunner> { new RawBatchRunner(model, max, plan.Job, plan.AllThreads) };
        try
        {
            foreach (var make in extraBatchRunners ?? [])
            {
                runners.Add(await make(model, ct));
            }

            var configs = runners
                .SelectMany(r => plan.BatchJobs.Where(n => n <= r.MaxJobs).Select(n =>
                    (Name: $"{n} job{(n == 1 ? "" : "s")}" + (runners.Count > 1 ? $" · {r.Name}" : ""), Item: (Runner: r, Jobs: n))))
                .ToList();
            progress.BeginSection("batching", Steps(configs.Count));
            var samples = await InterleaveAsync(configs, async (item, rep) =>
            {
                var r = await item.Runner.RunAsync(item.Jobs, plan.Job, rep, ct);
                var m = new List<(string, double)>
                {
                    (Metrics.AggregateTps, r.AggregateTps),
                    (Metrics.JobMs, Stat.Of(r.JobLatencyMs.ToList()).Median),
                };
                if (r.DecodeMs is { } d)
                {
                    m.Add((Metrics.AggregateDecodeTps, r.CompletionTokens / (d / 1000)));
                }

                if (r.PrefillMs is { } p)
                {
                    m.Add((Metrics.PrefillTps, item.Jobs * r.PromptTokensPerJob / (p / 1000)));
                }

                return m;
            }, ct);
            var results = configs.Select(c => new ConfigResult(c.Name, samples[c.Name].Summarize(), new Dictionary<string, string>
            {
                ["runner"] = c.Item.Runner.Name,
            })).ToList();
            var notes = new List<string>
            {
                $"n jobs of {Describe(plan.Job)} start together; aggregate tok/s = generated tokens of all jobs / wall time; job latency = each job's own wall time (median over the jobs).",
            };
            notes.AddRange(runners.Select(r => $"{r.Name}: {r.Method}"));
            if (runners.Count == 1)
            {
                notes.Add("The worker's own scheduler (IInferenceEngine, continuous batching) is not in this run: it is measured by the same section through EngineBatchRunner once an engine is passed to BenchRunner.");
            }

            return new SectionResult(Batch, "Batching (concurrent jobs in one context)", $"{plan.AllThreads} threads", results, notes);
        }
        finally
        {
            foreach (var r in runners)
            {
                await r.DisposeAsync();
            }

            progress.EndSection();
        }
    }

    /// <summary>
    /// The worker's <c>Inference:TypeK</c>/<c>TypeV</c>/<c>FlashAttention</c>: one context each on the same loaded model,
    /// one job per repetition, round-robin. KV MB is computed from the model's shapes (what llama.cpp allocates for the
    /// context's cells); context memory MB is the RSS growth when the context was made (KV + compute buffers).
    /// </summary>
    private async Task<SectionResult> RunKvAsync(CancellationToken ct)
    {
        using var model = await BenchModel.LoadAsync(mainModel, plan.Mmap, ct);
        var specs = new List<(string Name, string K, string V, string Fa)>
        {
            ("f16 · flash attention off", "f16", "f16", "off"),
            ("f16 · flash attention on", "f16", "f16", "on"),
            ("q8_0 · flash attention on", "q8_0", "q8_0", "on"),
            ("q4_0 · flash attention on", "q4_0", "q4_0", "on"),
        };
        var meta = model.Weights.Metadata;
        int Meta(string key) => meta.TryGetValue(key, out var v) && int.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : 0;
        var arch = meta.TryGetValue("general.architecture", out var a) ? a : "llama";
        var heads = Math.Max(1, Meta($"{arch}.attention.head_count"));
        var kvHeads = Meta($"{arch}.attention.head_count_kv") is > 0 and var kh ? kh : heads;
        var kvEmbedding = Meta($"{arch}.embedding_length") / heads * kvHeads;
        var layers = Meta($"{arch}.block_count");
        var contexts = new List<(string Name, BenchContext Ctx, double RssMb, double KvMb)>();
        try
        {
            foreach (var (name, k, v, fa) in specs)
            {
                var before = ProcessMemory.Read().TotalMb;
                var ctx = new BenchContext(model, new ContextSpec(plan.ContextSize, plan.AllThreads, TypeK: k, TypeV: v, FlashAttention: fa));
                contexts.Add((name, ctx, ProcessMemory.Read().TotalMb - before,
                    QueueWorker.Inference.KvCacheSettings.Bytes(plan.ContextSize, layers, kvEmbedding, k, v) / 1048576.0));
            }

            progress.BeginSection("KV cache and flash attention", Steps(contexts.Count));
            var samples = await InterleaveAsync(contexts.Select(c => (c.Name, c.Ctx)).ToList(), (ctx, rep) => JobAsync(ctx, model, rep, ct), ct);
            var configs = contexts.Select(c =>
            {
                samples[c.Name].Add(Metrics.KvMb, c.KvMb);
                samples[c.Name].Add(Metrics.ContextRssMb, Math.Max(0, c.RssMb));
                return new ConfigResult(c.Name, samples[c.Name].Summarize(), Details(c.Ctx));
            }).ToList();
            var notes = new List<string>
            {
                $"KV MB = context {plan.ContextSize} cells × {layers} layers × {kvEmbedding} K/V values × bytes per value (f16 2, q8_0 34/32, q4_0 18/32), K and V.",
                "A quantized V cache needs flash attention (llama.cpp refuses it otherwise; the worker says so at start, naming Inference:TypeV and Inference:FlashAttention).",
                $"Decode attends over the prompt's cells only: a longer prompt (--prompt-tokens) weighs the KV type more than the {plan.Job.PromptTokens} tokens here.",
            };
            return new SectionResult(Kv, "KV cache type and flash attention", $"one job of {Describe(plan.Job)} per repetition, {plan.AllThreads} threads, context {plan.ContextSize}", configs, notes);
        }
        finally
        {
            contexts.ForEach(c => c.Ctx.Dispose());
            progress.EndSection();
        }
    }

    /// <summary>The schema row's constraint: objects with strings, an integer and an enum array, so that the output mixes
    /// free string content (most tokens allowed) with structure (few allowed).</summary>
    public const string SchemaRowSchema = """
        {"type": "object", "properties": {"name": {"type": "string", "maxLength": 40}, "age": {"type": "integer", "minimum": 0, "maximum": 120}, "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "maxItems": 4}, "note": {"type": "string", "maxLength": 200}}, "required": ["name", "age", "tags", "note"], "additionalProperties": false}
        """;

    /// <summary>
    /// Structured output's cost: the worker's engine (AddInference, one slot) runs the same prompt without a schema, with
    /// one (Inference:GrammarFastPath on, the default), and with one on an engine that masks the whole vocabulary every
    /// step (GrammarFastPath off: llama.cpp's chain with the grammar in it), for the default sampling and for greedy. The
    /// configurations go round-robin (rotated each round); each ratio to plain is taken within a round.
    /// </summary>
    private async Task<SectionResult> RunSchemaAsync(CancellationToken ct)
    {
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        var genTokens = Math.Max(64, plan.Job.GenTokens);
        Dictionary<string, string?> Settings(bool fastPath) => new()
        {
            ["Model:Path"] = mainModel,
            ["Inference:Slots"] = "1",
            ["Inference:Threads"] = plan.AllThreads.ToString(inv),
            ["Inference:BatchThreads"] = plan.AllThreads.ToString(inv),
            ["Inference:ContextSize"] = "1024",
            ["Inference:MaxTokens"] = Math.Max(512, genTokens).ToString(inv),
            ["Inference:PrefixReuse"] = "false",
            ["Inference:GrammarFastPath"] = fastPath ? "true" : "false",
        };
        await using var fast = await EngineHost.StartAsync(Settings(true), ct);
        await using var full = await EngineHost.StartAsync(Settings(false), ct);
        var grammar = QueueWorker.Inference.Grammar.SchemaGrammars.For(new QueueWorker.Contracts.JobRequest
        {
            Prompt = "x",
            ResponseFormat = new QueueWorker.Contracts.ResponseFormat
            {
                Type = QueueWorker.Contracts.ResponseFormat.JsonSchemaType,
                JsonSchema = new QueueWorker.Contracts.JsonSchemaFormat { Name = "bench", Schema = System.Text.Json.JsonDocument.Parse(SchemaRowSchema).RootElement.Clone() },
            },
        });
        const string Plain = "plain", Fast = "schema (fast path)", Full = "schema (whole-vocabulary mask)";
        var configs = new List<(string Name, (string Kind, bool Greedy) Item)>();
        foreach (var greedy in new[] { false, true })
        {
            foreach (var kind in new[] { Plain, Fast, Full })
            {
                configs.Add(($"{kind} · {(greedy ? "greedy" : "default sampling")}", (kind, greedy)));
            }
        }
        progress.BeginSection("structured output (schema vs plain)", Steps(configs.Count));
        try
        {
            var samples = await InterleaveAsync(configs, async (c, rep) =>
            {
                var engine = c.Kind == Full ? full.Engine : fast.Engine;
                var result = await engine.GenerateAsync(new QueueWorker.Inference.GenerationRequest
                {
                    JobId = $"schema-bench-{rep}-{c.Kind}-{c.Greedy}",
                    Prompt = "Once upon a time, in a small town by the sea, there lived",
                    MaxTokens = genTokens,
                    Sampling = c.Greedy ? QueueWorker.Inference.SamplingParams.Greedy : new QueueWorker.Inference.SamplingParams { Seed = (uint)(rep + 1) },
                    Grammar = c.Kind == Plain ? null : grammar,
                }, ct);
                var decode = result.CompletionTokens > 1 && result.GenerationMs > 0 ? (result.CompletionTokens - 1) / (result.GenerationMs / 1000) : 0;
                return (IReadOnlyList<(string, double)>)[(Metrics.DecodeTps, decode), (Metrics.CompletionTokens, result.CompletionTokens)];
            }, ct);
            var results = configs.Select(c => new ConfigResult(c.Name, samples[c.Name].Summarize(), new Dictionary<string, string>())).ToList();
            IReadOnlyList<double> Tps(string name) => results.First(r => r.Name == name).Metrics[Metrics.DecodeTps].Samples;
            var notes = new List<string>();
            for (var g = 0; g < configs.Count; g += 3)
            {
                var plain = Tps(configs[g].Name);
                foreach (var other in new[] { configs[g + 1].Name, configs[g + 2].Name })
                {
                    var ratios = plain.Zip(Tps(other), (p, s) => p > 0 ? s / p : 0).ToList();
                    notes.Add($"{other} / {configs[g].Name}, decode tok/s within each round: {ReportWriter.FormatPrecise(Stat.Of(ratios))} × " +
                              $"(rounds: {string.Join(", ", ratios.Select(x => x.ToString("F3", inv)))}).");
                }
                var speedup = Tps(configs[g + 2].Name).Zip(Tps(configs[g + 1].Name), (w, f) => w > 0 ? f / w : 0).ToList();
                notes.Add($"{configs[g + 1].Name} / {configs[g + 2].Name} (the fast path's gain), within each round: {ReportWriter.FormatPrecise(Stat.Of(speedup))} × " +
                          $"(rounds: {string.Join(", ", speedup.Select(x => x.ToString("F2", inv)))}).");
            }
            notes.Add($"Schema: `{SchemaRowSchema}`.");
            notes.Add("decode tok/s = (completion_tokens − 1) / generation_ms of the engine's result; a job may end before max_tokens (end of generation, or the JSON is complete).");
            return new SectionResult(Schema, "Structured output: decode with and without a JSON schema",
                $"the worker's engine (one slot, {plan.AllThreads} threads, prefix reuse off), the same prompt, max_tokens {genTokens}; default sampling " +
                "(temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, seed = round) and greedy; the whole-vocabulary mask runs on a second engine with " +
                "Inference:GrammarFastPath = false; all six configurations round-robin within each round", results, notes);
        }
        finally
        {
            progress.EndSection();
        }
    }

    private static string Describe(JobShape job) => $"{job.PromptTokens} prompt + {job.GenTokens} generated tokens";

    private static Dictionary<string, string> Details(BenchContext ctx) => new()
    {
        ["context_size"] = ctx.Spec.ContextSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["threads"] = $"{ctx.GenerationThreads} generation / {ctx.BatchThreads} prompt",
    };

    private Task<RunTiming> RunAsync(BenchContext ctx, BenchModel model, int rep, CancellationToken ct) =>
        Task.Run(() => ctx.Run([model.Prompt(plan.Job.PromptTokens, rep)], plan.Job.GenTokens, ct), ct);

    private async Task<IReadOnlyList<(string, double)>> JobAsync(BenchContext ctx, BenchModel model, int rep, CancellationToken ct)
    {
        var t = await RunAsync(ctx, model, rep, ct);
        return [(Metrics.JobMs, t.TotalMs), (Metrics.PrefillTps, t.PrefillTps), (Metrics.DecodeTps, t.DecodeTps)];
    }

    /// <summary>Warm-up for each configuration, then repetitions round-robin (order rotated every round).</summary>
    private async Task<Dictionary<string, SampleSet>> InterleaveAsync<T>(
        IReadOnlyList<(string Name, T Item)> configs,
        Func<T, int, Task<IReadOnlyList<(string Metric, double Value)>>> measure,
        CancellationToken ct)
    {
        var sets = configs.ToDictionary(c => c.Name, _ => new SampleSet());
        for (var w = 0; w < plan.Warmup; w++)
        {
            foreach (var (name, item) in configs)
            {
                ct.ThrowIfCancellationRequested();
                progress.Step($"{name}: warm-up");
                await measure(item, 1000 + w);
            }
        }

        for (var rep = 0; rep < plan.Repetitions; rep++)
        {
            for (var k = 0; k < configs.Count; k++)
            {
                ct.ThrowIfCancellationRequested();
                var (name, item) = configs[(k + rep) % configs.Count];
                progress.Step($"{name}: run {rep + 1}/{plan.Repetitions}");
                foreach (var (metric, value) in await measure(item, rep))
                {
                    sets[name].Add(metric, value);
                }
            }
        }

        return sets;
    }
}
