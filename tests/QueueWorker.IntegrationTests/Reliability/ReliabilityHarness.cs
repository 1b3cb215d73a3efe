using System.Diagnostics;
using System.Globalization;
using RabbitMQ.Client;
using Xunit.Abstractions;

namespace QueueWorker.IntegrationTests.Reliability;

/// <summary>The reliability tests run one at a time: they start worker processes, kill them and time recoveries on 2 shared cores.</summary>
[CollectionDefinition(Name)]
public sealed class ReliabilityCollection
{
    public const string Name = "Reliability";
}

/// <summary>
/// One reliability scenario: its own jobs/results/dead-letter queues on a broker (the shared one unless a private one is
/// given), worker processes started (and restarted) with the same settings, and every result collected from the results
/// queue. Worker logs go to the test output at the end, so a failure shows what the worker saw.
/// </summary>
public sealed class ReliabilityHarness : IAsyncDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly List<WorkerProcess> _workers = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    private ReliabilityHarness(ITestOutputHelper output, TestBroker broker, string uri, Rabbitmqctl ctl)
    {
        _output = output;
        Broker = broker;
        Uri = uri;
        Ctl = ctl;
        Settings = new Dictionary<string, string>
        {
            ["RabbitMq:Uri"] = uri,
            ["RabbitMq:JobsQueue"] = JobsQueue,
            ["RabbitMq:ResultsQueue"] = ResultsQueue,
            ["RabbitMq:ClientName"] = ClientName,
            ["Inference:ContextSize"] = "2048",
            ["Inference:MaxTokens"] = "1024",
            ["Inference:Slots"] = "2",
            // Deliveries, acks and requeues are Debug events of the consumer: the tests read them.
            ["Logging:LogLevel:QueueWorker.Messaging"] = "Debug",
        };
    }

    public TestBroker Broker { get; }
    public string Uri { get; }
    public Rabbitmqctl Ctl { get; }
    public string JobsQueue { get; } = TestBroker.UniqueName("rel.jobs");
    public string ResultsQueue { get; } = TestBroker.UniqueName("rel.results");
    public string DeadLetterQueue => JobsQueue + ".dlq";
    /// <summary>Where the worker parks the jobs it answered without running (poison jobs, dead letters).</summary>
    public string ParkedQueue => JobsQueue + ".parked";
    /// <summary>The worker's AMQP connection name: how the test finds (and closes) that connection and no other.</summary>
    public string ClientName { get; } = "qw-rel-worker-" + Guid.NewGuid().ToString("N")[..10];
    public Dictionary<string, string> Settings { get; }
    public ResultCollector Results { get; private set; } = null!;
    public IReadOnlyList<WorkerProcess> Workers => _workers;
    /// <summary>The results of the scenario's jobs (calibration jobs left out).</summary>
    public IReadOnlyList<ReceivedResult> JobResults => Results.All.Where(r => !_calibrationIds.Contains(r.Result.Id)).ToList();
    public TimeSpan Elapsed => _clock.Elapsed;

    /// <param name="declareResultsVia">On a cluster, the node whose connection declares the results queue (its leader
    /// starts there); default the harness's own connection.</param>
    /// <param name="classicResults">For tests that make the results queue refuse publishes with an operator's
    /// <c>max-length 0, reject-publish</c> policy: a quorum queue accepts the first message past that limit (it refuses only
    /// once over it), a classic one refuses it. The harness then declares a classic results queue and the other two as the
    /// worker would, and the worker uses them as they are (<c>RabbitMq:DeclareTopology=false</c>).</param>
    public static async Task<ReliabilityHarness> CreateAsync(ITestOutputHelper output, string? uri = null, Rabbitmqctl? ctl = null,
        string? declareResultsVia = null, bool classicResults = false)
    {
        uri ??= TestSettings.RabbitMqUri;
        var broker = await TestBroker.ConnectAsync(uri);
        var harness = new ReliabilityHarness(output, broker, uri, ctl ?? Rabbitmqctl.Shared);
        broker.Own(harness.JobsQueue);
        broker.Own(harness.DeadLetterQueue);
        broker.Own(harness.ParkedQueue);
        // Declared as the worker declares it (durable quorum), so results can be collected from the start.
        if (classicResults)
        {
            await broker.DeclareQueueAsync(harness.ResultsQueue);
            harness._classicResults = true;
        }
        else if (declareResultsVia is null)
        {
            await broker.DeclareQuorumQueueAsync(harness.ResultsQueue);
        }
        else
        {
            await DeclareViaAsync(declareResultsVia, harness.ResultsQueue, new Dictionary<string, object?> { ["x-queue-type"] = "quorum" });
            broker.Own(harness.ResultsQueue);
        }
        harness.Results = await broker.CollectAsync(harness.ResultsQueue);
        return harness;
    }

    /// <summary>Declares a durable queue through a connection of its own to <paramref name="uri"/> (on a cluster: a quorum queue's leader starts on that node).</summary>
    public static async Task DeclareViaAsync(string uri, string queue, IDictionary<string, object?> arguments)
    {
        var factory = new ConnectionFactory { Uri = new System.Uri(uri), ClientProvidedName = "queueworker-tests-declare" };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments);
        await channel.CloseAsync();
        await connection.CloseAsync();
    }

    private bool _classicResults;
    private bool _declaredForWorker;

    /// <summary>The worker's jobs queue arguments (Topology.JobsQueueArguments): a declaration that differs stops the worker with a 406.</summary>
    public static Dictionary<string, object?> JobsQueueArguments(string deadLetterQueue, int deliveryLimit = 3) => new()
    {
        ["x-queue-type"] = "quorum",
        ["x-delivery-limit"] = deliveryLimit,
        ["x-dead-letter-exchange"] = "",
        ["x-dead-letter-routing-key"] = deadLetterQueue,
        ["x-dead-letter-strategy"] = "at-least-once",
        ["x-overflow"] = "reject-publish",
    };

    /// <summary>Starts a worker with <see cref="Settings"/> (plus <paramref name="extra"/>) and waits until it is ready.</summary>
    public async Task<WorkerProcess> StartWorkerAsync(IReadOnlyDictionary<string, string>? extra = null, TimeSpan? readyTimeout = null)
    {
        if (_classicResults && !_declaredForWorker)
        {
            // With the delivery limit the test set: the worker will not declare the queues itself.
            var limit = Settings.TryGetValue("RabbitMq:DeliveryLimit", out var value) ? int.Parse(value, CultureInfo.InvariantCulture) : 3;
            await DeclareViaAsync(Uri, DeadLetterQueue, new Dictionary<string, object?> { ["x-queue-type"] = "quorum" });
            await DeclareViaAsync(Uri, JobsQueue, JobsQueueArguments(DeadLetterQueue, limit));
            Settings["RabbitMq:DeclareTopology"] = "false";
            _declaredForWorker = true;
        }
        var settings = new Dictionary<string, string>(Settings) { ["Worker:Id"] = WorkerId(_workers.Count + 1) };
        foreach (var (k, v) in extra ?? new Dictionary<string, string>()) settings[k] = v;
        var worker = WorkerProcess.Start(settings);
        _workers.Add(worker);
        var started = _clock.Elapsed;
        await worker.WaitReadyAsync(Waits.Scale(readyTimeout ?? TimeSpan.FromSeconds(180)));
        Log($"worker {_workers.Count} (pid {worker.Pid}) ready in {(_clock.Elapsed - started).TotalSeconds:F1} s");
        return worker;
    }

    /// <summary>The <c>worker.id</c> in the results of the <paramref name="n"/>th worker started (1-based).</summary>
    public string WorkerId(int n) => $"{ClientName}-w{n}";

    private readonly HashSet<string> _calibrationIds = new(StringComparer.Ordinal);

    /// <summary>
    /// max_tokens for jobs that run about <paramref name="secondsPerJob"/> each on this machine now (the CPU is shared:
    /// stories260K was seen from 4 to 1000 tokens/s within an hour). Faults must hit jobs in flight however fast or loaded
    /// the machine is. Capped at 400 tokens so that a machine that slows down after calibrating still finishes.
    /// </summary>
    public async Task<int> CalibrateMaxTokensAsync(double secondsPerJob = 1.5)
    {
        var id = "calibrate-" + Guid.NewGuid().ToString("N")[..8];
        _calibrationIds.Add(id);
        await Broker.PublishAsync(JobsQueue, JobJson(id, 200), p => p.MessageId = id);
        var timings = (await Results.WaitForIdAsync(id, TimeSpan.FromSeconds(180))).Result.Timings!;
        var maxTokens = (int)Math.Clamp(timings.TokensPerS * secondsPerJob, 50, 400);
        Log($"calibration: {timings.TokensPerS:F0} tokens/s alone -> jobs of {maxTokens} tokens (~{secondsPerJob} s each)");
        return maxTokens;
    }

    public static string JobJson(string id, int maxTokens, string prompt = "Once upon a time") =>
        $$"""{"id":"{{id}}","prompt":"{{prompt}}","max_tokens":{{maxTokens}},"temperature":0}""";

    /// <summary>Publishes <paramref name="count"/> greedy story jobs (confirmed by the broker) and returns their ids.</summary>
    public async Task<List<string>> PublishJobsAsync(int count, int maxTokens, string prefix = "job")
    {
        var ids = new List<string>(count);
        for (var i = 0; i < count; i++)
        {
            var id = $"{prefix}-{i:D4}-{Guid.NewGuid().ToString("N")[..6]}";
            await Broker.PublishAsync(JobsQueue, JobJson(id, maxTokens), p => p.MessageId = id);
            ids.Add(id);
        }
        return ids;
    }

    public void Log(string message) => _output.WriteLine($"[{_clock.Elapsed.TotalSeconds,7:F1} s] {message}");

    /// <summary>Polls <paramref name="condition"/> until true; fails naming <paramref name="what"/> after <paramref name="timeout"/> (scaled by <see cref="Waits"/>).</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, TimeSpan timeout, TimeSpan? poll = null)
    {
        timeout = Waits.Scale(timeout);
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"Timed out after {timeout.TotalSeconds:F0} s waiting for: {what}.");
            await Task.Delay(poll ?? TimeSpan.FromMilliseconds(100));
        }
    }

    public static Task WaitUntilAsync(Func<bool> condition, string what, TimeSpan timeout, TimeSpan? poll = null) =>
        WaitUntilAsync(() => Task.FromResult(condition()), what, timeout, poll);

    /// <summary>
    /// Waits until the jobs queue holds <paramref name="ready"/> ready and <paramref name="unacked"/> unacknowledged
    /// messages. rabbitmqctl's quorum queue figures are refreshed every few seconds, so they are polled, not read once.
    /// </summary>
    public async Task WaitForJobsQueueAsync(long ready, long unacked, string what, TimeSpan? timeout = null)
    {
        (long Ready, long Unacked) last = (-1, -1);
        try
        {
            await WaitUntilAsync(async () => (last = await Ctl.QueueCountsAsync(JobsQueue)) == (ready, unacked),
                what, timeout ?? TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(500));
        }
        catch (TimeoutException ex)
        {
            throw new TimeoutException($"{ex.Message} Jobs queue: expected {ready} ready + {unacked} unacked, last seen {last.Ready} + {last.Unacked}.");
        }
    }

    /// <summary>Checks the promise over <see cref="Results"/>: every job id has a completed result, nothing else arrived,
    /// and every duplicate carries its job id as message_id. Logs and returns the figures.</summary>
    public LedgerReport AssertEveryJobCompletedOnce(IReadOnlyCollection<string> sent, string scenario)
    {
        var report = JobLedger.Check(sent, JobResults);
        Log($"{scenario}: {report}");
        report.AssertComplete();
        return report;
    }

    public async ValueTask DisposeAsync()
    {
        for (var i = 0; i < _workers.Count; i++)
        {
            var worker = _workers[i];
            try
            {
                await worker.DisposeAsync();
            }
            catch (Exception ex)
            {
                // Keep going: every worker process must be stopped, whatever happened to one of them.
                _output.WriteLine($"worker {i + 1} (pid {worker.Pid}) did not stop cleanly: {ex.Message}");
            }
            var lines = worker.Output.Split('\n');
            _output.WriteLine($"----- worker {i + 1} (pid {worker.Pid}) log, last {Math.Min(lines.Length, 150)} of {lines.Length} lines -----");
            foreach (var line in lines.TakeLast(150)) _output.WriteLine(line.TrimEnd());
        }
        if (Results is not null) await Results.DisposeAsync();
        await Broker.DisposeAsync();
    }
}

/// <summary>Figures of one scenario: jobs sent, results received, distinct result ids, duplicates, and what is wrong.</summary>
public sealed record LedgerReport(int Sent, int Received, int DistinctIds, int Duplicates, IReadOnlyList<string> Missing,
    IReadOnlyList<string> NotCompleted, IReadOnlyList<string> Unexpected, IReadOnlyList<string> WrongMessageId)
{
    public void AssertComplete()
    {
        Assert.True(Missing.Count == 0, $"{Missing.Count} job(s) without a result: {string.Join(", ", Missing.Take(10))}");
        Assert.True(NotCompleted.Count == 0, $"{NotCompleted.Count} job(s) without a completed result: {string.Join(", ", NotCompleted.Take(10))}");
        Assert.True(Unexpected.Count == 0, $"results for ids never sent: {string.Join(", ", Unexpected.Take(10))}");
        Assert.True(WrongMessageId.Count == 0, $"results whose message_id is not the job id: {string.Join(", ", WrongMessageId.Take(10))}");
        Assert.Equal(Sent, DistinctIds);
    }

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"sent {Sent}, results {Received}, distinct ids {DistinctIds}, duplicates {Duplicates}, missing {Missing.Count}");
}

public static class JobLedger
{
    public static LedgerReport Check(IReadOnlyCollection<string> sent, IReadOnlyCollection<ReceivedResult> results)
    {
        var expected = sent.ToHashSet(StringComparer.Ordinal);
        var byId = results.GroupBy(r => r.Result.Id, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        var missing = sent.Where(id => !byId.ContainsKey(id)).ToList();
        var notCompleted = sent.Where(id => byId.TryGetValue(id, out var rs) && !rs.Any(r => r.Result.Status == Contracts.JobStatus.Completed)).ToList();
        var unexpected = byId.Keys.Where(id => !expected.Contains(id)).ToList();
        var wrongMessageId = results.Where(r => r.MessageId != r.Result.Id).Select(r => $"{r.Result.Id} (message_id {r.MessageId})").ToList();
        var duplicates = results.Count - byId.Count;
        return new LedgerReport(sent.Count, results.Count, byId.Keys.Count(expected.Contains), duplicates, missing, notCompleted, unexpected, wrongMessageId);
    }
}
