using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using LLama.Native;
using Microsoft.Extensions.Configuration;
using QueueWorker.Bench.ModelTools;
using Spectre.Console;
using Spectre.Console.Cli;

namespace QueueWorker.Bench.Commands;

/// <summary>`qwbench` (its default command): measures the seed's CPU optimization claims on this machine and writes results.md/json and chart.png.</summary>
internal sealed class BenchCommand : AsyncCommand<BenchCommand.Settings>
{
    public const string Description =
        "Measures the seed's CPU optimization claims on this machine (context size, threads, mmap, quantization, batching, BLAS) " +
        "with LLamaSharp, side by side in one run, and writes results.md (prediction | measured | verdict), results.json and chart.png. " +
        "Without --model it uses a synthetic model (qwbench model synth: real shapes, random weights, real speed), cached between runs. " +
        "Run it on a quiet machine: anything else using the CPU skews the numbers. " +
        "--sections worker measures issue 3's throughput targets through the real worker binary and a RabbitMQ broker instead; " +
        "--sections scheduling measures issue 14's figures (interactive wait beside a batch with lanes, two-tenant fair share) the same way.";

    internal sealed class Settings : CommandSettings
    {
        [CommandOption("--model <FILE>")]
        [Description("GGUF to measure. Without it, a synthetic model of --preset is made (and cached).")]
        public string? Model { get; init; }

        [CommandOption("--preset <NAME>")]
        [Description("Synthetic model shapes when no --model: llama-micro, llama-tiny, tinyllama-1.1b, open-llama-3b, llama-2-7b.")]
        [DefaultValue("tinyllama-1.1b")]
        public string Preset { get; init; } = "tinyllama-1.1b";

        [CommandOption("--quant <TYPE>")]
        [Description("Weight format of the synthetic model used by every section but quantization.")]
        [DefaultValue("q4_0")]
        public string Quant { get; init; } = "q4_0";

        [CommandOption("-o|--out <DIR>")]
        [Description("Folder for results.md, results.json and chart.png.")]
        [DefaultValue("bench-results")]
        public string Out { get; init; } = "bench-results";

        [CommandOption("--quick")]
        [Description("Fewer, shorter runs (3 repetitions of 64+16-token jobs): about 10 minutes on 2 cores with a TinyLlama-sized model.")]
        public bool Quick { get; init; }

        [CommandOption("--sections <LIST>")]
        [Description("Comma-separated subset of: context, threads, mmap, quant, batch, blas, kv, schema, worker, peer, scheduling, overhead. " +
                     "schema (not in the default) compares decode tok/s of the worker's engine with and without a JSON schema. " +
                     "overhead (opt-in) runs the worker and a raw batched " +
                     "loop process on a small model (--overhead-model), 4 jobs at once, and tiny jobs against the broker's own rate. " +
                     "worker (not in the default) runs the worker binary on temporary queues of a broker and checks issue 3's targets: " +
                     "one job vs LLamaSharp's raw loop, 8 jobs with 4 slots vs 1, a shared prompt prefix, RSS after 50 vs 500 jobs. " +
                     "peer runs the worker and llama-server -np 4 (--llama-server) on the same 16-job sets, interleaved. " +
                     "scheduling (not in the default) runs worker binaries the same way for issue 14: interactive jobs' queue wait beside a queued batch " +
                     "with lanes and on one queue, and a small tenant's finish time behind a large one with fair share, alone and first come.")]
        [DefaultValue("context,threads,mmap,quant,batch,blas")]
        public string Sections { get; init; } = string.Join(',', BenchRunner.DefaultSections);

        [CommandOption("--quants <LIST>")]
        [Description("Weight formats compared by the quant section.")]
        [DefaultValue("q3_k_m,q4_0,q4_k_m,q8_0,f16")]
        public string Quants { get; init; } = "q3_k_m,q4_0,q4_k_m,q8_0,f16";

        [CommandOption("--batch-jobs <LIST>")]
        [Description("Concurrent job counts compared by the batch section.")]
        [DefaultValue("1,2,4,8")]
        public string BatchJobs { get; init; } = "1,2,4,8";

        [CommandOption("--reps <N>")]
        [Description("Repetitions per configuration (0 = 5, or 3 with --quick).")]
        [DefaultValue(0)]
        public int Reps { get; init; }

        [CommandOption("--warmup <N>")]
        [Description("Warm-up runs per configuration, not recorded (at least 1).")]
        [DefaultValue(1)]
        public int Warmup { get; init; } = 1;

        [CommandOption("--prompt-tokens <N>")]
        [Description("Prompt tokens per job (0 = 128, or 64 with --quick).")]
        [DefaultValue(0)]
        public int PromptTokens { get; init; }

        [CommandOption("--gen-tokens <N>")]
        [Description("Generated tokens per job (0 = 32, or 16 with --quick).")]
        [DefaultValue(0)]
        public int GenTokens { get; init; }

        [CommandOption("--threads <N>")]
        [Description("What \"all threads\" means (0 = every CPU this process may use).")]
        [DefaultValue(0)]
        public int Threads { get; init; }

        [CommandOption("--load <N>")]
        [Description("Busy-loop processes of the competing CPU load in the threads section.")]
        [DefaultValue(1)]
        public int Load { get; init; } = 1;

        [CommandOption("--mmap <BOOL>")]
        [Description("Memory-map the model in the sections that load it once (context, threads, batch, kv) and in the overhead section's worker and raw loop (both alike); the mmap section compares both ways itself. Default false, as the worker's Model:UseMmap. Run qwbench twice, interleaved, to compare whole runs.")]
        [DefaultValue(false)]
        public bool Mmap { get; init; }

        [CommandOption("--mmap-idle <SECONDS>")]
        [Description("The mmap section's idle time before one more job, to let the kernel reclaim memory-mapped weights (DAMON pageout here acts after ~60 s). Default: 75, 0 with --quick.")]
        [DefaultValue(-1)]
        public int MmapIdle { get; init; } = -1;

        [CommandOption("--cache-dir <DIR>")]
        [Description("Where synthetic and re-quantized models are kept (default $XDG_CACHE_HOME or ~/.cache, /queueworker/models).")]
        public string? CacheDir { get; init; }

        [CommandOption("--tokenizer-from <GGUF>")]
        [Description("Tokenizer source for synthetic models.")]
        [DefaultValue(ModelSynthCommand.DefaultTokenizer)]
        public string TokenizerFrom { get; init; } = ModelSynthCommand.DefaultTokenizer;

        [CommandOption("--seed <N>")]
        [Description("Seed of the synthetic weights.")]
        [DefaultValue(42UL)]
        public ulong Seed { get; init; } = 42;

        [CommandOption("--worker-dll <FILE>")]
        [Description("worker section: the worker binary (default: src/QueueWorker/bin/<configuration of qwbench>/net10.0/QueueWorker.dll of this repository).")]
        public string? WorkerDll { get; init; }

        [CommandOption("--broker-uri <URI>")]
        [Description("worker section: the RabbitMQ broker (default: RabbitMq:Uri of qwbench's configuration, appsettings.json or RabbitMq__Uri). Only uniquely named temporary queues are used, and deleted.")]
        public string? BrokerUri { get; init; }

        [CommandOption("--llama-server <FILE>")]
        [Description("peer section: llama.cpp's llama-server binary (../shared/tools/build-llama-server.sh prints where it built it); default $QW_LLAMA_SERVER.")]
        public string? LlamaServer { get; init; } = Environment.GetEnvironmentVariable("QW_LLAMA_SERVER");

        [CommandOption("--peer-rounds <N>")]
        [Description("peer section: interleaved rounds (each runs set A and set B on both sides; new documents every round).")]
        [DefaultValue(2)]
        public int PeerRounds { get; init; } = 2;

        [CommandOption("--peer-worker <KEY=VALUE>")]
        [Description("peer section: a worker setting on top of the bench's (repeatable), e.g. --peer-worker Inference:KvUnified=false; named in the report. Not RabbitMq:* or Model:Path.")]
        public string[] PeerWorker { get; init; } = [];

        [CommandOption("--memory-model <GGUF>")]
        [Description("worker section: the model of the memory measurement (small jobs, many of them).")]
        [DefaultValue(DefaultMemoryModel)]
        public string MemoryModel { get; init; } = DefaultMemoryModel;

        [CommandOption("--memory-jobs <FIRST,TOTAL>")]
        [Description("worker section: RSS is read after FIRST jobs and after TOTAL jobs.")]
        [DefaultValue("50,500")]
        public string MemoryJobs { get; init; } = "50,500";

        [CommandOption("--scheduling-model <GGUF>")]
        [Description("scheduling section: the model of its workers (small: the figures are about order, not speed).")]
        [DefaultValue(DefaultMemoryModel)]
        public string SchedulingModel { get; init; } = DefaultMemoryModel;

        [CommandOption("--scheduling-batch <N>")]
        [Description("scheduling section: batch jobs queued at once on the batch lane (and on the single queue).")]
        [DefaultValue(500)]
        public int SchedulingBatch { get; init; } = 500;

        [CommandOption("--scheduling-interactive <N>")]
        [Description("scheduling section: interactive jobs published one at a time while the batch runs.")]
        [DefaultValue(20)]
        public int SchedulingInteractive { get; init; } = 20;

        [CommandOption("--scheduling-spread <FRACTION>")]
        [Description("scheduling section: the interactive jobs are published over this first fraction of the batch (by its results).")]
        [DefaultValue(0.5)]
        public double SchedulingSpread { get; init; } = 0.5;

        [CommandOption("--scheduling-tenants <A,B>")]
        [Description("scheduling section: jobs of tenant A (queued first) and of tenant B (queued right after).")]
        [DefaultValue("200,10")]
        public string SchedulingTenants { get; init; } = "200,10";

        [CommandOption("--scheduling-small-prefetch <N>")]
        [Description("scheduling section: RabbitMq:Prefetch of a second fair-share worker (8 × slots by the README's advice; 0 = none). The first holds every job.")]
        [DefaultValue(32)]
        public int SchedulingSmallPrefetch { get; init; } = 32;

        [CommandOption("--scheduling-slots <N>")]
        [Description("scheduling section: Inference:Slots of its workers.")]
        [DefaultValue(4)]
        public int SchedulingSlots { get; init; } = 4;

        [CommandOption("--scheduling-job <PROMPT,GEN>")]
        [Description("scheduling section: prompt tokens and generated tokens of every job. The default's job (~150 ms alone on " +
                     "stories260K) is longer than the broker's delivery of a 200-job flood on 2 cores (~20 ms): with much " +
                     "shorter jobs the figures measure that delivery, not the order the worker serves jobs in.")]
        [DefaultValue("16,192")]
        public string SchedulingJob { get; init; } = "16,192";

        [CommandOption("--scheduling-reps <N>")]
        [Description("scheduling section: rounds over its configurations (after --warmup rounds).")]
        [DefaultValue(3)]
        public int SchedulingReps { get; init; } = 3;

        [CommandOption("--overhead-model <GGUF>")]
        [Description("overhead section: the small model whose per-step and per-job costs are measured (stories260K).")]
        [DefaultValue(DefaultMemoryModel)]
        public string OverheadModel { get; init; } = DefaultMemoryModel;

        [CommandOption("--tiny-jobs <N>")]
        [Description("overhead section: jobs per round of the jobs/s comparison (0 = 200, or 100 with --quick).")]
        [DefaultValue(0)]
        public int TinyJobs { get; init; }

        [CommandOption("--verbose")]
        [Description("Show llama.cpp's log.")]
        public bool Verbose { get; init; }

        public const string DefaultMemoryModel = "../shared/models/stories260K.gguf";

        public IReadOnlyList<string> SectionList => Split(Sections);

        public IReadOnlyList<int> MemoryJobList => Split(MemoryJobs)
            .Select(s => int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : -1).ToList();
        public IReadOnlyList<string> QuantList => Split(Quants);

        public IReadOnlyList<int> SchedulingTenantList => Numbers(SchedulingTenants);

        public IReadOnlyList<int> SchedulingJobList => Numbers(SchedulingJob);

        /// <summary>Only the scheduling section: no model of --preset/--model is made or loaded for it.</summary>
        public bool SchedulingOnly => SectionList.All(s => s == BenchRunner.Scheduling);

        public IReadOnlyList<int> BatchJobList => Split(BatchJobs)
            .Select(s => int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : -1).ToList();

        public override ValidationResult Validate()
        {
            var unknown = SectionList.Except(BenchRunner.AllSections).ToList();
            if (SectionList.Count == 0 || unknown.Count > 0)
            {
                return ValidationResult.Error($"--sections: '{string.Join(",", unknown)}' unknown; choose from {string.Join(", ", BenchRunner.AllSections)}");
            }

            var badQuant = QuantList.FirstOrDefault(q => !QuantType.All.Any(t => t.Name == q));
            if (badQuant is not null || (SectionList.Contains(BenchRunner.Quant) && QuantList.Count == 0))
            {
                return ValidationResult.Error($"--quants: '{badQuant}' unknown; choose from {string.Join(", ", QuantType.All.Select(q => q.Name))}");
            }

            if (!QuantType.All.Any(t => t.Name == Quant))
            {
                return ValidationResult.Error($"--quant: '{Quant}' unknown; choose from {string.Join(", ", QuantType.All.Select(q => q.Name))}");
            }

            if (BatchJobList.Count == 0 || BatchJobList.Any(n => n is < 1 or > 64))
            {
                return ValidationResult.Error($"--batch-jobs: '{BatchJobs}' must be a comma-separated list of numbers from 1 to 64");
            }

            if (Reps < 0 || Warmup < 0 || PromptTokens < 0 || GenTokens < 0 || Threads < 0 || Load < 0)
            {
                return ValidationResult.Error("--reps, --warmup, --prompt-tokens, --gen-tokens, --threads and --load must not be negative");
            }

            if (Warmup < 1)
            {
                return ValidationResult.Error($"--warmup: at least 1, got {Warmup} (the first run after a load pays page faults and graph setup, not speed)");
            }

            if (PromptTokens is 1)
            {
                return ValidationResult.Error("--prompt-tokens: at least 2");
            }

            if (SectionList.Contains(BenchRunner.Peer))
            {
                if (LlamaServer is null || !File.Exists(LlamaServer))
                {
                    return ValidationResult.Error($"--llama-server: the peer section needs llama-server's binary (build it with ../shared/tools/build-llama-server.sh); '{LlamaServer}' is not a file");
                }

                if (PeerRounds < 1)
                {
                    return ValidationResult.Error($"--peer-rounds: at least 1, got {PeerRounds}");
                }

                foreach (var setting in PeerWorker)
                {
                    var eq = setting.IndexOf('=', StringComparison.Ordinal);
                    if (eq <= 0)
                    {
                        return ValidationResult.Error($"--peer-worker: KEY=VALUE (e.g. Inference:KvUnified=false), got '{setting}'");
                    }

                    if (PeerBenchPlan.IsBenchOwned(setting[..eq]))
                    {
                        return ValidationResult.Error($"--peer-worker: {setting[..eq]} is set by the bench itself (queues, broker and model are the same for both sides)");
                    }
                }

                if (WorkerDll is null && WorkerProcess.FindWorkerDll(AppContext.BaseDirectory) is null)
                {
                    return ValidationResult.Error("--worker-dll: no worker binary found beside this qwbench (build src/QueueWorker in the same configuration, or give its QueueWorker.dll)");
                }
            }

            if (SectionList.Contains(BenchRunner.Overhead))
            {
                if (!File.Exists(OverheadModel))
                {
                    return ValidationResult.Error($"--overhead-model: file not found: {Path.GetFullPath(OverheadModel)}");
                }

                if (TinyJobs < 0)
                {
                    return ValidationResult.Error("--tiny-jobs must not be negative");
                }

                if (WorkerDll is null && WorkerProcess.FindWorkerDll(AppContext.BaseDirectory) is null)
                {
                    return ValidationResult.Error("--worker-dll: no worker binary found beside this qwbench (build src/QueueWorker in the same configuration, or give its QueueWorker.dll)");
                }
            }

            if (SectionList.Contains(BenchRunner.Worker))
            {
                if (MemoryJobList is not [>= 1 and var first, var total] || total <= first)
                {
                    return ValidationResult.Error($"--memory-jobs: '{MemoryJobs}' must be FIRST,TOTAL with 1 <= FIRST < TOTAL");
                }

                if (!File.Exists(MemoryModel))
                {
                    return ValidationResult.Error($"--memory-model: file not found: {Path.GetFullPath(MemoryModel)}");
                }

                if (WorkerBinaryError() is { } workerError)
                {
                    return ValidationResult.Error(workerError);
                }
            }

            if (SectionList.Contains(BenchRunner.Scheduling) && ValidateScheduling() is { } error)
            {
                return ValidationResult.Error(error);
            }

            if (Model is not null && !File.Exists(Model))
            {
                return ValidationResult.Error($"--model: file not found: {Path.GetFullPath(Model)}");
            }

            if (Model is null && !SchedulingOnly)
            {
                if (!ModelPreset.All.Any(p => string.Equals(p.Name, Preset, StringComparison.OrdinalIgnoreCase)))
                {
                    return ValidationResult.Error($"--preset: '{Preset}' unknown; known: {string.Join(", ", ModelPreset.All.Select(p => p.Name))}");
                }

                if (!File.Exists(TokenizerFrom))
                {
                    return ValidationResult.Error($"--tokenizer-from: file not found: {Path.GetFullPath(TokenizerFrom)} (needed to synthesize --preset {Preset})");
                }
            }

            return ValidationResult.Success();
        }

        /// <summary>The worker binary and the broker, which the worker and scheduling sections need.</summary>
        private string? WorkerBinaryError()
        {
            if (WorkerDll is not null && !File.Exists(WorkerDll))
            {
                return $"--worker-dll: file not found: {Path.GetFullPath(WorkerDll)}";
            }

            if (WorkerDll is null && WorkerProcess.FindWorkerDll(AppContext.BaseDirectory) is null)
            {
                return "--worker-dll: no worker binary found beside this qwbench (build src/QueueWorker in the same configuration, or give its QueueWorker.dll)";
            }

            if (BrokerUri is not null && !System.Uri.TryCreate(BrokerUri, UriKind.Absolute, out _))
            {
                return $"--broker-uri: '{BrokerUri}' is not an absolute URI (amqp://user:password@host:5672/vhost)";
            }

            return null;
        }

        private string? ValidateScheduling()
        {
            if (!File.Exists(SchedulingModel))
            {
                return $"--scheduling-model: file not found: {Path.GetFullPath(SchedulingModel)}";
            }

            if (SchedulingBatch < 1 || SchedulingInteractive < 1 || SchedulingReps < 1)
            {
                return "--scheduling-batch, --scheduling-interactive and --scheduling-reps: at least 1";
            }

            if (SchedulingSpread is <= 0 or > 1)
            {
                return $"--scheduling-spread: {SchedulingSpread.ToString(CultureInfo.InvariantCulture)} must be above 0 and at most 1 (a fraction of the batch)";
            }

            // RabbitMq:Prefetch is at most 1000: the fair-share worker must hold every job of both tenants.
            if (SchedulingTenantList is not [>= 1 and var a, >= 1 and var b] || a + b > 1000)
            {
                return $"--scheduling-tenants: '{SchedulingTenants}' must be A,B with A, B >= 1 and A + B <= 1000 (the fair-share worker's RabbitMq:Prefetch holds them all)";
            }

            if (SchedulingSmallPrefetch is < 0 or > 1000)
            {
                return $"--scheduling-small-prefetch: {SchedulingSmallPrefetch} must be 0 (none) to 1000 (RabbitMq:Prefetch's range)";
            }

            if (SchedulingSlots is < 1 or > 64)
            {
                return $"--scheduling-slots: {SchedulingSlots} must be 1 to 64";
            }

            if (SchedulingJobList is not [>= 2, >= 1])
            {
                return $"--scheduling-job: '{SchedulingJob}' must be PROMPT,GEN with PROMPT >= 2 and GEN >= 1";
            }

            return WorkerBinaryError();
        }

        private static List<int> Numbers(string list) => Split(list)
            .Select(s => int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : -1).ToList();

        private static List<string> Split(string list) =>
            list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => s.ToLowerInvariant()).ToList();
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var console = AnsiConsole.Console;
        var started = TimeProvider.System.GetUtcNow();
        var clock = Stopwatch.StartNew();
        LlamaNative.Configure(settings.Verbose);

        var machine = MachineInfo.Collect();
        var allThreads = settings.Threads > 0 ? settings.Threads : Environment.ProcessorCount;
        var plan = new BenchPlan(
            settings.Quick,
            settings.Warmup,
            settings.Reps > 0 ? settings.Reps : settings.Quick ? 3 : 5,
            new JobShape(
                settings.PromptTokens > 0 ? settings.PromptTokens : settings.Quick ? 64 : 128,
                settings.GenTokens > 0 ? settings.GenTokens : settings.Quick ? 16 : 32),
            allThreads,
            2048,
            settings.SectionList,
            settings.QuantList,
            settings.BatchJobList.Distinct().Order().ToList(),
            settings.Load,
            settings.Mmap,
            settings.MmapIdle >= 0 ? settings.MmapIdle : settings.Quick ? 0 : 75);

        console.MarkupLine($"[bold]qwbench[/] on {Markup.Escape(machine.CpuModel)}, {machine.ProcessCpus} CPUs, {machine.MemoryGib} GiB; load average {machine.LoadAverageAtStart}");
        if (double.TryParse(machine.LoadAverageAtStart.Split(' ')[0], CultureInfo.InvariantCulture, out var load1) && load1 > 0.5 * machine.ProcessCpus)
        {
            console.MarkupLine("[yellow]The machine is busy: every number will be noisier (ratios within this run still compare).[/]");
        }

        // Every model file first (synthesis has its own progress bar; Spectre allows one live display at a time).
        var overheadOnly = settings.SectionList.All(s => s == BenchRunner.Overhead);
        var preset = settings.Model is null && !settings.SchedulingOnly && !overheadOnly ? ModelPreset.Get(settings.Preset) : null;
        var cache = new ModelCache(
            settings.CacheDir ?? ModelCache.DefaultDirectory(),
            preset,
            settings.Model,
            settings.TokenizerFrom,
            settings.Seed,
            allThreads,
            (options, ct) => ModelSynthCommand.SynthesizeWithProgressAsync(console, options, ct),
            line => console.MarkupLine($"[grey]{Markup.Escape(line)}[/]"));
        var mainQuant = QuantType.Get(settings.Quant);
        // A scheduling-only or overhead-only run measures on its own small model: nothing of --preset is synthesized for it.
        var mainModel = settings.Model ?? (settings.SchedulingOnly ? settings.SchedulingModel
            : overheadOnly ? settings.OverheadModel
            : await cache.GetAsync(mainQuant, cancellationToken));
        if (plan.Sections.Contains(BenchRunner.Quant))
        {
            foreach (var q in plan.Quants)
            {
                try
                {
                    await cache.GetAsync(QuantType.Get(q), cancellationToken);
                }
                catch (InvalidOperationException e)
                {
                    console.MarkupLine($"[yellow]{Markup.Escape(e.Message)}[/]");
                }
            }
        }

        var header = GgufReader.Read(mainModel);
        var fileType = header.Get("general.file_type")?.AsInt64();
        var modelInfo = new ModelInfo(
            Path.GetFullPath(mainModel),
            settings.Model is not null ? "user model (--model)"
                : preset is null ? "the scheduling section's model (--scheduling-model)"
                : $"synthetic {preset.Name} (random weights, seed {settings.Seed})",
            new FileInfo(mainModel).Length,
            header.ParameterCount,
            fileType is { } ft ? ((LLamaFtype)ft).ToString() : "unknown");
        console.MarkupLine($"Model: [bold]{Markup.Escape(modelInfo.Source)}[/], {modelInfo.Parameters:N0} parameters, {modelInfo.Quant}");

        var workerPlan = plan.Sections.Contains(BenchRunner.Worker) ? WorkerPlan(settings, plan, mainModel) : null;
        var schedulingPlan = plan.Sections.Contains(BenchRunner.Scheduling) ? SchedulingPlan(settings, plan) : null;
        IReadOnlyList<SectionResult> sections = [];
        WorkerBenchResult? worker = null;
        PeerBenchPlan? peerPlan = null;
        if (plan.Sections.Contains(BenchRunner.Peer))
        {
            var w = WorkerPlan(settings, plan, mainModel);
            var extra = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var kv in settings.PeerWorker.Select(kv => kv.Split('=', 2)))
            {
                extra[kv[0]] = kv[1]; // the last one given wins, as on a command line
            }

            peerPlan = new PeerBenchPlan(w.WorkerDll, w.BrokerUri, Path.GetFullPath(settings.LlamaServer!), w.Model, plan.AllThreads, settings.PeerRounds,
                WorkerSettings: extra);
            console.MarkupLine($"llama-server: [bold]{Markup.Escape(string.Join(' ', LlamaServerProcess.Arguments(peerPlan, 0)))}[/] (port chosen at start)");
        }

        WorkerBenchResult? peer = null;
        IReadOnlyList<PeerBenchRunner.Run> peerRuns = [];
        SchedulingBenchResult? scheduling = null;
        var overheadPlan = plan.Sections.Contains(BenchRunner.Overhead) ? OverheadPlan(settings, plan) : null;
        WorkerBenchResult? overhead = null;
        await console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(async ctx =>
            {
                // The batching section measures the worker's own engine beside raw LLamaSharp.
                var runner = new BenchRunner(plan, mainModel, cache, new SpectreBenchProgress(ctx),
                    [(model, ct) => EngineHost.CreateBatchRunnerAsync(mainModel, model, plan, ct)]);
                sections = await runner.RunAsync(cancellationToken);
                if (workerPlan is not null)
                {
                    worker = await new WorkerBenchRunner(workerPlan, new SpectreBenchProgress(ctx)).RunAsync(cancellationToken);
                }

                if (peerPlan is not null)
                {
                    (peer, peerRuns) = await new PeerBenchRunner(peerPlan, new SpectreBenchProgress(ctx)).RunAsync(cancellationToken);
                }

                if (schedulingPlan is not null)
                {
                    scheduling = await new SchedulingBenchRunner(schedulingPlan, new SpectreBenchProgress(ctx)).RunAsync(cancellationToken);
                }

                if (overheadPlan is not null)
                {
                    overhead = await new OverheadBenchRunner(overheadPlan, new SpectreBenchProgress(ctx)).RunAsync(cancellationToken);
                }
            });

        var backend = BackendInfo.Collect();
        // A worker-only run judges the worker's targets, not the seed's claims (the BLAS verdict needs no measurement at all).
        var seedRun = plan.Sections.Any(BenchRunner.DefaultSections.Contains);
        var report = new BenchReport(
            "qwbench",
            started,
            clock.Elapsed.TotalSeconds,
            "qwbench " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)),
            machine,
            MachineInfo.LoadAverage(),
            backend,
            modelInfo,
            plan,
            [.. sections, .. worker?.Sections ?? [], .. peer?.Sections ?? [], .. scheduling?.Sections ?? [], .. overhead?.Sections ?? []],
            seedRun ? SeedClaims.Evaluate(sections, backend) : [],
            seedRun ? SeedClaims.Recommend(sections, plan) : [])
        {
            Targets = [.. worker?.Targets ?? [], .. peer?.Targets ?? [], .. overhead?.Targets ?? []],
            Worker = workerPlan is null ? null : workerPlan with { BrokerUri = QueueWorker.Messaging.SecretMasker.MaskUri(workerPlan.BrokerUri) },
            SchedulingTargets = scheduling?.Targets ?? [],
            Scheduling = schedulingPlan is null ? null : schedulingPlan with { BrokerUri = QueueWorker.Messaging.SecretMasker.MaskUri(schedulingPlan.BrokerUri) },
            Overhead = overheadPlan is null ? null : overheadPlan with { BrokerUri = QueueWorker.Messaging.SecretMasker.MaskUri(overheadPlan.BrokerUri) },
        };

        Directory.CreateDirectory(settings.Out);
        if (peerRuns.Count > 0)
        {
            await PeerBenchRunner.WriteRunsAsync(peerRuns, Path.Combine(settings.Out, "peer-runs.jsonl"), cancellationToken);
        }

        var chart = ChartWriter.TryWrite(report, Path.Combine(settings.Out, ReportWriter.ChartFile));
        await ReportWriter.WriteAsync(report, settings.Out, chart, cancellationToken);

        // The terminal gets the short form; results.md has the numbers behind each line.
        var table = new Table().AddColumns("Seed's claim", "Predicted", "Measured", "Verdict");
        foreach (var c in report.Claims)
        {
            var measured = c.MeasuredPct is { } pct ? string.Create(CultureInfo.InvariantCulture, $"{pct:+0;-0}%") : "see results.md";
            table.AddRow(Markup.Escape(c.Claim), Markup.Escape(c.Prediction), Markup.Escape(measured), Markup.Escape(c.Verdict));
        }

        if (report.Claims.Count > 0)
        {
            console.Write(table);
        }

        if (report.Targets.Count > 0)
        {
            var targets = new Table().AddColumns("Target", "Threshold", "Measured", "Result");
            foreach (var t in report.Targets)
            {
                var threshold = string.Create(CultureInfo.InvariantCulture, $"{(t.Comparison == ">=" ? "≥" : "≤")} {t.Threshold:0.##} {t.Unit}");
                var measured = t.Measured is { } st ? ReportWriter.FormatPrecise(st) + " " + t.Unit : "—";
                targets.AddRow(Markup.Escape(t.Target), Markup.Escape(threshold), Markup.Escape(measured),
                    t.Passed switch { true => "[green]✓ pass[/]", false => "[red]✗ fail[/]", null => "not measured" });
            }

            console.Write(targets);
        }

        if (report.SchedulingTargets.Count > 0)
        {
            var targets = new Table().AddColumns("Issue 14 figure", "Threshold", "Measured", "Result", "Beside it");
            foreach (var t in report.SchedulingTargets)
            {
                var threshold = string.Create(CultureInfo.InvariantCulture, $"{(t.Comparison == ">=" ? "≥" : "≤")} {t.Threshold:0.##} {t.Unit}");
                var measured = t.Measured is { } st ? ReportWriter.FormatPrecise(st) + " " + t.Unit : "—";
                targets.AddRow(Markup.Escape(t.Target), Markup.Escape(threshold), Markup.Escape(measured),
                    t.Passed switch { true => "[green]✓ pass[/]", false => "[red]✗ fail[/]", null => "not measured" }, Markup.Escape(t.Detail));
            }

            console.Write(targets);
        }

        console.MarkupLine($"Wrote [bold]{Markup.Escape(Path.GetFullPath(settings.Out))}[/]: {ReportWriter.MarkdownFile}, {ReportWriter.JsonFile}" +
                           (chart ? $", {ReportWriter.ChartFile}" : "") + $" in {clock.Elapsed.TotalMinutes:F1} min.");
        return 0;
    }

    /// <summary>Issue 12 item 3's shapes: 4 jobs of max_tokens 256 on the small model; tiny jobs as the soak test sends them.</summary>
    private static OverheadBenchPlan OverheadPlan(Settings settings, BenchPlan plan) => new(
        Path.GetFullPath(settings.WorkerDll ?? WorkerProcess.FindWorkerDll(AppContext.BaseDirectory)!),
        RawLoopProcess.FindBenchDll(AppContext.BaseDirectory) ?? throw new InvalidOperationException("qwbench.dll not found beside this process"),
        BrokerUri(settings),
        Path.GetFullPath(settings.OverheadModel),
        plan.AllThreads,
        plan.Warmup,
        plan.Repetitions,
        TinyJobs: settings.TinyJobs > 0 ? settings.TinyJobs : plan.Quick ? 100 : 200,
        Mmap: settings.Mmap);

    /// <summary>Issue 14's figures: the batch, interactive and tenant counts of the flags, on the scheduling model.</summary>
    private static SchedulingBenchPlan SchedulingPlan(Settings settings, BenchPlan plan) => new(
        Path.GetFullPath(settings.WorkerDll ?? WorkerProcess.FindWorkerDll(AppContext.BaseDirectory)!),
        BrokerUri(settings),
        Path.GetFullPath(settings.SchedulingModel),
        plan.AllThreads,
        settings.SchedulingSlots,
        plan.Warmup,
        settings.SchedulingReps,
        new JobShape(settings.SchedulingJobList[0], settings.SchedulingJobList[1]),
        settings.SchedulingBatch,
        settings.SchedulingInteractive,
        settings.SchedulingSpread,
        settings.SchedulingTenantList[0],
        settings.SchedulingTenantList[1],
        settings.SchedulingSmallPrefetch);

    /// <summary>--broker-uri, else RabbitMq:Uri of qwbench's configuration (appsettings.json, environment), else the local broker.</summary>
    private static string BrokerUri(Settings settings)
    {
        var configuration = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
            .AddEnvironmentVariables()
            .Build();
        return settings.BrokerUri ?? configuration["RabbitMq:Uri"] ?? "amqp://guest:guest@127.0.0.1:5672/";
    }

    /// <summary>The job shapes the worker's targets are stated for: 8 jobs of ~60 + 48 tokens, a ~150-token shared instruction, the bench's job shape for one job alone.</summary>
    private static WorkerBenchPlan WorkerPlan(Settings settings, BenchPlan plan, string mainModel)
    {
        var broker = BrokerUri(settings);
        var workerDll = Path.GetFullPath(settings.WorkerDll ?? WorkerProcess.FindWorkerDll(AppContext.BaseDirectory)!);
        return new WorkerBenchPlan(
            workerDll,
            broker,
            Path.GetFullPath(mainModel),
            plan.AllThreads,
            plan.Warmup,
            plan.Repetitions,
            SingleJob: plan.Job,
            SlotJobs: 8,
            SlotJob: new JobShape(60, 48),
            ManySlots: 4,
            PrefixJobs: 8,
            PrefixTokens: 150,
            PrefixTailTokens: 12,
            PrefixGenTokens: 8,
            Path.GetFullPath(settings.MemoryModel),
            settings.MemoryJobList[0],
            settings.MemoryJobList[1]);
    }

    /// <summary>One progress bar per section; each step is one measured (or warm-up) run.</summary>
    private sealed class SpectreBenchProgress(ProgressContext ctx) : IBenchProgress
    {
        private ProgressTask? _task;
        private string _title = "";
        private bool _running;

        public void BeginSection(string title, int steps)
        {
            _title = title;
            _task = ctx.AddTask(Markup.Escape(title), maxValue: Math.Max(1, steps));
            _running = false;
        }

        public void Step(string description)
        {
            if (_task is null)
            {
                return;
            }

            if (_running)
            {
                _task.Increment(1);
            }

            _running = true;
            _task.Description = Markup.Escape($"{_title}: {description}");
        }

        public void EndSection()
        {
            if (_task is null)
            {
                return;
            }

            _task.Description = Markup.Escape(_title);
            _task.Value = _task.MaxValue;
            _task.StopTask();
            _task = null;
        }
    }
}
