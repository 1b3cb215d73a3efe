using System.Diagnostics;
using System.Globalization;
using QueueWorker.Contracts;

namespace QueueWorker.Bench;

/// <summary>What the scheduling benchmark (issue 14's figures) runs, written into results.json.</summary>
/// <param name="WorkerDll">The worker binary, started as <c>dotnet WorkerDll</c>.</param>
/// <param name="BrokerUri">The broker the workers and the bench share (password redacted in reports).</param>
/// <param name="Model">The model of every worker (small: the figures are about order, not speed).</param>
/// <param name="Slots">Inference:Slots of every worker.</param>
/// <param name="Job">Every job's shape: prompt tokens and generated tokens (end of text suppressed, so each job generates all of them).</param>
/// <param name="BatchJobs">Figure 1: jobs of the batch, all queued at once on the batch lane (or the single queue).</param>
/// <param name="InteractiveJobs">Figure 1: interactive jobs, published one at a time while the batch runs.</param>
/// <param name="InteractiveSpread">Figure 1: interactive job k is published once k × <paramref name="BatchJobs"/> × spread / <paramref name="InteractiveJobs"/> batch results have arrived.</param>
/// <param name="FloodJobs">Figure 2: tenant A's jobs, queued first.</param>
/// <param name="TenantJobs">Figure 2: tenant B's jobs, queued right after A's.</param>
/// <param name="SmallPrefetch">Figure 2: RabbitMq:Prefetch of the second fair-share worker (0: no such worker); the first holds every job.</param>
public sealed record SchedulingBenchPlan(
    string WorkerDll,
    string BrokerUri,
    string Model,
    int Threads,
    int Slots,
    int Warmup,
    int Repetitions,
    JobShape Job,
    int BatchJobs,
    int InteractiveJobs,
    double InteractiveSpread,
    int FloodJobs,
    int TenantJobs,
    int SmallPrefetch,
    double TimeoutSeconds = 1800)
{
    /// <summary>RabbitMq:Prefetch of the fair-share worker that holds every job of figure 2 (the option's limit is 1000).</summary>
    public int HoldAllPrefetch => Math.Min(1000, FloodJobs + TenantJobs);
}

/// <summary>What the scheduling benchmark found: its two tables and the targets judged against them.</summary>
/// <param name="BrokerPrefix">The prefix of every queue and exchange the run used (all deleted when it ends).</param>
public sealed record SchedulingBenchResult(IReadOnlyList<SectionResult> Sections, IReadOnlyList<TargetResult> Targets, string BrokerPrefix);

/// <summary>
/// Issue 14's two figures, through real worker processes (started as the product is: environment configuration, real
/// broker, real model), beside today's single-queue behaviour, in one run:
/// <list type="bullet">
/// <item>Figure 1: <c>BatchJobs</c> jobs queued on the batch lane, then <c>InteractiveJobs</c> published one at a time on
/// the interactive lane while the batch runs; their queue wait (the result's <c>timings.queued_ms</c>: publish to the start
/// of generation) against the same jobs on one queue behind the same batch, and against one job's own time alone.</item>
/// <item>Figure 2: tenant A's <c>FloodJobs</c> queued, then tenant B's <c>TenantJobs</c>: the time until B's last result
/// with fair share (a worker that holds every job; and one with a smaller prefetch) against B alone and against first
/// come, first served (the same jobs without tenants).</item>
/// </list>
/// Repetitions go round-robin over the configurations (order rotated every round, after a warm-up); each ratio is taken
/// within a round and reported as median [min–max] over the rounds.
/// </summary>
public sealed class SchedulingBenchRunner(SchedulingBenchPlan plan, IBenchProgress progress)
{
    public const string LanesSection = "scheduling-lanes";
    public const string FairnessSection = "scheduling-fairness";

    public const string Alone = "one job alone (idle worker)";
    public const string WithLanes = "lanes: interactive beside the batch lane";
    public const string SingleQueue = "single queue: behind the batch";
    public const string TenantAlone = "tenant B alone";
    public const string FirstCome = "first come, first served (no tenants)";

    public const string InteractiveTargetId = "interactive-p95";
    public const string FairnessTargetId = "fair-share";
    public const double InteractiveTarget = 1.0;
    public const double FairnessTarget = 2.0;

    public const string InteractiveLane = "interactive";
    public const string BatchLane = "batch";

    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(5);
    private int _nextId;

    private TimeSpan Timeout => TimeSpan.FromSeconds(plan.TimeoutSeconds);

    public static string FairShare(int prefetch, bool holdsAll) =>
        $"fair share, Prefetch {prefetch}" + (holdsAll ? " (the worker holds every job)" : "");

    public async Task<SchedulingBenchResult> RunAsync(CancellationToken cancellationToken)
    {
        var ct = cancellationToken;
        var fairConfigs = plan.SmallPrefetch > 0 ? 4 : 3;
        progress.BeginSection("scheduling: lanes and fair share", 2 + plan.Warmup + plan.Repetitions * (3 + fairConfigs));
        try
        {
            progress.Step($"starting {(plan.SmallPrefetch > 0 ? 4 : 3)} workers on {Path.GetFileName(plan.Model)}");
            using var model = await BenchModel.LoadAsync(plan.Model, mmap: true, ct);
            var eos = model.Weights.Vocab.EOS;
            await using var broker = await BenchBroker.ConnectAsync(plan.BrokerUri, ct);
            var control = broker.NewControlExchange();

            var lanesQueues = broker.NewQueues("lanes", [InteractiveLane, BatchLane]);
            var singleQueues = broker.NewQueues("single");
            var fairQueues = broker.NewQueues("fair");
            var smallQueues = plan.SmallPrefetch > 0 ? broker.NewQueues("fair-small") : null;
            await using var lanesWorker = WorkerProcess.Start(plan.WorkerDll, "lanes", Settings(lanesQueues, control, null,
                ("RabbitMq:Lanes:0", InteractiveLane), ("RabbitMq:Lanes:1", BatchLane)));
            await using var singleWorker = WorkerProcess.Start(plan.WorkerDll, "single queue", Settings(singleQueues, control, null));
            await using var fairWorker = WorkerProcess.Start(plan.WorkerDll, "fair share", Settings(fairQueues, control, plan.HoldAllPrefetch));
            await using var smallWorker = smallQueues is null ? null
                : WorkerProcess.Start(plan.WorkerDll, "fair share, small prefetch", Settings(smallQueues, control, plan.SmallPrefetch));
            var workers = new[] { lanesWorker, singleWorker, fairWorker, smallWorker }.OfType<WorkerProcess>().ToList();
            await Task.WhenAll(workers.Select(w => w.WaitReadyAsync(ReadyTimeout, ct)));

            var lanes = new Target(lanesWorker, lanesQueues.Lane(InteractiveLane), lanesQueues.Lane(BatchLane), await broker.ConsumeAsync(lanesQueues.Results, ct));
            var single = new Target(singleWorker, singleQueues.Jobs, singleQueues.Jobs, await broker.ConsumeAsync(singleQueues.Results, ct));
            var fair = new Target(fairWorker, fairQueues.Jobs, fairQueues.Jobs, await broker.ConsumeAsync(fairQueues.Results, ct));
            var small = smallQueues is null || smallWorker is null ? null
                : new Target(smallWorker, smallQueues.Jobs, smallQueues.Jobs, await broker.ConsumeAsync(smallQueues.Results, ct));

            var fairName = FairShare(plan.HoldAllPrefetch, holdsAll: true);
            var smallName = FairShare(plan.SmallPrefetch, holdsAll: false);
            var samples = new[] { Alone, WithLanes, SingleQueue, TenantAlone, FirstCome, fairName, smallName }.ToDictionary(k => k, _ => new SampleSet());
            var items = new List<(string Name, Func<Task> Run)>
            {
                (Alone, () => AloneAsync(broker, lanes, model, eos, samples[Alone], ct)),
                (WithLanes, () => BesideBatchAsync(broker, lanes, model, eos, samples[WithLanes], ct)),
                (SingleQueue, () => BesideBatchAsync(broker, single, model, eos, samples[SingleQueue], ct)),
                (TenantAlone, () => TenantsAsync(broker, fair, model, eos, flood: false, tenants: true, samples[TenantAlone], ct)),
                (FirstCome, () => TenantsAsync(broker, fair, model, eos, flood: true, tenants: false, samples[FirstCome], ct)),
                (fairName, () => TenantsAsync(broker, fair, model, eos, flood: true, tenants: true, samples[fairName], ct)),
            };
            if (small is not null)
            {
                items.Add((smallName, () => TenantsAsync(broker, small, model, eos, flood: true, tenants: true, samples[smallName], ct)));
            }

            // Warm-up: graph allocation, page faults and the first broker round trips of every worker, a slot-full each.
            for (var w = 0; w < plan.Warmup; w++)
            {
                progress.Step("warm-up: every worker");
                await Task.WhenAll(new[] { lanes, single, fair, small }.OfType<Target>()
                    .Select(t => WarmAsync(broker, t, model, eos, ct)));
            }

            for (var rep = 0; rep < plan.Repetitions; rep++)
            {
                for (var k = 0; k < items.Count; k++)
                {
                    var (name, run) = items[(k + rep) % items.Count];
                    progress.Step($"{name}: run {rep + 1}/{plan.Repetitions}");
                    await run();
                }
            }

            progress.Step("stopping the workers");
            var s = samples.Where(p => p.Key != smallName || small is not null).ToDictionary(p => p.Key, p => p.Value.Summarize());
            return new SchedulingBenchResult(Sections(s, fairName, small is null ? null : smallName), Targets(s, fairName, small is null ? null : smallName), broker.Prefix);
        }
        finally
        {
            progress.EndSection();
        }
    }

    private sealed record Target(WorkerProcess Worker, string HighQueue, string LowQueue, ResultStream Results);

    private Dictionary<string, string> Settings(WorkerQueues queues, string control, int? prefetch, params (string Key, string Value)[] extra)
    {
        var inv = CultureInfo.InvariantCulture;
        var settings = WorkerProcess.Settings(plan.BrokerUri, queues, plan.Model, plan.Threads);
        settings["RabbitMq:ControlExchange"] = control;
        settings["Inference:Slots"] = plan.Slots.ToString(inv);
        if (prefetch is { } p)
        {
            settings["RabbitMq:Prefetch"] = p.ToString(inv);
        }

        foreach (var (key, value) in extra)
        {
            settings[key] = value;
        }

        return settings;
    }

    // ---- figure 1: interactive jobs beside a batch -----------------------------------------------------------

    private async Task WarmAsync(BenchBroker broker, Target t, BenchModel model, LLama.Native.LLamaToken? eos, CancellationToken ct)
    {
        var waits = new List<Task<ArrivedResult>>();
        for (var i = 0; i < plan.Slots; i++)
        {
            waits.Add(await broker.PublishAsync(i == 0 ? t.HighQueue : t.LowQueue, t.Results, Job(model, eos, null), ct));
        }

        await WaitAllAsync(waits, t.Worker, ct);
    }

    private async Task AloneAsync(BenchBroker broker, Target t, BenchModel model, LLama.Native.LLamaToken? eos, SampleSet into, CancellationToken ct)
    {
        var start = Stopwatch.GetTimestamp();
        var wait = await broker.PublishAsync(t.HighQueue, t.Results, Job(model, eos, null), ct);
        var r = (await WaitAllAsync([wait], t.Worker, ct))[0];
        var timings = r.Result.Timings!;
        var queued = timings.QueuedMs ?? double.NaN;
        into.Add(Metrics.QueueWaitP50Ms, queued);
        into.Add(Metrics.QueueWaitP95Ms, queued);
        into.Add(Metrics.QueueWaitMaxMs, queued);
        into.Add(Metrics.LatencyP50Ms, Stopwatch.GetElapsedTime(start, r.ArrivedAt).TotalMilliseconds);
        into.Add(Metrics.LatencyP95Ms, Stopwatch.GetElapsedTime(start, r.ArrivedAt).TotalMilliseconds);
        into.Add(Metrics.ServiceMs, Service(timings));
        into.Add(Metrics.CompletionTokens, r.Result.Usage!.CompletionTokens);
    }

    private async Task BesideBatchAsync(BenchBroker broker, Target t, BenchModel model, LLama.Native.LLamaToken? eos, SampleSet into, CancellationToken ct)
    {
        var batchStart = Stopwatch.GetTimestamp();
        var batch = new List<Task<ArrivedResult>>(plan.BatchJobs);
        var done = 0;
        for (var i = 0; i < plan.BatchJobs; i++)
        {
            var wait = await broker.PublishAsync(t.LowQueue, t.Results, Job(model, eos, null), ct);
            _ = wait.ContinueWith(_ => Interlocked.Increment(ref done), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            batch.Add(wait);
        }

        // One at a time, spread over the first part of the batch: every interactive job arrives with most of it still queued.
        var interactive = new List<(long Published, Task<ArrivedResult> Wait)>(plan.InteractiveJobs);
        for (var k = 0; k < plan.InteractiveJobs; k++)
        {
            var trigger = InteractiveTrigger(k, plan.BatchJobs, plan.InteractiveJobs, plan.InteractiveSpread);
            var waited = Stopwatch.StartNew();
            while (Volatile.Read(ref done) < trigger)
            {
                if (waited.Elapsed > Timeout)
                {
                    t.Worker.ThrowIfExited();
                    throw new TimeoutException($"worker '{t.Worker.Name}': {Volatile.Read(ref done)} of {plan.BatchJobs} batch results within {Timeout.TotalSeconds:F0} s:\n{t.Worker.OutputTail}");
                }

                await Task.Delay(Poll, ct);
            }

            var published = Stopwatch.GetTimestamp();
            interactive.Add((published, await broker.PublishAsync(t.HighQueue, t.Results, Job(model, eos, null), ct)));
        }

        var batchResults = await WaitAllAsync(batch, t.Worker, ct);
        var interactiveResults = await WaitAllAsync(interactive.Select(i => i.Wait).ToList(), t.Worker, ct);
        var waits = interactiveResults.Select(r => r.Result.Timings!.QueuedMs ?? double.NaN).ToList();
        var latencies = interactive.Zip(interactiveResults, (i, r) => Stopwatch.GetElapsedTime(i.Published, r.ArrivedAt).TotalMilliseconds).ToList();
        into.Add(Metrics.QueueWaitP50Ms, Percentile(waits, 0.50));
        into.Add(Metrics.QueueWaitP95Ms, Percentile(waits, 0.95));
        into.Add(Metrics.QueueWaitMaxMs, waits.Max());
        into.Add(Metrics.LatencyP50Ms, Percentile(latencies, 0.50));
        into.Add(Metrics.LatencyP95Ms, Percentile(latencies, 0.95));
        into.Add(Metrics.ServiceMs, Percentile(batchResults.Select(r => Service(r.Result.Timings!)).ToList(), 0.50));
        into.Add(Metrics.CompletionTokens, Percentile(batchResults.Select(r => (double)r.Result.Usage!.CompletionTokens).ToList(), 0.50));
        into.Add(Metrics.BatchWallMs, Stopwatch.GetElapsedTime(batchStart, batchResults.Max(r => r.ArrivedAt)).TotalMilliseconds);
        // How many batch jobs finished before the last interactive result: the whole batch on one queue, a few with lanes.
        var lastInteractive = interactiveResults.Max(r => r.ArrivedAt);
        into.Add(Metrics.BatchDoneBeforeLast, batchResults.Count(r => r.ArrivedAt < lastInteractive));
    }

    /// <summary>Batch results that must have arrived before interactive job <paramref name="k"/> (0-based) is published.</summary>
    public static int InteractiveTrigger(int k, int batchJobs, int interactiveJobs, double spread) =>
        (int)Math.Floor(k * batchJobs * spread / interactiveJobs);

    // ---- figure 2: two tenants ------------------------------------------------------------------------------

    private async Task TenantsAsync(BenchBroker broker, Target t, BenchModel model, LLama.Native.LLamaToken? eos, bool flood, bool tenants,
        SampleSet into, CancellationToken ct)
    {
        var start = Stopwatch.GetTimestamp();
        var a = new List<Task<ArrivedResult>>();
        if (flood)
        {
            for (var i = 0; i < plan.FloodJobs; i++)
            {
                a.Add(await broker.PublishAsync(t.LowQueue, t.Results, Job(model, eos, tenants ? "tenant-a" : null), ct));
            }
        }

        var bStart = Stopwatch.GetTimestamp();
        var b = new List<Task<ArrivedResult>>();
        var bPublished = new List<long>();
        for (var i = 0; i < plan.TenantJobs; i++)
        {
            bPublished.Add(Stopwatch.GetTimestamp());
            b.Add(await broker.PublishAsync(t.LowQueue, t.Results, Job(model, eos, tenants ? "tenant-b" : null), ct));
        }

        var bPublishMs = Stopwatch.GetElapsedTime(bStart).TotalMilliseconds;

        var bResults = await WaitAllAsync(b, t.Worker, ct);
        var aResults = await WaitAllAsync(a, t.Worker, ct);
        into.Add(Metrics.TenantBFinishMs, Stopwatch.GetElapsedTime(bStart, bResults.Max(r => r.ArrivedAt)).TotalMilliseconds);
        into.Add(Metrics.TenantBPublishMs, bPublishMs);
        into.Add(Metrics.TenantBQueueWaitP50Ms, Percentile(bResults.Select(r => r.Result.Timings!.QueuedMs ?? double.NaN).ToList(), 0.50));
        // The queue wait split at the worker's receipt: total_ms runs from receipt to result, so receipt → start of work is
        // total − prompt − generation, and publish → receipt (the broker, and the worker taking the delivery in) the rest.
        static double InWorkerWait(Timings t) => t.TotalMs - t.PromptMs - t.GenerationMs;
        into.Add(Metrics.TenantBToWorkerP50Ms, Percentile(bResults.Select(r => (r.Result.Timings!.QueuedMs ?? double.NaN) - InWorkerWait(r.Result.Timings!)).ToList(), 0.50));
        into.Add(Metrics.TenantBInWorkerWaitP50Ms, Percentile(bResults.Select(r => InWorkerWait(r.Result.Timings!)).ToList(), 0.50));
        into.Add(Metrics.LatencyP50Ms, Percentile(bPublished.Zip(bResults, (p, r) => Stopwatch.GetElapsedTime(p, r.ArrivedAt).TotalMilliseconds).ToList(), 0.50));
        into.Add(Metrics.ServiceMs, Percentile(aResults.Concat(bResults).Select(r => Service(r.Result.Timings!)).ToList(), 0.50));
        into.Add(Metrics.InWorkerMs, Percentile(aResults.Concat(bResults).Select(r => r.Result.Timings!.TotalMs).ToList(), 0.50));
        into.Add(Metrics.WallMs, Stopwatch.GetElapsedTime(start, aResults.Concat(bResults).Max(r => r.ArrivedAt)).TotalMilliseconds);
        // Where B's last job finished among all results: first come puts it last, fair share about 2 × B's jobs in.
        var order = aResults.Concat(bResults).OrderBy(r => r.ArrivedAt).ToList();
        into.Add(Metrics.TenantBLastPosition, order.FindLastIndex(r => bResults.Contains(r)) + 1);
    }

    // ---- helpers -------------------------------------------------------------------------------------------

    /// <summary>Nearest-rank percentile (the smallest sample with at least <paramref name="p"/> of the samples at or below it).</summary>
    public static double Percentile(IReadOnlyList<double> samples, double p)
    {
        if (samples.Count == 0)
        {
            throw new ArgumentException("a percentile needs at least one sample", nameof(samples));
        }

        var sorted = samples.Order().ToArray();
        var rank = (int)Math.Ceiling(p * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    /// <summary>One job's own time in the engine: its prompt and its generation (what a slot is held for).</summary>
    private static double Service(Timings t) => t.PromptMs + t.GenerationMs;

    private static readonly string[] Words =
    [
        "Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel", "India", "Juliett", "Kilo", "Lima", "Mike",
        "November", "Oscar", "Papa", "Quebec", "Romeo", "Sierra", "Tango", "Uniform", "Victor", "Whiskey", "Xray", "Yankee", "Zulu",
    ];

    /// <summary>
    /// A job of the plan's shape with a prompt of its own (a distinct marker first: no prompt reuses another's cached prefix
    /// beyond a token or two), greedy, end of text suppressed so every job generates exactly its tokens.
    /// </summary>
    private JobRequest Job(BenchModel model, LLama.Native.LLamaToken? eos, string? tenant)
    {
        var n = Interlocked.Increment(ref _nextId);
        return new JobRequest
        {
            Id = "sched-" + Guid.NewGuid().ToString("N")[..12],
            Prompt = WorkerBenchRunner.PromptOf(model, plan.Job.PromptTokens, $"{Words[n % Words.Length]} {n}:", n % 97),
            MaxTokens = plan.Job.GenTokens,
            Temperature = 0,
            LogitBias = eos is { } e ? new Dictionary<int, float> { [(int)e] = -100 } : null,
            User = tenant,
        };
    }

    private Task<ArrivedResult[]> WaitAllAsync(IReadOnlyList<Task<ArrivedResult>> waits, WorkerProcess worker, CancellationToken ct) =>
        worker.WaitCompletedAsync(waits, Timeout, ct);

    // ---- report ----------------------------------------------------------------------------------------------

    private List<SectionResult> Sections(IReadOnlyDictionary<string, IReadOnlyDictionary<string, Stat>> s, string fairName, string? smallName)
    {
        var none = new Dictionary<string, string>();
        var fairness = new List<ConfigResult>
        {
            new(TenantAlone, WithRatio(s[TenantAlone], s[TenantAlone]), none),
            new(FirstCome, WithRatio(s[FirstCome], s[TenantAlone]), none),
            new(fairName, WithRatio(s[fairName], s[TenantAlone]), none),
        };
        if (smallName is not null)
        {
            fairness.Add(new ConfigResult(smallName, WithRatio(s[smallName], s[TenantAlone]), none));
        }

        return
        [
            new SectionResult(LanesSection, $"Interactive jobs beside a batch of {plan.BatchJobs}: lanes against one queue (issue 14, figure 1)",
                $"{plan.BatchJobs} batch jobs queued at once, then {plan.InteractiveJobs} interactive jobs published one at a time while the batch runs; " +
                $"jobs of {plan.Job.PromptTokens} prompt + {plan.Job.GenTokens} generated tokens; Inference:Slots = {plan.Slots}, {plan.Threads} threads",
                [
                    new ConfigResult(Alone, s[Alone], new Dictionary<string, string> { ["worker"] = "lanes worker, interactive lane, nothing else queued" }),
                    new ConfigResult(WithLanes, s[WithLanes], new Dictionary<string, string> { ["worker"] = $"RabbitMq:Lanes = [{InteractiveLane}, {BatchLane}]" }),
                    new ConfigResult(SingleQueue, s[SingleQueue], new Dictionary<string, string> { ["worker"] = "no lanes (today's single queue)" }),
                ],
                [
                    "queue wait = the interactive job's timings.queued_ms: from its publish (timestamp_in_ms header) to the start of its generation " +
                    "(broker queue + wait in the engine for a slot); p50/p95 are nearest-rank over the interactive jobs of one run. latency = publish → result arrival.",
                    $"interactive job k (0-based) is published once ⌊k × {plan.BatchJobs} × {plan.InteractiveSpread.ToString(CultureInfo.InvariantCulture)} / {plan.InteractiveJobs}⌋ " +
                    "batch results have arrived: one at a time, spread over the first part of the batch, the same points in both configurations.",
                    "service ms = prompt_ms + generation_ms of a job (the time it holds a slot): the job alone's, or the median batch job's in that run. " +
                    "Every job generates exactly its tokens (end of text suppressed with logit_bias).",
                    "batch done before last = batch results that arrived before the last interactive result.",
                ]),
            new SectionResult(FairnessSection, $"Two tenants: {plan.TenantJobs} jobs of B behind {plan.FloodJobs} of A (issue 14, figure 2)",
                $"tenant A's {plan.FloodJobs} jobs published at once, then tenant B's {plan.TenantJobs} (user = tenant-a / tenant-b); jobs of {plan.Job.PromptTokens} prompt + " +
                $"{plan.Job.GenTokens} generated tokens; one queue; Inference:Slots = {plan.Slots}, {plan.Threads} threads",
                fairness,
                [
                    $"B finish ms = from B's first publish to B's last result; × alone = that over B alone (the same {plan.TenantJobs} jobs on the idle worker), taken within each round.",
                    $"first come = the same {plan.FloodJobs + plan.TenantJobs} jobs without a tenant on the fair-share worker: its waiting list is then first come, first served, " +
                    "as with fair share off.",
                    $"fair share orders the jobs a worker holds: Prefetch {plan.HoldAllPrefetch} holds A's and B's jobs at once" +
                    (smallName is null ? "." : $"; Prefetch {plan.SmallPrefetch} ({SlotsMultiple()}) leaves B's jobs behind A's in the broker's queue until A's are nearly done."),
                    "B last position = where B's last result came among all results (1-based).",
                ]),
        ];
    }

    private string SlotsMultiple() => plan.SmallPrefetch == 8 * plan.Slots
        ? "the README's 8× slots"
        : string.Create(CultureInfo.InvariantCulture, $"{(double)plan.SmallPrefetch / plan.Slots:0.##}× slots");

    private static Dictionary<string, Stat> WithRatio(IReadOnlyDictionary<string, Stat> config, IReadOnlyDictionary<string, Stat> alone)
    {
        var result = new Dictionary<string, Stat>(config)
        {
            [Metrics.TenantBVsAlone] = Ratio(config[Metrics.TenantBFinishMs], alone[Metrics.TenantBFinishMs]),
        };
        return result;
    }

    private List<TargetResult> Targets(IReadOnlyDictionary<string, IReadOnlyDictionary<string, Stat>> s, string fairName, string? smallName)
    {
        var alone = s[Alone];
        var lanes = s[WithLanes];
        var single = s[SingleQueue];
        var lanesRatio = Ratio(lanes[Metrics.QueueWaitP95Ms], alone[Metrics.ServiceMs]);
        var singleRatio = Ratio(single[Metrics.QueueWaitP95Ms], alone[Metrics.ServiceMs]);
        var b = s[TenantAlone][Metrics.TenantBFinishMs];
        var fair = Ratio(s[fairName][Metrics.TenantBFinishMs], b);
        var firstCome = Ratio(s[FirstCome][Metrics.TenantBFinishMs], b);
        var smallDetail = smallName is null ? "" : $"; {smallName}: {FormatPrecise(Ratio(s[smallName][Metrics.TenantBFinishMs], b))} × ({F(s[smallName][Metrics.TenantBFinishMs])} ms)";
        return
        [
            TargetResult.Judge(InteractiveTargetId,
                $"{plan.InteractiveJobs} interactive jobs beside {plan.BatchJobs} queued batch jobs, with lanes: p95 queue wait ≤ one job's generation time alone",
                "<=", InteractiveTarget, "×", lanesRatio,
                $"p95 queue wait with lanes {F(lanes[Metrics.QueueWaitP95Ms])} ms (p50 {F(lanes[Metrics.QueueWaitP50Ms])}, max {F(lanes[Metrics.QueueWaitMaxMs])}); " +
                $"one job alone {F(alone[Metrics.ServiceMs])} ms; today's single queue: p95 {F(single[Metrics.QueueWaitP95Ms])} ms = {FormatPrecise(singleRatio)} × one job"),
            TargetResult.Judge(FairnessTargetId,
                $"tenant B's {plan.TenantJobs} jobs behind tenant A's {plan.FloodJobs}, fair share: B finishes within 2 × of B alone",
                "<=", FairnessTarget, "×", fair,
                $"fair share {F(s[fairName][Metrics.TenantBFinishMs])} ms, B alone {F(b)} ms; first come, first served: {FormatPrecise(firstCome)} × ({F(s[FirstCome][Metrics.TenantBFinishMs])} ms)" + smallDetail),
        ];
    }

    /// <summary>Per-round ratios (both samples of a round were measured in that round), summarized.</summary>
    private static Stat Ratio(Stat numerator, Stat denominator) =>
        Stat.Of(numerator.Samples.Zip(denominator.Samples, (x, y) => y == 0 ? double.NaN : x / y).ToList());

    private static string F(Stat s) => ReportWriter.Format(s);

    private static string FormatPrecise(Stat s) => ReportWriter.FormatPrecise(s);
}
