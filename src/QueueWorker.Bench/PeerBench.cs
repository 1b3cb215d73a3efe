using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using QueueWorker.Bench.ModelTools;
using QueueWorker.Contracts;

namespace QueueWorker.Bench;

/// <summary>What the peer benchmark runs: the worker and llama.cpp's own llama-server on the same model, threads and jobs.</summary>
/// <param name="LlamaServer">The llama-server binary (built by <c>../shared/tools/build-llama-server.sh</c>).</param>
/// <param name="Rounds">Interleaved rounds: each runs set A and set B once on each side, the side going first alternating.</param>
/// <param name="Jobs">Jobs per set, all sent at once.</param>
/// <param name="DocumentWords">Words of each job's document (new documents every round).</param>
/// <param name="PrefixWords">Words of set B's instruction, the same in every job and every round.</param>
/// <param name="WorkerSettings">Worker settings on top of the bench's own (e.g. <c>Inference:KvUnified=false</c>), named in the report.</param>
public sealed record PeerBenchPlan(
    string WorkerDll,
    string BrokerUri,
    string LlamaServer,
    string Model,
    int Threads,
    int Rounds,
    int Jobs = 16,
    int DocumentWords = 150,
    int PrefixWords = 120,
    int GenTokens = 64,
    int Slots = 4,
    int ContextSize = 2048,
    double TimeoutSeconds = 1800,
    IReadOnlyDictionary<string, string>? WorkerSettings = null)
{
    /// <summary>Settings the bench owns (queues, broker, model): <see cref="WorkerSettings"/> may not name them.</summary>
    public static bool IsBenchOwned(string key) =>
        key.StartsWith("RabbitMq:", StringComparison.OrdinalIgnoreCase) || key.Equals("Model:Path", StringComparison.OrdinalIgnoreCase);

    /// <summary>The worker's configuration: the bench's settings, then <see cref="WorkerSettings"/> over them.</summary>
    public Dictionary<string, string> WorkerConfiguration(string uri, WorkerQueues queues)
    {
        var inv = CultureInfo.InvariantCulture;
        var config = WorkerProcess.Settings(uri, queues, Model, Threads);
        config["Inference:Slots"] = Slots.ToString(inv);
        config["Inference:ContextSize"] = ContextSize.ToString(inv);
        foreach (var (key, value) in WorkerSettings ?? new Dictionary<string, string>())
        {
            if (IsBenchOwned(key)) throw new ArgumentException($"worker setting {key}: set by the bench itself", nameof(WorkerSettings));
            config[key] = value;
        }

        return config;
    }

    /// <summary>The worker's slots as configured (a <see cref="WorkerSettings"/> override included).</summary>
    public string WorkerSlots => WorkerConfiguration("amqp://x", new WorkerQueues("j", "r"))["Inference:Slots"];
}

/// <summary>
/// Issue 12's comparison with llama-server: the worker (<c>Inference:Slots</c> = 4, a real broker in between) against
/// <c>llama-server -np 4</c> (HTTP), same model file, threads and context, the same job sets sent at once:
/// <list type="bullet">
/// <item>set A: <c>Jobs</c> distinct documents of ~<c>DocumentWords</c> words, <c>GenTokens</c> generated each;</item>
/// <item>set B: the same shape behind one shared ~<c>PrefixWords</c>-word instruction (one instruction, many documents).</item>
/// </list>
/// Rounds interleave the sides (A: worker, server; B: worker, server; next round server first), new documents every
/// round so that neither side answers from a prompt cache; each ratio is taken within its round. Both sides generate
/// exactly <c>GenTokens</c> (end-of-text is biased away on both), greedy.
/// </summary>
public sealed class PeerBenchRunner(PeerBenchPlan plan, IBenchProgress progress)
{
    public const string Peer = "peer";
    public const double SetATarget = 1.2;
    public const double SetBTarget = 2.0;

    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromMinutes(5);
    private TimeSpan Timeout => TimeSpan.FromSeconds(plan.TimeoutSeconds);

    /// <summary>One run of a set on one side: completion tokens over the wall time from the first send to the last answer.</summary>
    public sealed record Run(int Round, string Set, string Side, double WallMs, int CompletionTokens, double PromptTokens, double CachedTokens)
    {
        public double CompletionTps => CompletionTokens / (WallMs / 1000);
    }

    public async Task<(WorkerBenchResult Result, IReadOnlyList<Run> Runs)> RunAsync(CancellationToken ct)
    {
        var eos = (int)(GgufReader.Read(plan.Model).Get("tokenizer.ggml.eos_token_id")?.AsInt64() ?? 2);
        progress.BeginSection("peer: worker vs llama-server", 3 + plan.Rounds * 4);
        var runs = new List<Run>();
        try
        {
            progress.Step("starting the worker and llama-server");
            await using var broker = await BenchBroker.ConnectAsync(plan.BrokerUri, ct);
            var queues = broker.NewQueues("peer");
            await using var worker = WorkerProcess.Start(plan.WorkerDll, "peer", plan.WorkerConfiguration(plan.BrokerUri, queues));
            await using var server = await LlamaServerProcess.StartAsync(plan, ct);
            await worker.WaitReadyAsync(ReadyTimeout, ct);
            var results = await broker.ConsumeAsync(queues.Results, ct);
            var worker4 = new WorkerSide(broker, worker, queues, results, eos, Timeout);
            var server4 = new ServerSide(server, eos, Timeout);

            // Warm-up: page faults, compute buffers, the first broker round trips; then the instruction once on each
            // side, as a worker in service would have it (both keep it across idle time).
            progress.Step("warm-up");
            var warm = Documents(-1, plan.Slots, 40).Select(d => d[..Math.Min(d.Length, 200)]).ToList();
            await worker4.RunAsync(warm, 8, ct);
            await server4.RunAsync(warm, 8, ct);
            var instruction = Instruction();
            await worker4.RunAsync([instruction + Documents(-2, 1, 20)[0]], 4, ct);
            await server4.RunAsync([instruction + Documents(-2, 1, 20)[0]], 4, ct);

            for (var round = 0; round < plan.Rounds; round++)
            {
                foreach (var set in new[] { "A", "B" })
                {
                    var docs = Documents(set == "A" ? round * 2 : round * 2 + 1, plan.Jobs, plan.DocumentWords);
                    var prompts = set == "A" ? docs : docs.Select(d => instruction + d).ToList();
                    ISide[] order = round % 2 == 0 ? [worker4, server4] : [server4, worker4];
                    foreach (var side in order)
                    {
                        progress.Step($"round {round + 1}/{plan.Rounds}: set {set}, {side.Name}");
                        var run = await side.RunAsync(prompts, plan.GenTokens, ct);
                        runs.Add(run with { Round = round, Set = set });
                    }
                }
            }

            progress.Step("stopping");
        }
        finally
        {
            progress.EndSection();
        }

        return (Summarize(runs), runs);
    }

    private WorkerBenchResult Summarize(List<Run> runs)
    {
        ConfigResult Config(string set, string side)
        {
            var mine = runs.Where(r => r.Set == set && r.Side == side).ToList();
            return new ConfigResult($"set {set}: {side}", new Dictionary<string, Stat>
            {
                [Metrics.AggregateTps] = Stat.Of(mine.Select(r => r.CompletionTps).ToList()),
                [Metrics.WallMs] = Stat.Of(mine.Select(r => r.WallMs).ToList()),
                [Metrics.CompletionTokens] = Stat.Of(mine.Select(r => (double)r.CompletionTokens).ToList()),
                [Metrics.PromptTokens] = Stat.Of(mine.Select(r => r.PromptTokens).ToList()),
                [Metrics.CachedTokens] = Stat.Of(mine.Select(r => r.CachedTokens).ToList()),
            }, new Dictionary<string, string>());
        }

        Stat Ratio(string set) => Stat.Of(runs.Where(r => r.Set == set && r.Side == WorkerSide.SideName)
            .Select(w => w.CompletionTps / runs.Single(s => s.Set == set && s.Round == w.Round && s.Side == ServerSide.SideName).CompletionTps)
            .ToList());

        var section = new SectionResult(Peer, "The worker against llama-server (issue 12, item 2)",
            $"{plan.Jobs} jobs sent at once per set, {plan.GenTokens} generated each (greedy, end-of-text biased away on both sides); worker Inference:Slots = {plan.WorkerSlots} " +
            $"vs llama-server -np {plan.Slots}; {plan.Threads} threads, context {plan.ContextSize}; {plan.Rounds} interleaved rounds, new documents every round",
            [Config("A", WorkerSide.SideName), Config("A", ServerSide.SideName), Config("B", WorkerSide.SideName), Config("B", ServerSide.SideName)],
            [
                $"set A: {plan.Jobs} distinct documents of ~{plan.DocumentWords} words; set B: the same shape behind one ~{plan.PrefixWords}-word instruction shared by every job and round " +
                "(sent once to each side during warm-up, as a worker in service would hold it).",
                "completion tok/s = completion tokens of all jobs (the worker's usage.completion_tokens, llama-server's tokens_predicted) / wall time from the first send to the " +
                "last answer; the worker's jobs go through the broker (publish → result), llama-server's through HTTP /completion. Ratios are taken within each round.",
                "cached tokens: the worker's usage.cached_tokens, llama-server's timings.cache_n (prompt tokens not computed), median over the jobs of a run.",
                .. plan.WorkerSettings is { Count: > 0 } extra
                    ? [$"worker settings beyond the defaults (--peer-worker): {string.Join(", ", extra.Select(kv => $"{kv.Key}={kv.Value}"))}."]
                    : Array.Empty<string>(),
            ]);
        var a = Ratio("A");
        var b = Ratio("B");
        return new WorkerBenchResult([section],
        [
            TargetResult.Judge("peer-a", $"set A ({plan.Jobs} distinct ~{plan.DocumentWords}-word jobs + {plan.GenTokens}): worker completion tok/s ≥ {SetATarget} × llama-server -np {plan.Slots}",
                ">=", SetATarget, "×", a, Detail("A")),
            TargetResult.Judge("peer-b", $"set B (the same behind a shared ~{plan.PrefixWords}-word instruction): worker ≥ {SetBTarget} × llama-server",
                ">=", SetBTarget, "×", b, Detail("B")),
        ]);

        string Detail(string set)
        {
            var w = runs.Where(r => r.Set == set && r.Side == WorkerSide.SideName).ToList();
            var s = runs.Where(r => r.Set == set && r.Side == ServerSide.SideName).ToList();
            return string.Create(CultureInfo.InvariantCulture,
                $"worker {Stat.Of(w.Select(r => r.CompletionTps).ToList()).Median:F1} tok/s vs llama-server {Stat.Of(s.Select(r => r.CompletionTps).ToList()).Median:F1} " +
                $"(per round: {string.Join(", ", w.Select(r => $"{r.CompletionTps:F1}/{s.Single(x => x.Round == r.Round).CompletionTps:F1}"))})");
        }
    }

    // ---- job texts --------------------------------------------------------------------------------------------

    private static readonly string[] Vocabulary =
    [
        "the", "customer", "order", "arrived", "late", "and", "box", "was", "damaged", "invoice", "shows", "two", "items", "missing", "from",
        "shipment", "we", "need", "a", "refund", "for", "shipping", "cost", "please", "check", "tracking", "page", "which", "said", "delivered",
        "on", "Monday", "but", "nothing", "came", "until", "Wednesday", "evening", "my", "neighbour", "found", "parcel", "near", "garden", "gate",
        "inside", "were", "three", "blue", "mugs", "one", "broken", "plate", "small", "teapot", "without", "its", "lid", "I", "have", "ordered",
        "here", "many", "times", "before", "never", "had", "problem", "like", "this", "support", "team", "answered", "after", "four", "days",
        "with", "generic", "message", "about", "delays", "in", "region", "warehouse", "is", "moving", "to", "new", "building", "next", "month",
        "so", "some", "orders", "may", "take", "longer", "than", "usual", "account", "number", "ends", "in", "seven", "payment", "by", "card",
        "discount", "code", "did", "not", "apply", "at", "checkout", "total", "price", "higher", "expected", "would", "like", "replacement",
        "or", "credit", "store", "also", "want", "know", "why", "status", "changed", "twice", "same", "day", "courier", "left", "note", "saying",
        "nobody", "home", "although", "someone", "there", "all", "afternoon",
    ];

    /// <summary>Distinct documents of about <paramref name="words"/> words; <paramref name="batch"/> picks a fresh set (same batch, same texts).</summary>
    private static List<string> Documents(int batch, int count, int words)
    {
        var list = new List<string>(count);
        for (var j = 0; j < count; j++)
        {
            // splitmix64: deterministic per (batch, job), no shared random source.
            var state = unchecked((ulong)(batch + 1000) * 0x9E3779B97F4A7C15UL + (ulong)j * 0xBF58476D1CE4E5B9UL);
            var text = new StringBuilder($"Document {batch + 1000}-{j}: ");
            for (var w = 0; w < words; w++)
            {
                state = unchecked(state + 0x9E3779B97F4A7C15UL);
                var z = state;
                z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
                z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
                z ^= z >> 31;
                text.Append(Vocabulary[(int)(z % (ulong)Vocabulary.Length)]);
                text.Append(w % 17 == 16 ? ". " : " ");
            }

            list.Add(text.ToString().TrimEnd() + ".\nSummary:");
        }

        return list;
    }

    /// <summary>The shared instruction of set B, about <c>PrefixWords</c> words, ending in a newline (its tokens then come first whatever follows).</summary>
    private string Instruction()
    {
        const string Sentence = "You are a support assistant. Read the customer document below, summarize it in two sentences, list every action the team must take, " +
                                "name the order problems in the order they appear, and never promise a refund that the policy does not allow. ";
        var words = Sentence.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var text = new StringBuilder();
        for (var i = 0; i < plan.PrefixWords; i++)
        {
            text.Append(words[i % words.Length]).Append(' ');
        }

        return text.ToString().TrimEnd() + "\n";
    }

    // ---- the two sides ----------------------------------------------------------------------------------------

    private interface ISide
    {
        string Name { get; }
        Task<Run> RunAsync(IReadOnlyList<string> prompts, int genTokens, CancellationToken ct);
    }

    private sealed class WorkerSide(BenchBroker broker, WorkerProcess worker, WorkerQueues queues, ResultStream results, int eos, TimeSpan timeout) : ISide
    {
        public const string SideName = "worker";
        public string Name => SideName;

        public async Task<Run> RunAsync(IReadOnlyList<string> prompts, int genTokens, CancellationToken ct)
        {
            var start = Stopwatch.GetTimestamp();
            var waits = new List<Task<ArrivedResult>>();
            foreach (var prompt in prompts)
            {
                var job = new JobRequest
                {
                    Id = "peer-" + Guid.NewGuid().ToString("N")[..12],
                    Prompt = prompt,
                    MaxTokens = genTokens,
                    Temperature = 0,
                    LogitBias = new Dictionary<int, float> { [eos] = -100 },
                };
                waits.Add(await broker.PublishAsync(queues.Jobs, results, job, ct));
            }

            ArrivedResult[] done;
            try
            {
                done = await Task.WhenAll(waits).WaitAsync(timeout, ct);
            }
            catch (TimeoutException)
            {
                worker.ThrowIfExited();
                throw new TimeoutException($"worker: {waits.Count(t => t.IsCompletedSuccessfully)} of {waits.Count} results within {timeout.TotalSeconds:F0} s:\n{worker.OutputTail}");
            }

            foreach (var r in done)
            {
                if (r.Result.Status != JobStatus.Completed)
                    throw new InvalidOperationException($"worker: job {r.Result.Id} failed: {r.Result.Error?.Code}: {r.Result.Error?.Message}");
            }

            var wall = Stopwatch.GetElapsedTime(start, done.Max(r => r.ArrivedAt)).TotalMilliseconds;
            return new Run(0, "", SideName, wall, done.Sum(r => r.Result.Usage!.CompletionTokens),
                Stat.Of(done.Select(r => (double)r.Result.Usage!.PromptTokens).ToList()).Median,
                Stat.Of(done.Select(r => (double)r.Result.Usage!.CachedTokens).ToList()).Median);
        }
    }

    private sealed class ServerSide(LlamaServerProcess server, int eos, TimeSpan timeout) : ISide
    {
        public const string SideName = "llama-server";
        public string Name => SideName;

        public async Task<Run> RunAsync(IReadOnlyList<string> prompts, int genTokens, CancellationToken ct)
        {
            using var http = new HttpClient { Timeout = timeout };
            var start = Stopwatch.GetTimestamp();
            var answers = await Task.WhenAll(prompts.Select(async prompt =>
            {
                var body = new JsonObject
                {
                    ["prompt"] = prompt,
                    ["n_predict"] = genTokens,
                    ["temperature"] = 0,
                    ["cache_prompt"] = true,
                    ["logit_bias"] = new JsonArray(new JsonArray(eos, -100)),
                };
                using var response = await http.PostAsJsonAsync(new Uri($"http://127.0.0.1:{server.Port}/completion"), body, ct);
                var text = await response.Content.ReadAsStringAsync(ct);
                if (!response.IsSuccessStatusCode)
                    throw new InvalidOperationException($"llama-server answered {(int)response.StatusCode}: {text}\n{server.OutputTail}");
                var json = JsonNode.Parse(text)!;
                return (At: Stopwatch.GetTimestamp(), Predicted: (int)json["tokens_predicted"]!, Prompt: (int?)json["tokens_evaluated"] ?? 0,
                    Cached: (int?)json["timings"]?["cache_n"] ?? 0);
            }));
            var wall = Stopwatch.GetElapsedTime(start, answers.Max(a => a.At)).TotalMilliseconds;
            return new Run(0, "", SideName, wall, answers.Sum(a => a.Predicted),
                Stat.Of(answers.Select(a => (double)a.Prompt).ToList()).Median,
                Stat.Of(answers.Select(a => (double)a.Cached).ToList()).Median);
        }
    }

    /// <summary>Writes every run as one JSON line (the raw data behind the report).</summary>
    public static async Task WriteRunsAsync(IReadOnlyList<Run> runs, string path, CancellationToken ct)
    {
        var lines = runs.Select(r => JsonSerializer.Serialize(new JsonObject
        {
            ["round"] = r.Round,
            ["set"] = r.Set,
            ["side"] = r.Side,
            ["wall_ms"] = Math.Round(r.WallMs, 1),
            ["completion_tokens"] = r.CompletionTokens,
            ["completion_tok_s"] = Math.Round(r.CompletionTps, 2),
            ["median_prompt_tokens"] = r.PromptTokens,
            ["median_cached_tokens"] = r.CachedTokens,
        }));
        await File.WriteAllLinesAsync(path, lines, ct);
    }
}

/// <summary>llama.cpp's llama-server as a child process on a free loopback port, its output kept for error messages.</summary>
public sealed class LlamaServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Queue<string> _tail = new();

    private LlamaServerProcess(Process process, int port)
    {
        _process = process;
        Port = port;
        process.OutputDataReceived += (_, e) => Keep(e.Data);
        process.ErrorDataReceived += (_, e) => Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public int Port { get; }

    public string OutputTail
    {
        get
        {
            lock (_tail)
            {
                return string.Join('\n', _tail);
            }
        }
    }

    /// <summary>The arguments the comparison runs llama-server with (also written into the report).</summary>
    public static IReadOnlyList<string> Arguments(PeerBenchPlan plan, int port)
    {
        var inv = CultureInfo.InvariantCulture;
        return ["-m", plan.Model, "-t", plan.Threads.ToString(inv), "-tb", plan.Threads.ToString(inv), "-c", plan.ContextSize.ToString(inv),
            "-np", plan.Slots.ToString(inv), "--host", "127.0.0.1", "--port", port.ToString(inv)];
    }

    public static async Task<LlamaServerProcess> StartAsync(PeerBenchPlan plan, CancellationToken ct)
    {
        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        var psi = new ProcessStartInfo(plan.LlamaServer, Arguments(plan, port))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var server = new LlamaServerProcess(Process.Start(psi) ?? throw new InvalidOperationException($"could not start {plan.LlamaServer}"), port);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromMinutes(5))
        {
            if (server._process.HasExited)
                throw new InvalidOperationException($"llama-server exited with code {server._process.ExitCode}:\n{server.OutputTail}");
            try
            {
                using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/health"), ct);
                if (response.StatusCode == HttpStatusCode.OK) return server;
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
                // Busy machine.
            }

            await Task.Delay(250, ct);
        }

        await server.DisposeAsync();
        throw new TimeoutException($"llama-server was not healthy within 5 min:\n{server.OutputTail}");
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    private void Keep(string? line)
    {
        if (line is null) return;
        lock (_tail)
        {
            _tail.Enqueue(line);
            while (_tail.Count > 100) _tail.Dequeue();
        }
    }
}
