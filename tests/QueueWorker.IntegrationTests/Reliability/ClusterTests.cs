using System.Diagnostics;
using System.Globalization;
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

    /// <summary>
    /// The worker's jobs queue arguments (Topology.JobsQueueArguments with the default delivery limit): declared here
    /// first, through node 1, so its leader is known; the worker's own declaration must match or it stops with a 406.
    /// </summary>
    private static Dictionary<string, object?> JobsArguments(string deadLetterQueue) => new()
    {
        ["x-queue-type"] = "quorum",
        ["x-delivery-limit"] = 3,
        ["x-dead-letter-exchange"] = "",
        ["x-dead-letter-routing-key"] = deadLetterQueue,
        ["x-dead-letter-strategy"] = "at-least-once",
        ["x-overflow"] = "reject-publish",
    };

    private async Task<ReliabilityHarness> CreateHarnessAsync()
    {
        output.WriteLine($"cluster {cluster.Prefix}: nodes {string.Join(", ", cluster.Nodes.Select(n => $"{n.Name} :{n.Port}"))}, started in {cluster.StartTime.TotalSeconds:F0} s");
        // Results lead on node 2, jobs and dead letters on node 1; the harness talks to node 3.
        var h = await ReliabilityHarness.CreateAsync(output, Node(3).Uri, Node(3).Ctl, declareResultsVia: Node(2).Uri);
        await ReliabilityHarness.DeclareViaAsync(Node(1).Uri, h.DeadLetterQueue, new Dictionary<string, object?> { ["x-queue-type"] = "quorum" });
        await ReliabilityHarness.DeclareViaAsync(Node(1).Uri, h.JobsQueue, JobsArguments(h.DeadLetterQueue));
        h.Settings["RabbitMq:Uri"] = cluster.Uris;
        // A worker cut off from every node gives up after this (exit 5): far longer than any outage here.
        h.Settings["RabbitMq:MaxRecoverySeconds"] = "600";
        return h;
    }

    [Fact]
    public async Task LeaderOfJobsThenOfResultsStopped_MidRun_NoJobOrResultLost()
    {
        await using var h = await CreateHarnessAsync();
        Assert.Equal(Node(1), await cluster.LeaderAsync(h.JobsQueue, Node(3)));
        Assert.Equal(Node(2), await cluster.LeaderAsync(h.ResultsQueue, Node(3)));
        await h.StartWorkerAsync();
        var maxTokens = await h.CalibrateMaxTokensAsync(secondsPerJob: 1.0);
        const int Jobs = 24;
        var ids = await h.PublishJobsAsync(Jobs, maxTokens, prefix: "cl-leader");
        var figures = new List<string>();

        // (a) The jobs queue's leader goes mid-run: a follower takes over, the worker (if it was connected there)
        // reconnects to another node, and jobs keep coming.
        figures.Add(await StopNodeMidRunAsync(h, Node(1), "jobs queue leader", ids, after: 4));
        var jobsLeader = await cluster.LeaderAsync(h.JobsQueue, Node(3));
        Assert.NotEqual(Node(1), jobsLeader);
        await Node(1).StartAppAsync();
        h.Log($"{Node(1)} back; jobs queue now led by {jobsLeader}");

        // (b) The results queue's leader goes mid-run: confirms of results in flight fail or wait, the worker publishes
        // them again (same message_id) before it acks the jobs.
        figures.Add(await StopNodeMidRunAsync(h, Node(2), "results queue leader", ids, after: 12));
        Assert.NotEqual(Node(2), await cluster.LeaderAsync(h.ResultsQueue, Node(3)));
        await Node(2).StartAppAsync();
        h.Log($"{Node(2)} back");

        await h.Results.WaitForIdsAsync(ids, Waits.Scale(TimeSpan.FromMinutes(6)));
        var report = h.AssertEveryJobCompletedOnce(ids, "cluster: leaders of jobs then results stopped");
        output.WriteLine($"FIGURES cluster-leaders: {report}; {string.Join("; ", figures)}");
        await h.WaitForJobsQueueAsync(0, 0, "the jobs queue empty and nothing unacked", TimeSpan.FromSeconds(60));
        Assert.Equal(0u, await h.Broker.MessageCountAsync(h.DeadLetterQueue));
    }

    [Fact]
    public async Task ThreeWorkersOneSigkilled_MidRun_EveryJobDoneOnce()
    {
        await using var h = await CreateHarnessAsync();
        h.Settings["Inference:Slots"] = "1";
        h.Settings["Inference:Threads"] = "1";
        var workers = new List<WorkerProcess>();
        for (var i = 0; i < 3; i++)
            workers.Add(await h.StartWorkerAsync());
        var maxTokens = await h.CalibrateMaxTokensAsync(secondsPerJob: 1.0);
        const int Jobs = 18;
        var ids = await h.PublishJobsAsync(Jobs, maxTokens, prefix: "cl-kill");

        // Kill worker 2 once it has finished a job and holds another (its prefetch is one job).
        var victim = workers[1];
        var victimId = h.WorkerId(2);
        double inFlight = 0;
        await ReliabilityHarness.WaitUntilAsync(async () =>
            h.JobResults.Any(r => r.Result.Worker?.Id == victimId) && (inFlight = await victim.MetricAsync("queueworker_jobs_in_flight")) >= 1,
            "worker 2 has a result and holds a job", TimeSpan.FromSeconds(180), TimeSpan.FromMilliseconds(50));
        victim.Kill();
        var killedAt = Stopwatch.StartNew();
        var atKill = h.JobResults.Select(r => r.Result.Id).Distinct().Count();
        await victim.WaitForExitAsync(TimeSpan.FromSeconds(30));
        h.Log($"SIGKILL to worker 2 with {inFlight} job(s) in flight, {atKill} of {Jobs} results in");

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
        var clock = Stopwatch.StartNew();
        await node.StopAppAsync();
        h.Log($"stop_app on {node} ({role}) with {atStop} of {ids.Count} results in");
        await ReliabilityHarness.WaitUntilAsync(() => Distinct(h) > atStop, $"a result after the {role} stopped",
            TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(50));
        var firstAfter = clock.Elapsed;
        h.Log($"first result after stopping the {role}: {firstAfter.TotalSeconds:F1} s");
        await ReliabilityHarness.WaitUntilAsync(() => Distinct(h) >= Math.Min(ids.Count, atStop + 3), $"three results after the {role} stopped",
            TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(50));
        return string.Create(CultureInfo.InvariantCulture, $"{role} stopped at {atStop}/{ids.Count} results, next result {firstAfter.TotalSeconds:F1} s later");
    }

    private static int Distinct(ReliabilityHarness h) => h.JobResults.Select(r => r.Result.Id).Distinct(StringComparer.Ordinal).Count();
}
