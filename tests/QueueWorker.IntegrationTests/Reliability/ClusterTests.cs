using System.Diagnostics;
using System.Globalization;
using RabbitMQ.Client;
using Xunit.Abstractions;

namespace QueueWorker.IntegrationTests.Reliability;

/// <summary>One 3-node cluster (ops/rabbitmq/start-cluster.sh) for every cluster test: it takes a minute or more to start.</summary>
[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<RabbitCluster>
{
    public const string Name = "Cluster";
}

/// <summary>
/// Workers on a real 3-node RabbitMQ cluster, every queue a quorum queue replicated on the three nodes. A node that leads
/// a queue is stopped mid-run (leadership moves, workers reconnect to a surviving node), a worker of three is killed:
/// the ledger of the reliability suite holds (every job exactly one completed result id; duplicates only as
/// redeliveries, each with its job id as message_id). The harness's own connection (publishing jobs, collecting results)
/// and rabbitmqctl go to node 3, which is never stopped; the queues' leaders start on nodes 1 and 2.
/// </summary>
[Collection(ClusterCollection.Name)]
[Trait("Category", "Integration")]
[Trait("Lane", "Cluster")]
public sealed class ClusterTests(RabbitCluster cluster, ITestOutputHelper output)
{
    private ClusterNode Node(int number) => cluster.Nodes[number - 1];

    private async Task<ReliabilityHarness> CreateHarnessAsync(int[] workerNodes, int resultsLeader = 2)
    {
        output.WriteLine($"cluster {cluster.Prefix}: nodes {string.Join(", ", cluster.Nodes.Select(n => $"{n.Name} :{n.Port}"))}, started in {cluster.StartTime.TotalSeconds:F0} s");
        // Results lead on node 2 (or the one given), jobs and dead letters on node 1; the harness talks to node 3.
        var h = await ReliabilityHarness.CreateAsync(output, Node(3).Uri, Node(3).Ctl, declareResultsVia: Node(resultsLeader).Uri);
        await ReliabilityHarness.DeclareViaAsync(Node(1).Uri, h.DeadLetterQueue, new Dictionary<string, object?> { ["x-queue-type"] = "quorum" });
        await ReliabilityHarness.DeclareViaAsync(Node(1).Uri, h.JobsQueue, ReliabilityHarness.JobsQueueArguments(h.DeadLetterQueue));
        h.Settings["RabbitMq:Uri"] = string.Join(',', workerNodes.Select(n => Node(n).Uri));
        // A worker cut off from every node gives up after this (exit 5): far longer than any outage here.
        h.Settings["RabbitMq:MaxRecoverySeconds"] = "600";
        return h;
    }

    [Fact]
    public async Task LeaderOfJobsThenOfResultsStopped_MidRun_NoJobOrResultLost()
    {
        // The worker knows nodes 1 and 2, the two that are stopped in turn: wherever the client connects first, one of
        // the stops cuts its connection and it must fail over to the other node.
        await using var h = await CreateHarnessAsync([1, 2]);
        Assert.Equal(Node(1), await cluster.LeaderAsync(h.JobsQueue, Node(3)));
        Assert.Equal(Node(2), await cluster.LeaderAsync(h.ResultsQueue, Node(3)));
        var worker = await h.StartWorkerAsync();
        var maxTokens = await h.CalibrateMaxTokensAsync(secondsPerJob: 1.0);
        const int Batch = 12;
        var ids = new List<string>();
        var figures = new List<string>();

        // (a) The jobs queue's leader goes mid-run: a follower takes over, the worker (if it was connected there)
        // reconnects to another node, and jobs keep coming.
        ids.AddRange(await h.PublishJobsAsync(Batch, maxTokens, prefix: "cl-jobs"));
        figures.Add(await StopNodeMidRunAsync(h, Node(1), "jobs queue leader", ids, after: Distinct(h) + 3));
        var jobsLeader = await cluster.LeaderAsync(h.JobsQueue, Node(3));
        Assert.NotEqual(Node(1), jobsLeader);
        await Node(1).StartAppAsync();
        h.Log($"{Node(1)} back; jobs queue now led by {jobsLeader}");

        // (b) The results queue's leader goes mid-run (a new batch, so that jobs are in flight): confirms of results
        // fail or wait, the worker publishes them again (same message_id) before it acks the jobs.
        ids.AddRange(await h.PublishJobsAsync(Batch, maxTokens, prefix: "cl-results"));
        figures.Add(await StopNodeMidRunAsync(h, Node(2), "results queue leader", ids, after: Distinct(h) + 3));
        Assert.NotEqual(Node(2), await cluster.LeaderAsync(h.ResultsQueue, Node(3)));
        await Node(2).StartAppAsync();
        h.Log($"{Node(2)} back");

        await h.Results.WaitForIdsAsync(ids, Waits.Scale(TimeSpan.FromMinutes(6)));
        var report = h.AssertEveryJobCompletedOnce(ids, "cluster: leaders of jobs then results stopped");
        var losses = CountOf(worker.Output, "RabbitMQ connection lost");
        output.WriteLine($"FIGURES cluster-leaders: {report}; worker connection lost {losses} time(s); {string.Join("; ", figures)}");
        // One of the two stops hit the worker's own node: it failed over and recovered.
        Assert.True(losses >= 1, "the worker's connection was never cut: the failover path was not exercised");
        Assert.Contains("RabbitMQ connection recovered", worker.Output, StringComparison.Ordinal);
        await h.WaitForJobsQueueAsync(0, 0, "the jobs queue empty and nothing unacked", TimeSpan.FromSeconds(60));
        Assert.Equal(0u, await h.Broker.MessageCountAsync(h.DeadLetterQueue));
    }

    [Fact]
    public async Task ThreeWorkersOneSigkilled_MidRun_EveryJobDoneOnce()
    {
        await using var h = await CreateHarnessAsync([1, 2, 3]);
        h.Settings["Inference:Slots"] = "1";
        h.Settings["Inference:Threads"] = "1";
        var workers = new List<WorkerProcess>();
        for (var i = 0; i < 3; i++)
            workers.Add(await h.StartWorkerAsync());
        var maxTokens = await h.CalibrateMaxTokensAsync(secondsPerJob: 1.0);
        const int Jobs = 18;
        var ids = await h.PublishJobsAsync(Jobs, maxTokens, prefix: "cl-kill");

        // Kill worker 2 once it has finished a job and received the next (its prefetch is one job). Its log says what it
        // received (a Debug line per delivery): the metrics endpoint is too slow to poll on a loaded machine.
        var victim = workers[1];
        var victimId = h.WorkerId(2);
        int Held() => CountOf(victim.Output, "received (delivery") - h.Results.All.Count(r => r.Result.Worker?.Id == victimId);
        // And jobs are left beyond what the three hold: a result still in flight to this process can make Held() count a
        // finished job as held (seen in CI at load 60: the kill hit a worker that had done its last job).
        await ReliabilityHarness.WaitUntilAsync(() => h.JobResults.Any(r => r.Result.Worker?.Id == victimId) && Held() >= 1
                && h.JobResults.Count <= Jobs - 4,
            "worker 2 has a result and holds the next job, jobs left", TimeSpan.FromSeconds(180), TimeSpan.FromMilliseconds(20));
        victim.Kill();
        var killedAt = Stopwatch.StartNew();
        var held = Held();
        var atKill = h.JobResults.Select(r => r.Result.Id).Distinct().Count();
        await victim.WaitForExitAsync(TimeSpan.FromSeconds(30));
        h.Log($"SIGKILL to worker 2 holding {held} job(s), {atKill} of {Jobs} results in");
        Assert.True(atKill < Jobs, "every job was done before the kill: the test hit nothing");

        await h.Results.WaitForIdsAsync(ids, Waits.Scale(TimeSpan.FromMinutes(6)));
        var report = h.AssertEveryJobCompletedOnce(ids, "cluster: 3 workers, one SIGKILLed");
        var byWorker = h.JobResults.GroupBy(r => r.Result.Worker?.Id ?? "?").OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => $"{g.Key}: {g.Count()}");
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"FIGURES cluster-sigkill: {report}; all done {killedAt.Elapsed.TotalSeconds:F1} s after the kill; results by worker: {string.Join(", ", byWorker)}"));
        // A duplicate can only be a job the killed worker held: its result published, its ack never sent.
        Assert.InRange(report.Duplicates, 0, 1);
        // The other two workers did the rest: each has results after the kill.
        Assert.All(new[] { h.WorkerId(1), h.WorkerId(3) }, id => Assert.Contains(h.JobResults, r => r.Result.Worker?.Id == id));
        await h.WaitForJobsQueueAsync(0, 0, "the jobs queue empty and nothing unacked", TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task NodePartitionedFromTheOthers_MidRun_MinorityPausesWorkerMovesNothingLost()
    {
        // Node 1 leads the jobs and results queues and holds the worker's connection; then it is cut off from nodes 2 and
        // 3 while every node keeps running (Erlang distribution links refused: ClusterNode.PartitionFromAsync). With
        // pause_minority (start-cluster.sh) node 1 finds itself alone of three and pauses: it stops its RabbitMQ
        // application, closing its clients' connections and refusing new ones, instead of serving a split-off copy of
        // the queues. Nodes 2 and 3 elect new leaders; the worker fails over to node 2.
        await WaitForAllNodesAsync();
        await using var h = await CreateHarnessAsync([1, 2], resultsLeader: 1);
        Assert.Equal(Node(1), await cluster.LeaderAsync(h.JobsQueue, Node(3)));
        Assert.Equal(Node(1), await cluster.LeaderAsync(h.ResultsQueue, Node(3)));
        // The client picks a node of its list at random: node 2 refuses new connections while the worker connects.
        await Node(2).Ctl.RunAsync("suspend_listeners");
        WorkerProcess worker;
        try
        {
            worker = await h.StartWorkerAsync();
        }
        finally
        {
            await Node(2).Ctl.RunAsync("resume_listeners");
        }
        Assert.Equal([Node(1)], await WorkerNodeListAsync(h));
        var maxTokens = await h.CalibrateMaxTokensAsync(secondsPerJob: 1.0);
        const int Jobs = 24;
        var ids = await h.PublishJobsAsync(Jobs, maxTokens, prefix: "cl-part");
        await ReliabilityHarness.WaitUntilAsync(() => Distinct(h) >= 4, "4 results before the partition",
            TimeSpan.FromSeconds(240), TimeSpan.FromMilliseconds(50));
        var atCut = Distinct(h);
        Assert.True(atCut < Jobs, "every job was done before the partition: the test hit nothing");

        ClusterNode[] peers = [Node(2), Node(3)];
        TimeSpan paused, firstAfter, healed;
        await Node(1).PartitionFromAsync(peers);
        // From the moment rabbitmqctl returned (the cut itself happens a little earlier, after the CLI's VM has started).
        var clock = Stopwatch.StartNew();
        h.Log($"{Node(1)} cut off from {Node(2)} and {Node(3)} with {atCut} of {Jobs} results in");
        try
        {
            await ReliabilityHarness.WaitUntilAsync(async () => !await Node(1).IsAppRunningAsync(), $"{Node(1)} pausing (pause_minority)",
                TimeSpan.FromSeconds(90), TimeSpan.FromMilliseconds(200));
            paused = clock.Elapsed;
            h.Log($"{Node(1)} paused {paused.TotalSeconds:F1} s after the cut");
            // The majority runs on without it; the minority refuses clients.
            Assert.Equal([Node(2), Node(3)], await cluster.RunningNodesAsync(Node(3)));
            var factory = new ConnectionFactory { Uri = new Uri(Node(1).Uri), RequestedConnectionTimeout = TimeSpan.FromSeconds(10) };
            await Assert.ThrowsAnyAsync<Exception>(async () => await (await factory.CreateConnectionAsync()).DisposeAsync());

            await ReliabilityHarness.WaitUntilAsync(() => Distinct(h) > atCut, "a result after the partition",
                TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(50));
            firstAfter = clock.Elapsed;
            h.Log($"first result after the cut: {firstAfter.TotalSeconds:F1} s");
            await ReliabilityHarness.WaitUntilAsync(() => Distinct(h) >= Math.Min(Jobs, atCut + 3), "three results after the partition",
                TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(50));
            Assert.NotEqual(Node(1), await cluster.LeaderAsync(h.JobsQueue, Node(3)));
            Assert.NotEqual(Node(1), await cluster.LeaderAsync(h.ResultsQueue, Node(3)));
            Assert.Equal([Node(2)], await WorkerNodeListAsync(h));
            // Still cut off, still paused: a node alone never serves on its own.
            Assert.False(await Node(1).IsAppRunningAsync(), $"{Node(1)} runs its application while cut off from the majority");
        }
        finally
        {
            // Always: the other tests of the collection need the whole cluster.
            h.Log($"healing the partition: {(await Node(1).HealAsync(peers)).Trim()}");
            var heal = Stopwatch.StartNew();
            await ReliabilityHarness.WaitUntilAsync(() => Node(1).IsAppRunningAsync(), $"{Node(1)} running again after the partition healed",
                TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(200));
            healed = heal.Elapsed;
            h.Log($"{Node(1)} running again {healed.TotalSeconds:F1} s after the heal");
        }
        await WaitForAllNodesAsync();

        await h.Results.WaitForIdsAsync(ids, Waits.Scale(TimeSpan.FromMinutes(6)));
        var report = h.AssertEveryJobCompletedOnce(ids, "cluster: one node partitioned from the other two");
        var losses = CountOf(worker.Output, "RabbitMQ connection lost");
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"FIGURES cluster-partition: {report}; cut at {atCut}/{Jobs} results; node 1 paused {paused.TotalSeconds:F1} s after the cut, next result {firstAfter.TotalSeconds:F1} s after the cut; node 1 running again {healed.TotalSeconds:F1} s after the heal; worker connection lost {losses} time(s)"));
        Assert.True(losses >= 1, "the worker's connection was never cut: the failover path was not exercised");
        Assert.Contains("RabbitMQ connection recovered", worker.Output, StringComparison.Ordinal);
        await h.WaitForJobsQueueAsync(0, 0, "the jobs queue empty and nothing unacked", TimeSpan.FromSeconds(60));
        Assert.Equal(0u, await h.Broker.MessageCountAsync(h.DeadLetterQueue));
    }

    /// <summary>Waits until node 3 sees every node's application running (a test before may have restarted one).</summary>
    private Task WaitForAllNodesAsync() =>
        ReliabilityHarness.WaitUntilAsync(async () => (await cluster.RunningNodesAsync(Node(3))).Count == RabbitCluster.Size,
            "every cluster node running", TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(500));

    /// <summary>The nodes of the harness's worker connections, in port order.</summary>
    private async Task<List<ClusterNode>> WorkerNodeListAsync(ReliabilityHarness h)
    {
        var table = await Node(3).Ctl.RunAsync("list_connections", "-q", "--no-table-headers", "port", "client_properties");
        return table.Split('\n').Where(l => l.Contains(h.ClientName, StringComparison.Ordinal))
            .Select(l => int.Parse(l.Split('\t')[0].Trim(), CultureInfo.InvariantCulture))
            .Order().Select(p => cluster.Nodes.Single(n => n.Port == p)).ToList();
    }

    /// <summary>
    /// Waits for <paramref name="after"/> results, stops <paramref name="node"/>'s application, and waits until three more
    /// distinct results arrived (from the surviving nodes): returns the figures (results at the stop, seconds to the first
    /// result after it).
    /// </summary>
    private async Task<string> StopNodeMidRunAsync(ReliabilityHarness h, ClusterNode node, string role, IReadOnlyCollection<string> ids, int after)
    {
        await ReliabilityHarness.WaitUntilAsync(() => Distinct(h) >= after, $"{after} results before stopping the {role}",
            TimeSpan.FromSeconds(240), TimeSpan.FromMilliseconds(50));
        var atStop = Distinct(h);
        Assert.True(atStop < ids.Count, $"all {ids.Count} jobs were done before the {role} could be stopped: the test hit nothing");
        var on = await WorkerNodesAsync(h);
        var clock = Stopwatch.StartNew();
        await node.StopAppAsync();
        h.Log($"the worker was connected to {on}");
        h.Log($"stop_app on {node} ({role}) with {atStop} of {ids.Count} results in");
        await ReliabilityHarness.WaitUntilAsync(() => Distinct(h) > atStop, $"a result after the {role} stopped",
            TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(50));
        var firstAfter = clock.Elapsed;
        h.Log($"first result after stopping the {role}: {firstAfter.TotalSeconds:F1} s");
        await ReliabilityHarness.WaitUntilAsync(() => Distinct(h) >= Math.Min(ids.Count, atStop + 3), $"three results after the {role} stopped",
            TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(50));
        return string.Create(CultureInfo.InvariantCulture, $"{role} stopped at {atStop}/{ids.Count} results, next result {firstAfter.TotalSeconds:F1} s later");
    }

    /// <summary>The nodes the harness's workers are connected to (the server port of each connection, listed cluster-wide).</summary>
    private async Task<string> WorkerNodesAsync(ReliabilityHarness h)
    {
        var table = await Node(3).Ctl.RunAsync("list_connections", "-q", "--no-table-headers", "port", "client_properties");
        var ports = table.Split('\n').Where(l => l.Contains(h.ClientName, StringComparison.Ordinal))
            .Select(l => int.Parse(l.Split('\t')[0].Trim(), CultureInfo.InvariantCulture));
        return string.Join(", ", ports.Select(p => cluster.Nodes.FirstOrDefault(n => n.Port == p)?.Name ?? $"port {p}"));
    }

    private static int CountOf(string text, string what)
    {
        var count = 0;
        for (var i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + what.Length, StringComparison.Ordinal))
            count++;
        return count;
    }

    private static int Distinct(ReliabilityHarness h) => h.JobResults.Select(r => r.Result.Id).Distinct(StringComparer.Ordinal).Count();
}
