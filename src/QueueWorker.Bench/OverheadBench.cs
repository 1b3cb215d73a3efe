using System.Diagnostics;
using System.Globalization;
using QueueWorker.Contracts;
using RabbitMQ.Client;

namespace QueueWorker.Bench;

/// <summary>What the overhead section runs (issue 12, item 3: a small model is not overhead-bound), written into results.json.</summary>
/// <param name="WorkerDll">The worker binary, started as <c>dotnet WorkerDll</c>.</param>
/// <param name="BenchDll">qwbench.dll, started as <c>dotnet BenchDll raw-loop</c> for the baseline, the same way.</param>
/// <param name="Model">The small model (stories260K): per-step and per-job costs weigh most on it.</param>
/// <param name="Slots">Inference:Slots of the worker, and the raw loop's sequences.</param>
/// <param name="MaxTokens">max_tokens of each of the <paramref name="Slots"/> jobs of the throughput comparison (greedy; end-of-generation may end one sooner, in both).</param>
/// <param name="Mmap">How both sides hold the weights: the worker's default (<c>Model:UseMmap</c> false: read into memory, which
/// decoded 1.5–15× faster than memory-mapped under reclaim here) unless asked; the same on both sides either way.</param>
/// <param name="SettleMs">Idle time before every measured item, so the one before it (a broker burst, a worker's after-work)
/// is over: with the items in a fixed cycle the raw loop's single job always came right after the broker ceiling's burst
/// and prefilled ~12% slower than alone.</param>
/// <param name="TinyJobs">Jobs per round of the jobs/s comparison, in the soak test's shape (<c>"Once upon a time"</c>, max_tokens <paramref name="TinyMaxTokens"/>, greedy).</param>
public sealed record OverheadBenchPlan(
    string WorkerDll,
    string BenchDll,
    string BrokerUri,
    string Model,
    int Threads,
    int Warmup,
    int Repetitions,
    int Slots = 4,
    int MaxTokens = 256,
    int TinyJobs = 200,
    int TinyMaxTokens = 4,
    int SingleSentences = 12,
    int SingleMaxTokens = 64,
    int ContextSize = 2048,
    int BatchSize = 512,
    double TimeoutSeconds = 600,
    bool Mmap = false,
    int SettleMs = 1000);

/// <summary>
/// Issue 12, items 1 and 3, through the real worker binary and a real broker, in interleaved rounds (order rotated each round):
/// <list type="bullet">
/// <item>one job: a ~<c>SingleSentences</c>-sentence prompt (≈ 130 tokens) and <c>SingleMaxTokens</c> generated, through the
/// worker against the same prompt alone in the raw loop process: prefill and decode tok/s each ≥ 0.95× (item 1);</item>
/// <item>throughput: <c>Slots</c> jobs published at once to the worker (completion tokens / wall time from the first
/// publish to the last result) against the raw batched loop (<see cref="RawLoop"/>) on the same prompts, in a child
/// process started as the worker is, with the worker's context parameters, threads and greedy sampler: ≥ 0.8×;</item>
/// <item>jobs/s: <c>TinyJobs</c> jobs of the soak test's shape through the worker against the broker's own rate for the
/// same message flow without inference (<see cref="BrokerCeiling"/>): consume with prefetch = slots and manual ack,
/// publish a result of the worker's result size with confirms, ack.</item>
/// </list>
/// Each ratio is taken within a round; median [min–max] over the rounds. A throughput ratio is refused (not reported
/// as a pass or fail) when the baseline is slower than the worker by more than the baseline's own noise: a raw loop
/// slower than the full pipeline on the same work measures something else than it claims to (issue 12's "Done when").
/// </summary>
public sealed class OverheadBenchRunner(OverheadBenchPlan plan, IBenchProgress progress)
{
    public const string Throughput = "worker-overhead-throughput";
    public const string JobsPerSecond = "worker-overhead-jobs";
    public const double ThroughputRatioTarget = 0.8;
    public const string Single = "worker-overhead-single";
    public const double SingleRatioTarget = 0.95;

    /// <summary>The least relative noise assumed for the sanity check, whatever the baseline's spread.</summary>
    public const double MinNoise = 0.05;

    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromMinutes(5);
    private int _nextId;

    private TimeSpan Timeout => TimeSpan.FromSeconds(plan.TimeoutSeconds);

    private string WeightsHeld => plan.Mmap ? "memory-mapped (Model:UseMmap = true)" : "read into memory (Model:UseMmap = false, the default)";

    public async Task<WorkerBenchResult> RunAsync(CancellationToken ct)
    {
        var inv = CultureInfo.InvariantCulture;
        progress.BeginSection("overhead: small model through the worker vs raw loop and broker", 2 + (plan.Warmup + plan.Repetitions) * 7);
        try
        {
            progress.Step("starting the worker and the raw loop");
            await using var broker = await BenchBroker.ConnectAsync(plan.BrokerUri, ct);
            var queues = broker.NewQueues($"overhead{plan.Slots}");
            var settings = WorkerProcess.Settings(plan.BrokerUri, queues, plan.Model, plan.Threads);
            settings["Inference:Slots"] = plan.Slots.ToString(inv);
            settings["Inference:ContextSize"] = plan.ContextSize.ToString(inv);
            settings["Inference:BatchSize"] = plan.BatchSize.ToString(inv);
            settings["Inference:MaxTokens"] = Math.Max(512, plan.MaxTokens).ToString(inv);
            settings["Model:UseMmap"] = plan.Mmap ? "true" : "false";
            await using var worker = WorkerProcess.Start(plan.WorkerDll, $"Slots={plan.Slots}", settings);
            var rawTask = RawLoopProcess.StartAsync(plan.BenchDll,
                new RawLoopSettings(plan.Model, plan.Threads, plan.Slots, plan.ContextSize, plan.BatchSize, plan.Mmap), ReadyTimeout, ct);
            await worker.WaitReadyAsync(ReadyTimeout, ct);
            await using var raw = await rawTask;
            var results = await broker.ConsumeAsync(queues.Results, ct);
            var ceilingQueues = broker.NewQueues("ceiling");
            await using var ceiling = await BrokerCeiling.StartAsync(plan.BrokerUri, ceilingQueues, plan.Slots, ct);
            var ceilingResults = await broker.ConsumeAsync(ceilingQueues.Results, ct);

            var samples = new[] { "raw", "worker", "tiny", "ceiling", "ceiling-serial", "single-raw", "single-worker" }.ToDictionary(k => k, _ => new SampleSet());
            var resultBytes = 0;
            var items = new List<(string Name, Func<int, bool, Task> Run)>
            {
                ("one job, raw loop", (rep, record) => SingleRawAsync(raw, rep, record ? samples["single-raw"] : null, ct)),
                ("one job through the worker", (rep, record) => SingleWorkerAsync(broker, worker, queues, results, rep, record ? samples["single-worker"] : null, ct)),
                ("raw batched loop", (rep, record) => RawAsync(raw, rep, record ? samples["raw"] : null, ct)),
                ($"{plan.Slots} jobs through the worker", (rep, record) => WorkerAsync(broker, worker, queues, results, rep, record ? samples["worker"] : null, ct)),
                ($"{plan.TinyJobs} tiny jobs through the worker", async (rep, record) =>
                    resultBytes = Math.Max(resultBytes, await TinyAsync(broker, worker, queues, results, record ? samples["tiny"] : null, ct))),
                ("broker ceiling", (rep, record) => CeilingAsync(broker, ceiling, ceilingQueues, ceilingResults, resultBytes, serial: false, record ? samples["ceiling"] : null, ct)),
                ("broker ceiling, one confirm at a time", (rep, record) => CeilingAsync(broker, ceiling, ceilingQueues, ceilingResults, resultBytes, serial: true, record ? samples["ceiling-serial"] : null, ct)),
            };

            for (var w = 0; w < plan.Warmup; w++)
            {
                foreach (var (name, run) in items)
                {
                    progress.Step($"warm-up: {name}");
                    await run(-1 - w, false);
                }
            }

            for (var rep = 0; rep < plan.Repetitions; rep++)
            {
                for (var k = 0; k < items.Count; k++)
                {
                    var (name, run) = items[(k + rep) % items.Count];
                    progress.Step($"{name}: round {rep + 1}/{plan.Repetitions}");
                    await Task.Delay(plan.SettleMs, ct);
                    await run(rep, true);
                }
            }

            progress.Step("stopping");
            var s = samples.ToDictionary(p => p.Key, p => p.Value.Summarize());
            return new WorkerBenchResult(Sections(s, resultBytes), Targets(s));
        }
        finally
        {
            progress.EndSection();
        }
    }

    // ---- throughput: Slots jobs at once --------------------------------------------------------------------------

    private static readonly string[] Names = ["Lily", "Tom", "Ben", "Sue", "Max", "Mia", "Sam", "Anna", "Tim", "Lucy", "Jack", "Kate", "Zoe", "Ollie", "Rose", "Finn"];
    private static readonly string[] Things = ["a red ball", "a big dog", "a little cat", "a shiny star", "a blue kite", "a funny hat", "a small bird", "a yummy cake"];

    /// <summary>Distinct story openings for a round (a different first word per job, so no job reuses another's cached prefix).</summary>
    public IReadOnlyList<string> Prompts(int rep) => Enumerable.Range(0, plan.Slots)
        .Select(j => $"{Names[(rep * plan.Slots + j + 1000) % Names.Length]} had {Things[(rep + j + 1000) % Things.Length]}. One day,")
        .ToList();

    private async Task RawAsync(RawLoopProcess raw, int rep, SampleSet? into, CancellationToken ct)
    {
        var r = await raw.RunAsync(new RawLoopRequest(Prompts(rep), plan.MaxTokens), Timeout, ct);
        var completion = r.CompletionTokens.Sum();
        into?.Add(Metrics.AggregateTps, completion / (r.WallMs / 1000));
        into?.Add(Metrics.AggregateDecodeTps, completion / (r.DecodeMs / 1000));
        into?.Add(Metrics.WallMs, r.WallMs);
        into?.Add(Metrics.CompletionTokens, completion);
        into?.Add(Metrics.PromptTokens, r.PromptTokens.Average());
        into?.Add(Metrics.StepMs, r.DecodeMs / Math.Max(1, r.Steps - 1));
    }

    private async Task WorkerAsync(BenchBroker broker, WorkerProcess worker, WorkerQueues queues, ResultStream results, int rep, SampleSet? into, CancellationToken ct)
    {
        var waits = new List<Task<ArrivedResult>>();
        var start = Stopwatch.GetTimestamp();
        foreach (var prompt in Prompts(rep))
        {
            waits.Add(await broker.PublishAsync(queues.Jobs, results, Job(prompt, plan.MaxTokens), ct));
        }

        var done = await WaitAllAsync(waits, worker, ct);
        if (into is null)
        {
            return;
        }

        var wallMs = Stopwatch.GetElapsedTime(start, done.Max(r => r.ArrivedAt)).TotalMilliseconds;
        var completion = done.Sum(r => r.Result.Usage!.CompletionTokens);
        into.Add(Metrics.AggregateTps, completion / (wallMs / 1000));
        into.Add(Metrics.WallMs, wallMs);
        into.Add(Metrics.CompletionTokens, completion);
        into.Add(Metrics.PromptTokens, done.Average(r => r.Result.Usage!.PromptTokens));
        into.Add(Metrics.CachedTokens, done.Max(r => r.Result.Usage!.CachedTokens));
        // Without the broker's legs: the longest job's time inside the worker (parse to result, before its publish).
        into.Add(Metrics.InProcessTps, completion / (done.Max(r => r.Result.Timings!.TotalMs) / 1000));
    }

    // ---- one job: prefill and decode against the raw loop (item 1) -------------------------------------------------

    /// <summary>A story prompt of <c>SingleSentences</c> sentences, its first word different every round (no cached prefix).</summary>
    public string SinglePrompt(int rep) => string.Join(" ", Enumerable.Range(0, plan.SingleSentences)
        .Select(k => $"{Names[(rep + 2000 + k) % Names.Length]} had {Things[(rep * 3 + k + 2000) % Things.Length]}.")) + " One day,";

    private async Task SingleRawAsync(RawLoopProcess raw, int rep, SampleSet? into, CancellationToken ct)
    {
        var r = await raw.RunAsync(new RawLoopRequest([SinglePrompt(rep)], plan.SingleMaxTokens), Timeout, ct);
        var completion = r.CompletionTokens[0];
        // The worker's definitions (JobMapping): prompt tokens / prefill time; decode steps (tokens after the first) / time
        // from the first sampled token to the last. The raw prefill time includes tokenization (well under 1 ms).
        into?.Add(Metrics.PrefillTps, r.PromptTokens[0] / (r.PrefillMs / 1000));
        into?.Add(Metrics.DecodeTps, (completion - 1) / (r.DecodeMs / 1000));
        into?.Add(Metrics.PromptTokens, r.PromptTokens[0]);
        into?.Add(Metrics.CompletionTokens, completion);
    }

    private async Task SingleWorkerAsync(BenchBroker broker, WorkerProcess worker, WorkerQueues queues, ResultStream results, int rep, SampleSet? into, CancellationToken ct)
    {
        var wait = await broker.PublishAsync(queues.Jobs, results, Job(SinglePrompt(rep), plan.SingleMaxTokens), ct);
        var r = (await WaitAllAsync([wait], worker, ct))[0].Result;
        var (timings, usage) = (r.Timings!, r.Usage!);
        into?.Add(Metrics.PrefillTps, timings.PromptTokensPerS);
        into?.Add(Metrics.DecodeTps, timings.TokensPerS);
        into?.Add(Metrics.PromptTokens, usage.PromptTokens);
        into?.Add(Metrics.CachedTokens, usage.CachedTokens);
        into?.Add(Metrics.CompletionTokens, usage.CompletionTokens);
    }

    // ---- jobs/s: the soak test's shape against the broker's own rate -----------------------------------------------

    /// <summary>The soak test's job: a greedy story opening of max_tokens 4 (SoakTests, ReliabilityHarness.JobJson).</summary>
    private JobRequest TinyJob() => new()
    {
        Id = $"tiny-{Interlocked.Increment(ref _nextId)}-{Guid.NewGuid().ToString("N")[..6]}",
        Prompt = "Once upon a time",
        MaxTokens = plan.TinyMaxTokens,
        Temperature = 0,
    };

    /// <summary>Returns the largest result body seen (the ceiling publishes results of that size).</summary>
    private async Task<int> TinyAsync(BenchBroker broker, WorkerProcess worker, WorkerQueues queues, ResultStream results, SampleSet? into, CancellationToken ct)
    {
        var waits = new List<Task<ArrivedResult>>(plan.TinyJobs);
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < plan.TinyJobs; i++)
        {
            waits.Add(await broker.PublishAsync(queues.Jobs, results, TinyJob(), ct));
        }

        var done = await WaitAllAsync(waits, worker, ct);
        var wallMs = Stopwatch.GetElapsedTime(start, done.Max(r => r.ArrivedAt)).TotalMilliseconds;
        into?.Add(Metrics.JobsPerS, plan.TinyJobs / (wallMs / 1000));
        into?.Add(Metrics.WallMs, wallMs);
        into?.Add(Metrics.JobMs, Stat.Of(done.Select(r => r.Result.Timings!.TotalMs).ToList()).Median);
        return done.Max(r => JobSerializer.Serialize(r.Result).Length);
    }

    private async Task CeilingAsync(BenchBroker broker, BrokerCeiling ceiling, WorkerQueues queues, ResultStream results, int resultBytes, bool serial, SampleSet? into,
        CancellationToken ct)
    {
        ceiling.Prepare(Math.Max(resultBytes, 64), serial);
        var waits = new List<Task<ArrivedResult>>(plan.TinyJobs);
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < plan.TinyJobs; i++)
        {
            // The same job bodies, properties and publishing client as the worker's tiny jobs.
            waits.Add(await broker.PublishAsync(queues.Jobs, results, TinyJob(), ct));
        }

        var done = await Task.WhenAll(waits).WaitAsync(Timeout, ct);
        var wallMs = Stopwatch.GetElapsedTime(start, done.Max(r => r.ArrivedAt)).TotalMilliseconds;
        into?.Add(Metrics.JobsPerS, plan.TinyJobs / (wallMs / 1000));
        into?.Add(Metrics.WallMs, wallMs);
    }

    // ---- helpers -------------------------------------------------------------------------------------------------

    private static JobRequest Job(string prompt, int maxTokens) => new()
    {
        Id = "overhead-" + Guid.NewGuid().ToString("N")[..12],
        Prompt = prompt,
        MaxTokens = maxTokens,
        Temperature = 0,
    };

    private Task<ArrivedResult[]> WaitAllAsync(IReadOnlyList<Task<ArrivedResult>> waits, WorkerProcess worker, CancellationToken ct) =>
        worker.WaitCompletedAsync(waits, Timeout, ct);

    /// <summary>
    /// The ratio numerator/denominator per round, or null with the reason when the baseline (denominator) is slower than
    /// the measured path by more than noise: the median ratio above 1 + the baseline's relative min–max spread (at least
    /// <see cref="MinNoise"/>). A baseline that loses to the full pipeline doing the same work more is not a baseline.
    /// </summary>
    public static (Stat? Ratio, string? Refused) SaneRatio(Stat measured, Stat baseline)
    {
        ArgumentNullException.ThrowIfNull(measured);
        ArgumentNullException.ThrowIfNull(baseline);
        var ratio = Stat.Of(measured.Samples.Zip(baseline.Samples, (a, b) => b == 0 ? double.NaN : a / b).ToList());
        var noise = Math.Max(MinNoise, baseline.Median == 0 ? 1 : (baseline.Max - baseline.Min) / baseline.Median);
        if (double.IsNaN(ratio.Median) || ratio.Median > 1 + noise)
        {
            return (null, string.Create(CultureInfo.InvariantCulture,
                $"refused: the baseline is slower than the measured path ({ratio.Median:F2}× > 1 + its noise {noise:F2}); a raw loop cannot be slower than the worker doing the same work"));
        }

        return (ratio, null);
    }

    // ---- report ----------------------------------------------------------------------------------------------------

    private List<SectionResult> Sections(IReadOnlyDictionary<string, IReadOnlyDictionary<string, Stat>> s, int resultBytes)
    {
        var none = new Dictionary<string, string>();
        return
        [
            new SectionResult(Single, $"One job: the worker against the raw loop (issue 12, item 1)",
                $"one greedy story job of {plan.SingleSentences} sentences (~{F(s["single-worker"][Metrics.PromptTokens])} prompt tokens) and max_tokens {plan.SingleMaxTokens} " +
                $"on {Path.GetFileName(plan.Model)}, {plan.Threads} threads, alone; a new prompt every round; {plan.SettleMs} ms idle before every measured item",
                [
                    new ConfigResult("raw loop, one sequence (child process)", s["single-raw"], new Dictionary<string, string> { ["source"] = "qwbench raw-loop's own Stopwatch" }),
                    new ConfigResult("worker (its result's timings)", s["single-worker"], new Dictionary<string, string> { ["source"] = "timings.prompt_tokens_per_s, timings.tokens_per_s" }),
                ],
                [
                    "prefill tok/s: worker = timings.prompt_tokens_per_s (prompt tokens not cached / the decode time of its prompt steps); raw = prompt tokens / " +
                    "time from the request to the prompt's decode returning (tokenization included). decode tok/s: worker = timings.tokens_per_s (completion " +
                    "tokens − 1 / first to last sampled token); raw = the same count over the time after the prompt's decode to the last token.",
                    $"Both in processes started the same way, with the same context parameters and weights {WeightsHeld}, on the same prompt tokens.",
                ]),
            new SectionResult(Throughput, $"Small model, {plan.Slots} slots: the worker against a raw batched loop (issue 12, item 3)",
                $"{plan.Slots} distinct greedy story jobs of max_tokens {plan.MaxTokens} on {Path.GetFileName(plan.Model)} at once, {plan.Threads} threads; " +
                $"the worker with Inference:Slots = {plan.Slots}, context {plan.ContextSize}, batch {plan.BatchSize}",
                [
                    new ConfigResult("raw batched loop (child process)", s["raw"], new Dictionary<string, string> { ["source"] = "qwbench raw-loop's own Stopwatch" }),
                    new ConfigResult("worker (broker in, result out)", s["worker"], new Dictionary<string, string> { ["source"] = "publish → last result arrived" }),
                ],
                [
                    "aggregate tok/s = completion tokens of the jobs / wall time. Worker: from the first publish to the arrival of the last result (broker, " +
                    "parsing, tokenization, admission, sampling, detokenization, stop strings, timings, result publish with confirm, ack). Raw: from the request " +
                    "to the last token, in `qwbench raw-loop`, a child process started as the worker is (dotnet DLL, same environment rules), with the worker's " +
                    $"context parameters (unified KV cache, batch = micro-batch, f16 K/V, flash attention auto, weights {WeightsHeld}) and one greedy sampler chain " +
                    "per sequence, all prompts prefilled in one batch, each sequence ending at end-of-generation or max_tokens as a job does.",
                    "raw step ms = the raw loop's decode time / its decode steps (one step decodes one token of every sequence still running).",
                    "in-process tok/s (worker) = completion tokens / the longest job's timings.total_ms (parse to result inside the worker): what is left " +
                    "when the broker's legs (publish, delivery, result publish and confirm, result delivery) are taken out.",
                ]),
            new SectionResult(JobsPerSecond, $"Tiny jobs (the soak test's shape) through the worker against the broker's own rate",
                $"{plan.TinyJobs} jobs of \"Once upon a time\", max_tokens {plan.TinyMaxTokens}, greedy, published at once; the worker with {plan.Slots} slots",
                [
                    new ConfigResult("worker", s["tiny"], none),
                    new ConfigResult("broker ceiling (no inference)", s["ceiling"], none),
                    new ConfigResult("broker ceiling, one confirm at a time", s["ceiling-serial"], none),
                ],
                [
                    "jobs/s = jobs / wall time from the first publish to the last result's arrival, the same publishing and collecting client for all three.",
                    $"broker ceiling = the worker's message flow with no work in between: a second connection consumes the jobs queue (quorum) with prefetch " +
                    $"{plan.Slots} and manual acks, publishes a {resultBytes}-byte body (the largest tiny-job result of the worker in this run) to a quorum results " +
                    "queue with publisher confirms (mandatory, persistent), and acks the job after the confirm; up to prefetch results await their confirms at once. " +
                    "\"one confirm at a time\" serializes the publishes, as the worker's ResultPublisher did before it let confirms overlap (kept as a yardstick of what serialized confirms cost).",
                    "job ms = the results' timings.total_ms (the pipeline inside the worker: parse to result, without the broker).",
                ]),
        ];
    }

    private List<TargetResult> Targets(IReadOnlyDictionary<string, IReadOnlyDictionary<string, Stat>> s)
    {
        var worker = s["worker"];
        var raw = s["raw"];
        var tiny = s["tiny"][Metrics.JobsPerS];
        var ceiling = s["ceiling"][Metrics.JobsPerS];
        var share = Stat.Of(tiny.Samples.Zip(ceiling.Samples, (a, b) => a / b).ToList());
        var target = $"{Path.GetFileName(plan.Model)}, {plan.Slots} jobs at once: the worker's aggregate tok/s ≥ {ThroughputRatioTarget} × a raw batched loop";
        var detail = $"worker {F(worker[Metrics.AggregateTps])} vs raw {F(raw[Metrics.AggregateTps])} tok/s; completion tokens per round {F(worker[Metrics.CompletionTokens])} " +
                     $"and {F(raw[Metrics.CompletionTokens])}; raw step {F(raw[Metrics.StepMs])} ms";
        var (sw, sr) = (s["single-worker"], s["single-raw"]);
        return
        [
            SingleTarget("single-prefill", "prefill", Metrics.PrefillTps, sw, sr),
            SingleTarget("single-decode", "decode", Metrics.DecodeTps, sw, sr),
            RatioTarget("overhead-throughput", target, ThroughputRatioTarget, worker[Metrics.AggregateTps], raw[Metrics.AggregateTps], detail),
            // A report, not a target: the broker's rate is the ceiling the worker's jobs/s is read against.
            new TargetResult("overhead-jobs", $"{plan.TinyJobs} tiny jobs: the worker's jobs/s as a share of the broker's own publish+confirm+ack rate (reported; the ceiling is 1)",
                "<=", 1, "×", share, $"worker {F(tiny)} jobs/s; broker ceiling {F(ceiling)} jobs/s; one confirm at a time {F(s["ceiling-serial"][Metrics.JobsPerS])} jobs/s", share.Median <= 1 + MinNoise),
        ];
    }

    private TargetResult SingleTarget(string id, string what, string metric, IReadOnlyDictionary<string, Stat> worker, IReadOnlyDictionary<string, Stat> raw)
    {
        var target = $"{Path.GetFileName(plan.Model)}, one job: the worker's {what} tok/s ≥ {SingleRatioTarget} × the raw loop's";
        var detail = $"worker {F(worker[metric])} vs raw {F(raw[metric])} tok/s; prompt tokens {F(worker[Metrics.PromptTokens])} (cached {F(worker[Metrics.CachedTokens])}), " +
                     $"completion tokens {F(worker[Metrics.CompletionTokens])} and {F(raw[Metrics.CompletionTokens])}";
        return RatioTarget(id, target, SingleRatioTarget, worker[metric], raw[metric], detail);
    }

    /// <summary>Worker ÷ raw judged against <paramref name="threshold"/>, or not measured (with the reason) when the raw baseline is the slower.</summary>
    private static TargetResult RatioTarget(string id, string target, double threshold, Stat worker, Stat raw, string detail)
    {
        var (ratio, refused) = SaneRatio(worker, raw);
        return refused is null
            ? TargetResult.Judge(id, target, ">=", threshold, "×", ratio, detail)
            : new TargetResult(id, target, ">=", threshold, "×", null, $"{refused}; {detail}", null);
    }

    private static string F(Stat s) => ReportWriter.Format(s);
}

/// <summary>
/// The broker's own rate for the worker's message flow with no work in between (a PerfTest-style loop with
/// RabbitMQ.Client): consume a quorum jobs queue with prefetch = slots and manual acks, publish a result-sized body to
/// a quorum results queue with publisher confirms, ack the job once confirmed.
/// </summary>
public sealed class BrokerCeiling : IAsyncDisposable
{
    private readonly IConnection _connection;
    private readonly IChannel _consume;
    private readonly IChannel _publish;
    private readonly string _resultsQueue;
    private readonly SemaphoreSlim _serial = new(1, 1);
    private byte[] _body = [];
    private bool _serialPublish;

    private BrokerCeiling(IConnection connection, IChannel consume, IChannel publish, string resultsQueue)
    {
        _connection = connection;
        _consume = consume;
        _publish = publish;
        _resultsQueue = resultsQueue;
    }

    public static async Task<BrokerCeiling> StartAsync(string uri, WorkerQueues queues, int prefetch, CancellationToken ct)
    {
        var factory = new ConnectionFactory { Uri = new Uri(uri), ClientProvidedName = "qw-bench-ceiling" };
        var connection = await factory.CreateConnectionAsync(ct);
        var consume = await connection.CreateChannelAsync(new CreateChannelOptions(false, false, consumerDispatchConcurrency: 1), ct);
        var publish = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), ct);
        var quorum = new Dictionary<string, object?> { ["x-queue-type"] = "quorum" };
        await consume.QueueDeclareAsync(queues.Jobs, durable: true, exclusive: false, autoDelete: false, arguments: quorum, cancellationToken: ct);
        await consume.QueueDeclareAsync(queues.Results, durable: true, exclusive: false, autoDelete: false, arguments: quorum, cancellationToken: ct);
        await consume.BasicQosAsync(0, (ushort)prefetch, global: false, ct);
        var ceiling = new BrokerCeiling(connection, consume, publish, queues.Results);
        var consumer = new RabbitMQ.Client.Events.AsyncEventingBasicConsumer(consume);
        consumer.ReceivedAsync += (_, ea) =>
        {
            // Off the dispatcher, as the worker runs its jobs.
            var id = ea.BasicProperties.MessageId ?? "";
            var tag = ea.DeliveryTag;
            _ = Task.Run(async () =>
            {
                try
                {
                    await ceiling.EchoAsync(id, tag);
                }
                catch (Exception ex)
                {
                    await Console.Error.WriteLineAsync($"broker ceiling: job {id} not echoed: {ex.GetType().Name}: {ex.Message}");
                }
            });
            return Task.CompletedTask;
        };
        await consume.BasicConsumeAsync(queues.Jobs, autoAck: false, consumer, ct);
        return ceiling;
    }

    /// <summary>Sets the size of the echoed results and whether their publishes wait for each other's confirms.</summary>
    public void Prepare(int resultBytes, bool serial)
    {
        _body = new byte[resultBytes];
        _serialPublish = serial;
    }

    private async Task EchoAsync(string id, ulong deliveryTag)
    {
        // A minimal valid result with the job's id (the bench matches results by id), padded with JSON whitespace to the worker's result size.
        var result = JobSerializer.Serialize(new JobResult { Id = id, Status = JobStatus.Completed, Text = "" });
        var body = new byte[Math.Max(result.Length, _body.Length)];
        result.CopyTo(body, 0);
        body.AsSpan(result.Length).Fill((byte)' ');

        var props = new BasicProperties
        {
            MessageId = id,
            ContentType = "application/json",
            DeliveryMode = DeliveryModes.Persistent,
        };
        // Bounded and retried: a fire-and-forget echo that throws or never sees its confirm would leave the round waiting
        // for a result that never comes (seen once in CI: the whole test timed out). A retry may publish a duplicate.
        for (var attempt = 1; ; attempt++)
        {
            if (_serialPublish)
            {
                await _serial.WaitAsync();
            }

            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                await _publish.BasicPublishAsync("", _resultsQueue, mandatory: true, props, body, timeout.Token);
                break;
            }
            catch (Exception ex) when (attempt < 5)
            {
                await Console.Error.WriteLineAsync($"broker ceiling: result {id} publish attempt {attempt} failed ({ex.GetType().Name}: {ex.Message}); publishing again");
            }
            finally
            {
                if (_serialPublish)
                {
                    _serial.Release();
                }
            }
        }

        await _consume.BasicAckAsync(deliveryTag, multiple: false);
    }

    public async ValueTask DisposeAsync()
    {
        await _consume.CloseAsync();
        await _publish.CloseAsync();
        await _connection.CloseAsync();
        _connection.Dispose();
        _serial.Dispose();
    }
}
