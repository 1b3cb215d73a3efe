using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using QueueWorker.Contracts;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace QueueWorker.IntegrationTests;

/// <summary>
/// Issue 14 on the real broker and a real model: cancellation (running, waiting, not yet delivered; qw batch Ctrl-C and
/// resume), priority lanes, fair share between tenants, back-pressure. Each test runs its own worker on its own queues and
/// control exchange. The random-weights model rarely emits an end token, so max_tokens sets how long a job runs
/// (~600 tokens/s here).
/// </summary>
[Trait("Category", "Integration")]
public sealed class SchedulingTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private TestBroker _broker = null!;
    private readonly List<WorkerProcess> _workers = [];
    private readonly List<ResultCollector> _collectors = [];
    private readonly string _jobs = TestBroker.UniqueName("llm.jobs");
    private readonly string _results = TestBroker.UniqueName("llm.results");
    private readonly string _control = TestBroker.UniqueName("llm.control");

    public async Task InitializeAsync()
    {
        _broker = await TestBroker.ConnectAsync();
        foreach (var q in new[] { _jobs, _jobs + ".dlq", _jobs + ".parked", _results, _jobs + ".interactive", _jobs + ".interactive.dlq", _jobs + ".batch", _jobs + ".batch.dlq" })
            _broker.Own(q);
    }

    public async Task DisposeAsync()
    {
        foreach (var c in _collectors) await c.DisposeAsync();
        foreach (var w in _workers) await w.DisposeAsync();
        await using (var channel = await _broker.OpenChannelAsync(confirms: false))
            await channel.ExchangeDeleteAsync(_control);
        await _broker.DisposeAsync();
    }

    private async Task<(WorkerProcess Worker, ResultCollector Results)> StartWorkerAsync(params (string Key, string Value)[] extra)
    {
        var settings = new Dictionary<string, string>
        {
            ["RabbitMq:JobsQueue"] = _jobs,
            ["RabbitMq:ResultsQueue"] = _results,
            ["RabbitMq:ControlExchange"] = _control,
            ["Model:Path"] = TestModels.TinyRandom,
            ["Inference:ContextSize"] = "8192",
            ["Inference:MaxTokens"] = "4000",
            ["Inference:Slots"] = "1",
            ["Logging:LogLevel:Default"] = "Information",
        };
        foreach (var (k, v) in extra) settings[k] = v;
        var worker = WorkerProcess.Start(settings);
        _workers.Add(worker);
        await worker.WaitReadyAsync(Waits.WorkerReady);
        var results = await _broker.CollectAsync(_results);
        _collectors.Add(results);
        return (worker, results);
    }

    private static string Job(string id, int maxTokens, string? extra = null) =>
        $$"""{"id":"{{id}}","prompt":"Hello","max_tokens":{{maxTokens}},"temperature":1,"seed":7{{(extra is null ? "" : "," + extra)}}}""";

    private async Task PublishCancelAsync(string json)
    {
        await using var channel = await _broker.OpenChannelAsync(confirms: true);
        await channel.BasicPublishAsync(_control, "", mandatory: false, new BasicProperties(), Encoding.UTF8.GetBytes(json));
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!await condition())
        {
            if (sw.Elapsed > Waits.Scale(timeout)) throw new TimeoutException($"Not within {timeout.TotalSeconds:F0} s: {what}");
            await Task.Delay(100);
        }
    }

    private static async Task<double> CancelledAsync(WorkerProcess worker)
    {
        try
        {
            return await worker.MetricAsync("queueworker_jobs_total{status=\"failed\",code=\"cancelled\"}");
        }
        catch (InvalidOperationException)
        {
            return 0; // not counted yet
        }
    }

    private static void AssertExactlyOneEach(ResultCollector results, IEnumerable<string> ids)
    {
        foreach (var id in ids) Assert.Single(results.All, r => r.Result.Id == id);
    }

    [Fact]
    public async Task Cancel_RunningWaitingAndNotYetDelivered_EachAnsweredCancelledOnce()
    {
        // One slot and a prefetch of 2: A runs, B waits in the engine, C waits in the broker.
        var (worker, results) = await StartWorkerAsync(("RabbitMq:Prefetch", "2"));
        foreach (var id in new[] { "A", "B", "C" }) await _broker.PublishAsync(_jobs, Job(id, 4000));
        await WaitUntilAsync(async () => await worker.MetricAsync("queueworker_slots_busy") == 1
                                         && await worker.MetricAsync("queueworker_engine_waiting_jobs") == 1, Timeout, "A running and B waiting");
        Assert.Empty(results.All);

        await PublishCancelAsync("""{"cancel":{"job_ids":["A","B","C"]}}""");
        await results.WaitForIdsAsync(["A", "B", "C"], TimeSpan.FromSeconds(30));

        foreach (var id in new[] { "A", "B", "C" })
        {
            var r = results.All.Single(x => x.Result.Id == id).Result;
            Assert.Equal(JobStatus.Failed, r.Status);
            Assert.Equal(FinishReasons.Cancelled, r.FinishReason);
            Assert.Equal(ErrorCodes.Cancelled, r.Error!.Code);
        }
        Assert.Contains("in the engine", results.All.Single(x => x.Result.Id == "A").Result.Error!.Message);
        Assert.Contains("before it started", results.All.Single(x => x.Result.Id == "C").Result.Error!.Message);

        // The worker goes on serving, and nothing is answered twice.
        await _broker.PublishAsync(_jobs, Job("D", 8));
        var d = await results.WaitForIdAsync("D", Timeout);
        Assert.Equal(JobStatus.Completed, d.Result.Status);
        await Task.Delay(1000);
        AssertExactlyOneEach(results, ["A", "B", "C", "D"]);
        Assert.Equal(0u, await _broker.MessageCountAsync(_jobs + ".dlq"));
    }

    [Fact]
    public async Task Lanes_InteractiveJobsAfterAQueuedBatch_Overtake()
    {
        var (_, results) = await StartWorkerAsync(("RabbitMq:Lanes:0", "interactive"), ("RabbitMq:Lanes:1", "batch"));
        var batch = Enumerable.Range(1, 12).Select(i => $"b{i}").ToList();
        foreach (var id in batch) await _broker.PublishAsync(_jobs + ".batch", Job(id, 400));
        await results.WaitForAsync(1, Timeout);

        var interactive = new[] { "i1", "i2", "i3" };
        foreach (var id in interactive) await _broker.PublishAsync(_jobs + ".interactive", Job(id, 16));
        await results.WaitForIdsAsync([.. batch, .. interactive], TimeSpan.FromSeconds(120));

        var order = results.All.Select(r => r.Result.Id).ToList();
        var lastInteractive = interactive.Max(order.IndexOf);
        var batchBefore = order.Take(lastInteractive).Count(id => id.StartsWith('b'));
        // One queue would finish all 12 batch jobs first; a lane waits for at most one batch job per interactive job.
        Assert.True(batchBefore <= 5, $"completion order: {string.Join(",", order)}");
        Assert.All(results.All, r => Assert.Equal(JobStatus.Completed, r.Result.Status));
    }

    [Fact]
    public async Task PrioritySlot_InteractiveJobWhileEverySlotRunsABatchJob_StartsWithoutWaitingForIt()
    {
        // One slot plus the default priority slot; a prefetch of 2 so the second batch job waits in the engine.
        var (worker, results) = await StartWorkerAsync(("RabbitMq:Lanes:0", "interactive"), ("RabbitMq:Lanes:1", "batch"), ("RabbitMq:Prefetch", "2"));
        await _broker.PublishAsync(_jobs + ".batch", Job("b1", 4000));
        await _broker.PublishAsync(_jobs + ".batch", Job("b2", 4000));
        // The batch lane never takes the priority slot: b2 waits although a sequence is free.
        await WaitUntilAsync(async () => await worker.MetricAsync("queueworker_slots_busy") == 1
                                         && await worker.MetricAsync("queueworker_engine_waiting_jobs") == 1, Timeout, "b1 running and b2 waiting");
        await Task.Delay(500);
        Assert.Equal(1, await worker.MetricAsync("queueworker_slots_busy"));

        await _broker.PublishAsync(_jobs + ".interactive", Job("i1", 16));
        var i1 = await results.WaitForIdAsync("i1", Timeout);

        // Without the priority slot i1 would wait for b1's 4000 tokens; it finished while b1 still runs.
        Assert.Equal(JobStatus.Completed, i1.Result.Status);
        Assert.Equal(["i1"], results.All.Select(r => r.Result.Id));
        Assert.True(i1.Result.Timings!.QueuedMs < 5000, $"queued_ms {i1.Result.Timings.QueuedMs}");
        await PublishCancelAsync("""{"cancel":{"job_ids":["b1","b2"]}}""");
        await results.WaitForIdsAsync(["b1", "b2"], Timeout);
        AssertExactlyOneEach(results, ["b1", "b2", "i1"]);
    }

    [Fact]
    public async Task FairShare_SecondTenantBehindAFlood_FinishesLongBeforeTheFlood()
    {
        // The worker holds every job (prefetch 40): fair share orders what a worker holds.
        var (_, results) = await StartWorkerAsync(("RabbitMq:Prefetch", "40"));
        var flood = Enumerable.Range(1, 16).Select(i => $"a{i}").ToList();
        var small = Enumerable.Range(1, 4).Select(i => $"s{i}").ToList();
        foreach (var id in flood) await _broker.PublishAsync(_jobs, Job(id, 200, """ "metadata":{"tenant":"big"} """));
        foreach (var id in small) await _broker.PublishAsync(_jobs, Job(id, 200, """ "user":"small" """));
        await results.WaitForIdsAsync([.. flood, .. small], TimeSpan.FromSeconds(120));

        var order = results.All.Select(r => r.Result.Id).ToList();
        var lastSmall = small.Max(order.IndexOf);
        // First come, first served would finish the small tenant last (index 19); fair share (with the newcomer's credit of
        // two slot-fulls) by about index 5.
        Assert.True(lastSmall <= 11, $"completion order: {string.Join(",", order)}");
    }

    [Fact]
    public async Task FairShare_TenantRanAloneBeforeTheFlood_StillGetsItsCreditAhead()
    {
        // The small tenant first runs 4 jobs on the idle worker; then the flood comes and the small tenant again. Slots
        // had without contention must not count against it: with 2 slots (credit 4) its 4 jobs take the next 4 freed slots
        // (its last result by about index 5). Counted against it, the flood would get 2 more slots first, then the two
        // alternate (index ~10).
        var (_, results) = await StartWorkerAsync(("RabbitMq:Prefetch", "40"), ("Inference:Slots", "2"));
        var alone = Enumerable.Range(1, 4).Select(i => $"alone{i}").ToList();
        foreach (var id in alone) await _broker.PublishAsync(_jobs, Job(id, 50, """ "user":"small" """));
        await results.WaitForIdsAsync(alone, TimeSpan.FromSeconds(120));
        await Task.Delay(200); // the worker is idle

        var flood = Enumerable.Range(1, 16).Select(i => $"a{i}").ToList();
        var small = Enumerable.Range(1, 4).Select(i => $"s{i}").ToList();
        // Jobs of ~1 s: every job is in the worker before the first two finish (a confirmed publish to a quorum queue
        // waits for the broker's fsync, tens of ms each on a loaded disk).
        foreach (var id in flood) await _broker.PublishAsync(_jobs, Job(id, 600, """ "metadata":{"tenant":"big"} """));
        foreach (var id in small) await _broker.PublishAsync(_jobs, Job(id, 600, """ "user":"small" """));
        await results.WaitForIdsAsync([.. flood, .. small], TimeSpan.FromSeconds(180));

        var order = results.All.Select(r => r.Result.Id).Skip(alone.Count).ToList();
        Assert.True(small.Max(order.IndexOf) <= 7, $"completion order: {string.Join(",", order)}");
        AssertExactlyOneEach(results, [.. alone, .. flood, .. small]);
    }

    [Fact]
    public async Task BackPressure_QueueFull_SubmitFailsClearlyThenGetsInWhenThereIsRoom()
    {
        // The worker declares the queue with its length limit, then stops: nothing consumes.
        var (worker, _) = await StartWorkerAsync(("RabbitMq:MaxQueuedJobs", "2"));
        worker.Terminate();
        await worker.WaitForExitAsync(Waits.Scale(TimeSpan.FromSeconds(60)));
        // Fill it until the broker refuses (a quorum queue may take one past its limit before it does).
        var taken = 0;
        for (; taken < 10; taken++)
        {
            try
            {
                await _broker.PublishAsync(_jobs, Job($"q{taken}", 8));
            }
            catch (PublishException)
            {
                break;
            }
        }
        Assert.InRange(taken, 2, 3);
        var full = await _broker.MessageCountAsync(_jobs);

        var (code, _, stderr) = await QwAsync(["submit", "Hello", "--full-timeout", "2", "--timeout", "30"]);
        Assert.True(code == 5, stderr);
        Assert.Contains("is full", stderr);
        Assert.Equal(full, await _broker.MessageCountAsync(_jobs));

        // Room appears while qw backs off: its job gets in (then no worker answers it: exit 4, not 5). Two taken: a quorum
        // queue refuses until it is below its limit again.
        var submit = QwAsync(["submit", "Hello", "--full-timeout", "60", "--timeout", "8"]);
        await Task.Delay(Waits.Scale(TimeSpan.FromSeconds(3)));
        Assert.NotNull(await _broker.TryGetAsync(_jobs));
        Assert.NotNull(await _broker.TryGetAsync(_jobs));
        (code, _, stderr) = await submit;
        Assert.True(code == 4, stderr);
        Assert.Equal(full - 1, await _broker.MessageCountAsync(_jobs));
    }

    [Fact]
    public async Task QwBatch_CtrlC_CancelsWhatIsLeftAndTheResumedRunCompletes()
    {
        var (worker, results) = await StartWorkerAsync(("RabbitMq:Prefetch", "4"));
        var dir = Directory.CreateTempSubdirectory("qw-cancel-").FullName;
        try
        {
            var input = Path.Combine(dir, "in.jsonl");
            var output = Path.Combine(dir, "out.jsonl");
            await File.WriteAllLinesAsync(input, Enumerable.Range(1, 16).Select(i => Job($"line{i}", 1000)));

            var qw = StartQw(["batch", input, "--out", output, "--max-in-flight", "4"]);
            await WaitUntilAsync(() => Task.FromResult(File.Exists(output) && File.ReadAllLines(output).Length >= 2), Timeout, "two lines written");
            Assert.Equal(0, Kill(qw.Process.Id, 2)); // SIGINT, as Ctrl-C
            var (code, _, stderr) = await qw.Exit;
            Assert.True(code == 130, stderr);
            Assert.Contains("cancelled batch", stderr);
            var written = File.ReadAllLines(output).Length;
            Assert.True(written is >= 2 and < 16, $"{written} lines written; qw said: {stderr}");

            // The jobs it had published stop: answered cancelled (to qw's reply queue while it lasts, then the results queue), nothing runs.
            await WaitUntilAsync(async () => await CancelledAsync(worker) >= 1
                                             && await worker.MetricAsync("queueworker_jobs_in_flight") == 0
                                             && await worker.MetricAsync("queueworker_slots_busy") == 0, TimeSpan.FromSeconds(30), "cancelled jobs answered");
            Assert.Equal(0u, await _broker.MessageCountAsync(_jobs));

            (code, _, stderr) = await StartQw(["batch", input, "--out", output, "--max-in-flight", "4"]).Exit;
            Assert.True(code == 0, stderr);
            var lines = File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
            Assert.Equal(16, lines.Count);
            Assert.Equal(16, lines.Select(l => l.GetProperty("custom_id").GetString()).Distinct().Count());
            Assert.All(lines, l => Assert.Equal(JsonValueKind.Object, l.GetProperty("response").ValueKind));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    private (Process Process, Task<(int Code, string Stdout, string Stderr)> Exit) StartQw(string[] args)
    {
        var psi = new ProcessStartInfo("dotnet", [TestSettings.QwDll, .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = TestSettings.RepositoryRoot,
        };
        psi.Environment["RabbitMq__Uri"] = TestSettings.RabbitMqUri;
        psi.Environment["RabbitMq__JobsQueue"] = _jobs;
        psi.Environment["RabbitMq__ControlExchange"] = _control;
        psi.Environment["Inference__MaxTokens"] = "4000";
        var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        async Task<(int, string, string)> WaitAsync()
        {
            using var cts = new CancellationTokenSource(Waits.Scale(TimeSpan.FromSeconds(300)));
            await process.WaitForExitAsync(cts.Token);
            var result = (process.ExitCode, await stdout, await stderr);
            process.Dispose();
            return result;
        }
        return (process, WaitAsync());
    }

    private Task<(int Code, string Stdout, string Stderr)> QwAsync(string[] args) => StartQw(args).Exit;
}
