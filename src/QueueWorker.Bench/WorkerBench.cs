using System.Diagnostics;
using System.Globalization;
using QueueWorker.Contracts;

namespace QueueWorker.Bench;

/// <summary>What the worker benchmark runs (the worker's throughput targets), written into results.json.</summary>
/// <param name="WorkerDll">The worker binary, started as <c>dotnet WorkerDll</c>.</param>
/// <param name="BrokerUri">The broker the workers and the bench share (password redacted in reports).</param>
/// <param name="Model">The model of the speed measurements (a)–(c).</param>
/// <param name="Threads">Inference:Threads and BatchThreads of every worker, and the raw loop's threads.</param>
/// <param name="SingleJob">(a) one job alone: prompt + generated tokens.</param>
/// <param name="SlotJobs">(b) jobs per run, each of <paramref name="SlotJob"/>, with Inference:Slots = <paramref name="ManySlots"/> and 1.</param>
/// <param name="PrefixJobs">(c) jobs sharing one instruction prefix of <paramref name="PrefixTokens"/> tokens, each with a distinct tail.</param>
/// <param name="MemoryModel">(d) the model of the memory measurement (small: it is about per-job growth, not speed).</param>
/// <param name="MemoryJobsFirst">(d) RSS is read after this many jobs…</param>
/// <param name="MemoryJobsTotal">…and again after this many in total.</param>
public sealed record WorkerBenchPlan(
    string WorkerDll,
    string BrokerUri,
    string Model,
    int Threads,
    int Warmup,
    int Repetitions,
    JobShape SingleJob,
    int SlotJobs,
    JobShape SlotJob,
    int ManySlots,
    int PrefixJobs,
    int PrefixTokens,
    int PrefixTailTokens,
    int PrefixGenTokens,
    string MemoryModel,
    int MemoryJobsFirst,
    int MemoryJobsTotal,
    double TimeoutSeconds = 1800);

/// <summary>One of the worker's speed targets against this run's measurement.</summary>
/// <param name="Comparison"><c>&gt;=</c> or <c>&lt;=</c>: how <see cref="Measured"/>'s median must compare with <see cref="Threshold"/>.</param>
/// <param name="Passed">Null when nothing was measured.</param>
public sealed record TargetResult(
    string Id,
    string Target,
    string Comparison,
    double Threshold,
    string Unit,
    Stat? Measured,
    string Detail,
    bool? Passed)
{
    public string Verdict => Passed switch
    {
        true => "✓ pass",
        false => "✗ fail",
        null => "not measured",
    };

    public static TargetResult Judge(string id, string target, string comparison, double threshold, string unit, Stat? measured, string detail)
    {
        bool? passed = measured is null ? null : comparison == ">=" ? measured.Median >= threshold : measured.Median <= threshold;
        return new TargetResult(id, target, comparison, threshold, unit, measured, detail, passed);
    }
}

/// <summary>What the worker benchmark found: measurement tables (as qwbench's sections) and the targets' verdicts.</summary>
public sealed record WorkerBenchResult(IReadOnlyList<SectionResult> Sections, IReadOnlyList<TargetResult> Targets);

/// <summary>
/// The worker's speed targets, measured through the real worker binary and a real broker, side by side in one run:
/// <list type="bullet">
/// <item>(a) one job alone through the whole worker (broker in, result out) against LLamaSharp's raw decode loop
/// (<see cref="BenchContext"/>) on the same model, threads and prompt tokens: prefill and decode tokens/s ≥ 0.9×;</item>
/// <item>(b) <c>SlotJobs</c> distinct jobs with <c>Inference:Slots</c> = 4 against 1: completion tokens/s ≥ 1.8×;</item>
/// <item>(c) jobs sharing a long instruction prefix: the later jobs' median prompt time ≤ 0.5× the first's;</item>
/// <item>(d) the worker's RSS after 500 small jobs within 30 MB of its RSS after 50.</item>
/// </list>
/// (a)–(c) are repeated round-robin (order rotated every round, after warm-ups) so a drifting machine hits them alike;
/// each ratio is taken within one round and reported as median [min–max] over the rounds.
/// </summary>
public sealed class WorkerBenchRunner(WorkerBenchPlan plan, IBenchProgress progress)
{
    public const string Single = "worker-single";
    public const string Slots = "worker-slots";
    public const string Prefix = "worker-prefix";
    public const string Memory = "worker-memory";

    public const double DecodeRatioTarget = 0.9;
    public const double SlotsRatioTarget = 1.8;
    public const double PrefixRatioTarget = 0.5;
    public const double MemoryGrowthTargetMb = 30;

    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(2);
    private int _nextId;

    private TimeSpan Timeout => TimeSpan.FromSeconds(plan.TimeoutSeconds);

    public async Task<WorkerBenchResult> RunAsync(CancellationToken cancellationToken)
    {
        var inv = CultureInfo.InvariantCulture;
        await using var broker = await BenchBroker.ConnectAsync(plan.BrokerUri, cancellationToken);
        var sections = new List<SectionResult>();
        var speed = await RunSpeedAsync(broker, cancellationToken);
        sections.AddRange(speed.Sections);
        var memory = await RunMemoryAsync(broker, cancellationToken);
        sections.Add(memory.Section);

        var targets = new List<TargetResult>(speed.Targets)
        {
            TargetResult.Judge("memory", $"RSS after {plan.MemoryJobsTotal} small jobs within {MemoryGrowthTargetMb:F0} MB of RSS after {plan.MemoryJobsFirst}",
                "<=", MemoryGrowthTargetMb, "MB", memory.GrowthMb,
                string.Create(inv, $"{Path.GetFileName(plan.MemoryModel)}: VmRSS {memory.FirstMb:F1} MB after {plan.MemoryJobsFirst} jobs, " +
                                   $"{memory.TotalMb:F1} MB after {plan.MemoryJobsTotal} (anonymous {memory.FirstAnonMb:F1} → {memory.TotalAnonMb:F1} MB)")),
        };
        return new WorkerBenchResult(sections, targets);
    }

    private sealed record SpeedResult(IReadOnlyList<SectionResult> Sections, IReadOnlyList<TargetResult> Targets);

    private sealed record MemoryResult(SectionResult Section, Stat GrowthMb, double FirstMb, double TotalMb, double FirstAnonMb, double TotalAnonMb);

    private async Task<SpeedResult> RunSpeedAsync(BenchBroker broker, CancellationToken ct)
    {
        const int Measurements = 5;
        progress.BeginSection("worker: throughput targets (a)–(c)", 2 + plan.Warmup * 4 + plan.Repetitions * Measurements);
        try
        {
            progress.Step("loading the model for the raw loop and starting 2 workers");
            using var model = await BenchModel.LoadAsync(plan.Model, mmap: true, ct);
            var rawContext = Math.Max(2048, RawBatchRunner.RoundUp(plan.SingleJob.PromptTokens + plan.SingleJob.GenTokens, 256));
            using var raw = new BenchContext(model, new ContextSpec(rawContext, plan.Threads));

            var manyQueues = broker.NewQueues($"slots{plan.ManySlots}");
            var oneQueues = broker.NewQueues("slots1");
            await using var many = WorkerProcess.Start(plan.WorkerDll, $"Slots={plan.ManySlots}", WorkerSettings(manyQueues, plan.Model, plan.ManySlots));
            await using var one = WorkerProcess.Start(plan.WorkerDll, "Slots=1", WorkerSettings(oneQueues, plan.Model, 1));
            await Task.WhenAll(many.WaitReadyAsync(ReadyTimeout, ct), one.WaitReadyAsync(ReadyTimeout, ct));
            var manyResults = await broker.ConsumeAsync(manyQueues.Results, ct);
            var oneResults = await broker.ConsumeAsync(oneQueues.Results, ct);
            var w4 = new Target(many, manyQueues, manyResults);
            var w1 = new Target(one, oneQueues, oneResults);

            var samples = new[] { "a-worker", "a-raw", "b-many", "b-one", "c-first", "c-rest" }.ToDictionary(k => k, _ => new SampleSet());
            var items = new List<(string Name, Func<int, bool, Task> Run)>
            {
                ("(a) one job, worker", (rep, record) => SingleWorkerAsync(broker, w4, model, rep, record ? samples["a-worker"] : null, ct)),
                ("(a) one job, raw loop", (rep, record) => SingleRawAsync(raw, model, rep, record ? samples["a-raw"] : null, ct)),
                ($"(b) {plan.SlotJobs} jobs, Slots={plan.ManySlots}", (rep, record) => SlotsAsync(broker, w4, model, plan.SlotJobs, rep, record ? samples["b-many"] : null, ct)),
                ($"(b) {plan.SlotJobs} jobs, Slots=1", (rep, record) => SlotsAsync(broker, w1, model, plan.SlotJobs, rep, record ? samples["b-one"] : null, ct)),
                ("(c) shared prefix", (rep, _) => PrefixAsync(broker, w4, model, rep, samples["c-first"], samples["c-rest"], ct)),
            };

            // Warm-up: page faults, graph allocation and the first broker round trips, for every path measured.
            for (var w = 0; w < plan.Warmup; w++)
            {
                progress.Step("warm-up: one job, worker");
                await SingleWorkerAsync(broker, w4, model, -1 - w, null, ct);
                progress.Step("warm-up: one job, raw loop");
                await SingleRawAsync(raw, model, -1 - w, null, ct);
                progress.Step($"warm-up: {plan.ManySlots} jobs, Slots={plan.ManySlots}");
                await SlotsAsync(broker, w4, model, plan.ManySlots, -1 - w, null, ct);
                progress.Step("warm-up: one job, Slots=1");
                await SlotsAsync(broker, w1, model, 1, -1 - w, null, ct);
            }

            for (var rep = 0; rep < plan.Repetitions; rep++)
            {
                for (var k = 0; k < items.Count; k++)
                {
                    var (name, run) = items[(k + rep) % items.Count];
                    progress.Step($"{name}: run {rep + 1}/{plan.Repetitions}");
                    await run(rep, true);
                }
            }

            progress.Step("stopping the workers");
            var s = samples.ToDictionary(p => p.Key, p => p.Value.Summarize());
            return new SpeedResult(SpeedSections(s), SpeedTargets(s));
        }
        finally
        {
            progress.EndSection();
        }
    }

    private sealed record Target(WorkerProcess Worker, WorkerQueues Queues, ResultStream Results);

    private Dictionary<string, string> WorkerSettings(WorkerQueues queues, string model, int? slots)
    {
        var settings = WorkerProcess.Settings(plan.BrokerUri, queues, model, plan.Threads);
        if (slots is { } n)
        {
            settings["Inference:Slots"] = n.ToString(CultureInfo.InvariantCulture);
        }

        return settings;
    }

    // ---- (a) one job alone -------------------------------------------------------------------------------------

    private string SinglePrompt(BenchModel model, int rep) => PromptOf(model, plan.SingleJob.PromptTokens, Marker("request"), 101 + rep);

    private async Task SingleWorkerAsync(BenchBroker broker, Target w, BenchModel model, int rep, SampleSet? into, CancellationToken ct)
    {
        var prompt = SinglePrompt(model, rep);
        var start = Stopwatch.GetTimestamp();
        var wait = await broker.PublishAsync(w.Queues.Jobs, w.Results, Job(prompt, plan.SingleJob.GenTokens), ct);
        var r = (await WaitAllAsync([wait], w.Worker, ct))[0];
        if (into is null)
        {
            return;
        }

        var t = r.Result.Timings!;
        into.Add(Metrics.PrefillTps, t.PromptTokensPerS);
        into.Add(Metrics.DecodeTps, t.TokensPerS);
        into.Add(Metrics.JobMs, Stopwatch.GetElapsedTime(start, r.ArrivedAt).TotalMilliseconds);
        into.Add(Metrics.PromptMs, t.PromptMs);
        into.Add(Metrics.PromptTokens, r.Result.Usage!.PromptTokens);
        into.Add(Metrics.CachedTokens, r.Result.Usage.CachedTokens);
        into.Add(Metrics.CompletionTokens, r.Result.Usage.CompletionTokens);
    }

    private Task SingleRawAsync(BenchContext raw, BenchModel model, int rep, SampleSet? into, CancellationToken ct)
    {
        // The very tokens the worker decodes for the same prompt text (its raw-prompt rendering: BOS, specials parsed).
        var tokens = model.Tokenize(SinglePrompt(model, rep));
        return Task.Run(() =>
        {
            var t = raw.Run([tokens], plan.SingleJob.GenTokens, ct);
            into?.Add(Metrics.PrefillTps, t.PrefillTps);
            into?.Add(Metrics.DecodeTps, t.DecodeTps);
            into?.Add(Metrics.JobMs, t.TotalMs);
            into?.Add(Metrics.PromptMs, t.PrefillMs);
            into?.Add(Metrics.PromptTokens, tokens.Length);
        }, ct);
    }

    // ---- (b) n jobs at once, Slots = 4 vs 1 ------------------------------------------------------------------

    private async Task SlotsAsync(BenchBroker broker, Target w, BenchModel model, int jobs, int rep, SampleSet? into, CancellationToken ct)
    {
        var prompts = Enumerable.Range(0, jobs).Select(j => PromptOf(model, plan.SlotJob.PromptTokens, Marker("request"), 300 + rep * 16 + j)).ToList();
        var waits = new List<Task<ArrivedResult>>();
        var start = Stopwatch.GetTimestamp();
        foreach (var prompt in prompts)
        {
            waits.Add(await broker.PublishAsync(w.Queues.Jobs, w.Results, Job(prompt, plan.SlotJob.GenTokens), ct));
        }

        var results = await WaitAllAsync(waits, w.Worker, ct);
        if (into is null)
        {
            return;
        }

        var wallMs = Stopwatch.GetElapsedTime(start, results.Max(r => r.ArrivedAt)).TotalMilliseconds;
        var completion = results.Sum(r => r.Result.Usage!.CompletionTokens);
        into.Add(Metrics.AggregateTps, completion / (wallMs / 1000));
        into.Add(Metrics.WallMs, wallMs);
        into.Add(Metrics.JobMs, Stat.Of(results.Select(r => Stopwatch.GetElapsedTime(start, r.ArrivedAt).TotalMilliseconds).ToList()).Median);
        into.Add(Metrics.CompletionTokens, completion);
        into.Add(Metrics.PromptTokens, results.Average(r => r.Result.Usage!.PromptTokens));
        into.Add(Metrics.CachedTokens, results.Max(r => r.Result.Usage!.CachedTokens));
    }

    // ---- (c) shared instruction prefix ---------------------------------------------------------------------

    private async Task PrefixAsync(BenchBroker broker, Target w, BenchModel model, int rep, SampleSet first, SampleSet rest, CancellationToken ct)
    {
        // A distinct instruction per round, so the first job of each round finds nothing of it cached.
        // It ends with a newline: tokenizing prefix + tail as one string then gives the prefix's own tokens first.
        var prefix = PromptOf(model, plan.PrefixTokens, Marker("instructions"), 700 + rep) + "\n";
        var prompts = Enumerable.Range(0, plan.PrefixJobs)
            .Select(k => prefix + $"Ticket {k + 1}:" + model.PromptText(plan.PrefixTailTokens, 900 + rep * 16 + k))
            .ToList();

        var firstWait = await broker.PublishAsync(w.Queues.Jobs, w.Results, Job(prompts[0], plan.PrefixGenTokens), ct);
        var head = (await WaitAllAsync([firstWait], w.Worker, ct))[0].Result;
        var waits = new List<Task<ArrivedResult>>();
        foreach (var prompt in prompts.Skip(1))
        {
            waits.Add(await broker.PublishAsync(w.Queues.Jobs, w.Results, Job(prompt, plan.PrefixGenTokens), ct));
        }

        var others = (await WaitAllAsync(waits, w.Worker, ct)).Select(r => r.Result).ToList();
        first.Add(Metrics.PromptMs, head.Timings!.PromptMs);
        first.Add(Metrics.PromptTokens, head.Usage!.PromptTokens);
        first.Add(Metrics.CachedTokens, head.Usage.CachedTokens);
        rest.Add(Metrics.PromptMs, Stat.Of(others.Select(r => r.Timings!.PromptMs).ToList()).Median);
        rest.Add(Metrics.PromptTokens, Stat.Of(others.Select(r => (double)r.Usage!.PromptTokens).ToList()).Median);
        rest.Add(Metrics.CachedTokens, Stat.Of(others.Select(r => (double)r.Usage!.CachedTokens).ToList()).Median);
        rest.Add(Metrics.MinCachedTokens, others.Min(r => r.Usage!.CachedTokens));
    }

    // ---- (d) memory ----------------------------------------------------------------------------------------------

    private async Task<MemoryResult> RunMemoryAsync(BenchBroker broker, CancellationToken ct)
    {
        progress.BeginSection($"worker: memory over {plan.MemoryJobsTotal} jobs", 3);
        try
        {
            progress.Step($"starting a worker on {Path.GetFileName(plan.MemoryModel)}");
            var queues = broker.NewQueues("memory");
            await using var worker = WorkerProcess.Start(plan.WorkerDll, "memory", WorkerSettings(queues, plan.MemoryModel, null));
            await worker.WaitReadyAsync(ReadyTimeout, ct);
            var results = await broker.ConsumeAsync(queues.Results, ct);
            await Task.Delay(Settle, ct);
            var atStart = worker.ReadRss();

            progress.Step($"{plan.MemoryJobsFirst} small jobs");
            await SmallJobsAsync(broker, worker, queues, results, 0, plan.MemoryJobsFirst, ct);
            await Task.Delay(Settle, ct);
            var afterFirst = worker.ReadRss();

            progress.Step($"{plan.MemoryJobsTotal - plan.MemoryJobsFirst} more small jobs");
            await SmallJobsAsync(broker, worker, queues, results, plan.MemoryJobsFirst, plan.MemoryJobsTotal, ct);
            await Task.Delay(Settle, ct);
            var afterAll = worker.ReadRss();

            var configs = new List<ConfigResult>
            {
                Rss("after start (no job yet)", atStart),
                Rss($"after {plan.MemoryJobsFirst} jobs", afterFirst),
                Rss($"after {plan.MemoryJobsTotal} jobs", afterAll),
            };
            var notes = new List<string>
            {
                $"One worker process on {plan.MemoryModel} (Inference:Slots default, {plan.Threads} threads). Small jobs: short story prompts and chat messages, " +
                "greedy and sampled, 8–32 tokens, some with stop strings; all published at once per batch. RSS = VmRSS of the worker's /proc/<pid>/status, " +
                $"read {Settle.TotalSeconds:F0} s after the last result of each batch. The model file is memory-mapped: its pages count in RSS but do not grow per job.",
            };
            var section = new SectionResult(Memory, "Worker memory over many jobs (issue 3, d)",
                $"{plan.MemoryJobsTotal} jobs through one worker; RSS read after {plan.MemoryJobsFirst} and after {plan.MemoryJobsTotal}", configs, notes);
            var growth = Stat.Of([afterAll.TotalMb - afterFirst.TotalMb]);
            return new MemoryResult(section, growth, afterFirst.TotalMb, afterAll.TotalMb, afterFirst.AnonMb, afterAll.AnonMb);
        }
        finally
        {
            progress.EndSection();
        }

        static ConfigResult Rss(string name, ProcessMemory.Rss rss) => new(name, new Dictionary<string, Stat>
        {
            [Metrics.RssMb] = Stat.Of([rss.TotalMb]),
            [Metrics.RssAnonMb] = Stat.Of([rss.AnonMb]),
            [Metrics.RssFileMb] = Stat.Of([rss.FileMb]),
        }, new Dictionary<string, string>());
    }

    private static readonly string[] Names = ["Lily", "Tom", "Ben", "Sue", "Max", "Mia", "Sam", "Anna", "Tim", "Lucy", "Jack"];
    private static readonly string[] Places = ["park", "forest", "beach", "shop", "garden", "school", "river", "castle"];

    /// <summary>A varied small job: raw prompt or chat messages, greedy or sampled, some with stop strings.</summary>
    public static JobRequest SmallJob(int i, string id)
    {
        var name = Names[i % Names.Length];
        var place = Places[i / Names.Length % Places.Length];
        return new JobRequest
        {
            Id = id,
            Prompt = i % 5 == 4 ? null : $"Once upon a time, {name} went to the {place}",
            Messages = i % 5 == 4 ? [new ChatMessage("system", "You tell short stories."), new ChatMessage("user", $"Tell me about {name} at the {place}.")] : null,
            MaxTokens = 8 + i % 25,
            Temperature = i % 3 == 0 ? 0 : 0.8f,
            Seed = (uint)i,
            Stop = i % 7 == 0 ? ["."] : null,
        };
    }

    private async Task SmallJobsAsync(BenchBroker broker, WorkerProcess worker, WorkerQueues queues, ResultStream results, int from, int to, CancellationToken ct)
    {
        var waits = new List<Task<ArrivedResult>>();
        for (var i = from; i < to; i++)
        {
            waits.Add(await broker.PublishAsync(queues.Jobs, results, SmallJob(i, $"small-{NextId()}"), ct));
        }

        await WaitAllAsync(waits, worker, ct);
    }

    // ---- helpers -------------------------------------------------------------------------------------------------

    private int NextId() => Interlocked.Increment(ref _nextId);

    private static readonly string[] Words =
    [
        "Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel", "India", "Juliett", "Kilo", "Lima", "Mike",
        "November", "Oscar", "Papa", "Quebec", "Romeo", "Sierra", "Tango", "Uniform", "Victor", "Whiskey", "Xray", "Yankee", "Zulu",
    ];

    /// <summary>
    /// A marker that starts every prompt of the run differently from the one before (first letters rotate), so a prompt
    /// shares at most a token or two with anything cached: no measured prefill is shortened by an accidental prefix hit.
    /// </summary>
    private string Marker(string what)
    {
        var id = NextId();
        return $"{Words[id % Words.Length]} {what} {id}:";
    }

    private static JobRequest Job(string prompt, int maxTokens) => new()
    {
        Id = "bench-" + Guid.NewGuid().ToString("N")[..12],
        Prompt = prompt,
        MaxTokens = maxTokens,
        Temperature = 0,
    };

    /// <summary>
    /// A prompt of exactly <paramref name="tokens"/> tokens as the worker counts them (BOS included) where the text allows:
    /// a distinct marker (so no two prompts share more than a token or two) followed by plain English from the bench corpus.
    /// </summary>
    public static string PromptOf(BenchModel model, int tokens, string marker, int variant)
    {
        var body = Math.Max(2, tokens - model.Tokenize(marker).Length + 1);
        var text = marker + model.PromptText(body, variant);
        for (var i = 0; i < 4; i++)
        {
            var diff = tokens - model.Tokenize(text).Length;
            if (diff == 0 || body + diff < 2)
            {
                break;
            }

            body += diff;
            text = marker + model.PromptText(body, variant);
        }

        return text;
    }

    private Task<ArrivedResult[]> WaitAllAsync(IReadOnlyList<Task<ArrivedResult>> waits, WorkerProcess worker, CancellationToken ct) =>
        worker.WaitCompletedAsync(waits, Timeout, ct);

    // ---- report ----------------------------------------------------------------------------------------------------

    private List<SectionResult> SpeedSections(IReadOnlyDictionary<string, IReadOnlyDictionary<string, Stat>> s)
    {
        var none = new Dictionary<string, string>();
        return
        [
            new SectionResult(Single, "One job through the worker against LLamaSharp's raw loop (issue 3, a)",
                $"one job of {plan.SingleJob.PromptTokens} prompt + {plan.SingleJob.GenTokens} generated tokens (greedy), alone; the worker with Inference:Slots = {plan.ManySlots}, {plan.Threads} threads",
                [
                    new ConfigResult("worker (broker in, result out)", s["a-worker"], new Dictionary<string, string> { ["source"] = "the result's timings" }),
                    new ConfigResult("raw LLamaSharp decode loop", s["a-raw"], new Dictionary<string, string> { ["source"] = "BenchContext in qwbench's process" }),
                ],
                [
                    "worker prefill tok/s = the result's timings.prompt_tokens_per_s ((prompt_tokens − cached_tokens) / prompt_ms); decode tok/s = timings.tokens_per_s " +
                    "((completion_tokens − 1) / generation_ms). job ms = from publish to the result's arrival (broker, parsing, tokenization included).",
                    "raw: the same prompt tokens through LLamaSharp directly (one LLamaBatch for the prompt but its last token, then that token with logits; then one " +
                    "decode per generated token, greedy), in qwbench's process while the workers idle.",
                ]),
            new SectionResult(Slots, $"{plan.SlotJobs} jobs through the worker: Inference:Slots = {plan.ManySlots} against 1 (issue 3, b)",
                $"{plan.SlotJobs} distinct jobs of {plan.SlotJob.PromptTokens} prompt + {plan.SlotJob.GenTokens} generated tokens (greedy), all published at once; {plan.Threads} threads",
                [
                    new ConfigResult("Slots = 1", s["b-one"], none),
                    new ConfigResult($"Slots = {plan.ManySlots}", s["b-many"], none),
                ],
                [
                    "aggregate tok/s = completion tokens of all jobs (as the results report them) / wall time from the first publish to the last result; " +
                    "job ms = each job's publish → result (median over the jobs). The consumer's prefetch follows Inference:Slots.",
                ]),
            new SectionResult(Prefix, $"{plan.PrefixJobs} jobs sharing a {plan.PrefixTokens}-token instruction (issue 3, c)",
                $"job 1 alone (its prefix not cached), then jobs 2–{plan.PrefixJobs} together, each with a distinct ~{plan.PrefixTailTokens}-token tail and {plan.PrefixGenTokens} generated tokens; Inference:Slots = {plan.ManySlots}",
                [
                    new ConfigResult("job 1", s["c-first"], none),
                    new ConfigResult($"jobs 2–{plan.PrefixJobs} (median of each run)", s["c-rest"], none),
                ],
                ["prompt ms = the result's timings.prompt_ms: decode time of the prompt tokens not reused from the KV cache; cached tokens = usage.cached_tokens."]),
        ];
    }

    private List<TargetResult> SpeedTargets(IReadOnlyDictionary<string, IReadOnlyDictionary<string, Stat>> s)
    {
        var aw = s["a-worker"];
        var ar = s["a-raw"];
        var prefill = Ratio(aw[Metrics.PrefillTps], ar[Metrics.PrefillTps]);
        var decode = Ratio(aw[Metrics.DecodeTps], ar[Metrics.DecodeTps]);
        var many = s["b-many"];
        var one = s["b-one"];
        var slots = Ratio(many[Metrics.AggregateTps], one[Metrics.AggregateTps]);
        var expected = plan.SlotJobs * plan.SlotJob.GenTokens;
        var first = s["c-first"];
        var rest = s["c-rest"];
        var prefix = Ratio(rest[Metrics.PromptMs], first[Metrics.PromptMs]);

        return
        [
            TargetResult.Judge("single-prefill", "one job through the worker: prefill tok/s ≥ 0.9 × LLamaSharp's raw loop", ">=", DecodeRatioTarget, "×", prefill,
                $"worker {F(aw[Metrics.PrefillTps])} vs raw {F(ar[Metrics.PrefillTps])} prompt tok/s ({F(aw[Metrics.PromptTokens])} prompt tokens, {F(aw[Metrics.CachedTokens])} cached)"),
            TargetResult.Judge("single-decode", "one job through the worker: decode tok/s ≥ 0.9 × LLamaSharp's raw loop", ">=", DecodeRatioTarget, "×", decode,
                $"worker {F(aw[Metrics.DecodeTps])} vs raw {F(ar[Metrics.DecodeTps])} tok/s; {F(aw[Metrics.CompletionTokens])} of {plan.SingleJob.GenTokens} tokens generated; " +
                $"whole job {F(aw[Metrics.JobMs])} ms through the broker vs {F(ar[Metrics.JobMs])} ms raw"),
            TargetResult.Judge("slots", $"{plan.SlotJobs} jobs of ~{plan.SlotJob.PromptTokens}+{plan.SlotJob.GenTokens} tokens: Slots = {plan.ManySlots} gives ≥ 1.8 × the completion tok/s of Slots = 1",
                ">=", SlotsRatioTarget, "×", slots,
                $"Slots = {plan.ManySlots}: {F(many[Metrics.AggregateTps])} tok/s, {F(many[Metrics.WallMs])} ms wall; Slots = 1: {F(one[Metrics.AggregateTps])} tok/s, {F(one[Metrics.WallMs])} ms wall; " +
                $"completion tokens per run {F(many[Metrics.CompletionTokens])} and {F(one[Metrics.CompletionTokens])} of {expected} asked"),
            TargetResult.Judge("prefix", $"{plan.PrefixJobs} jobs sharing a ~{plan.PrefixTokens}-token prefix: median prompt time of jobs 2–{plan.PrefixJobs} ≤ 0.5 × job 1's, cached_tokens reported",
                "<=", PrefixRatioTarget, "×", prefix,
                $"job 1: {F(first[Metrics.PromptMs])} ms for {F(first[Metrics.PromptTokens])} prompt tokens ({F(first[Metrics.CachedTokens])} cached); " +
                $"jobs 2–{plan.PrefixJobs}: {F(rest[Metrics.PromptMs])} ms, cached_tokens {F(rest[Metrics.CachedTokens])} (lowest {F(rest[Metrics.MinCachedTokens])}) of {F(rest[Metrics.PromptTokens])}"),
        ];
    }

    /// <summary>Per-round ratios (both samples of a round were measured in that round), summarized.</summary>
    private static Stat Ratio(Stat numerator, Stat denominator) =>
        Stat.Of(numerator.Samples.Zip(denominator.Samples, (a, b) => b == 0 ? double.NaN : a / b).ToList());

    private static string F(Stat s) => ReportWriter.Format(s);
}
