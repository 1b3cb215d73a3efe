using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace QueueWorker.Testing;

/// <summary>
/// A 3-node RabbitMQ cluster of the test's own, started by ops/rabbitmq/start-cluster.sh on free loopback ports under
/// unique node names (<c>qwt&lt;hex&gt;1@localhost</c>…), its data in a temporary directory; stopped and removed at the
/// end. Stopping one of its nodes disturbs nobody else. Usable as a collection fixture (one cluster per collection: it
/// takes a minute or more to start on a loaded machine).
/// </summary>
public class RabbitCluster : IAsyncLifetime, IAsyncDisposable
{
    public const int Size = 3;

    public RabbitCluster()
    {
        Prefix = "qwt" + Guid.NewGuid().ToString("N")[..6];
        Directory = Path.Combine(Path.GetTempPath(), "qw-test-cluster-" + Prefix);
    }

    public string Prefix { get; }

    public string Directory { get; }

    /// <summary>AMQP port of node 1; node i listens on BasePort + i - 1.</summary>
    public int BasePort { get; private set; }

    /// <summary>The nodes, 1 to <see cref="Size"/> (index 0 is node 1).</summary>
    public IReadOnlyList<ClusterNode> Nodes { get; private set; } = [];

    /// <summary>Every node's URI, comma-separated: the worker's <c>RabbitMq:Uri</c> for the cluster.</summary>
    public string Uris => string.Join(',', Nodes.Select(n => n.Uri));

    /// <summary>How long <c>start-cluster.sh start</c> took (for the report).</summary>
    public TimeSpan StartTime { get; private set; }

    public async Task InitializeAsync()
    {
        BasePort = FreeClusterPorts();
        Nodes = Enumerable.Range(1, Size).Select(i => new ClusterNode(i, $"{Prefix}{i}@localhost", BasePort + i - 1)).ToList();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var result = await RunScriptAsync("start", Waits.PrivateNodeStart * 2);
        StartTime = clock.Elapsed;
        if (result.Code != 0)
        {
            await RunScriptAsync("clean", Waits.Rabbitmqctl);
            throw new InvalidOperationException($"ops/rabbitmq/start-cluster.sh could not start a cluster {Prefix} on ports {BasePort}+ (exit {result.Code}):\n{result.Output}");
        }
    }

    /// <summary>The node leading <paramref name="queue"/> (a quorum queue), asked of <paramref name="askNode"/> (a node that is up).</summary>
    public async Task<ClusterNode> LeaderAsync(string queue, ClusterNode askNode)
    {
        // Asked again until listed: mid-election (or just after a node stopped) a quorum queue can be missing from the
        // table or have no leader yet (seen in CI: the jobs queue absent while its DLQ was listed).
        var deadline = DateTime.UtcNow + Waits.Message;
        while (true)
        {
            var table = await askNode.Ctl.RunAsync("list_queues", "-q", "--no-table-headers", "name", "leader");
            foreach (var line in table.Split('\n'))
            {
                var cells = line.Split('\t');
                if (cells.Length == 2 && cells[0] == queue && Nodes.SingleOrDefault(n => n.Name == cells[1].Trim()) is { } leader)
                    return leader;
            }
            if (DateTime.UtcNow > deadline)
                throw new InvalidOperationException($"Queue '{queue}' not listed with a leader on {askNode.Name} within {Waits.Message.TotalSeconds:F0} s: {table}");
            await Task.Delay(500);
        }
    }

    /// <summary>The nodes whose RabbitMQ application runs, as <paramref name="askNode"/> sees the cluster.</summary>
    public async Task<IReadOnlyList<ClusterNode>> RunningNodesAsync(ClusterNode askNode)
    {
        var json = await askNode.Ctl.RunAsync("-q", "cluster_status", "--formatter", "json");
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        var names = doc.RootElement.GetProperty("running_nodes").EnumerateArray().Select(e => e.GetString()).ToHashSet(StringComparer.Ordinal);
        return Nodes.Where(n => names.Contains(n.Name)).ToList();
    }

    private Task<ProcessResult> RunScriptAsync(string command, TimeSpan timeout)
    {
        var script = Path.Combine(TestSettings.RepositoryRoot, "ops", "rabbitmq", "start-cluster.sh");
        return ProcessRunner.RunAsync(script, [command], new Dictionary<string, string>
        {
            ["QW_CLUSTER_PREFIX"] = Prefix,
            ["QW_CLUSTER_PORT"] = BasePort.ToString(CultureInfo.InvariantCulture),
            ["QW_CLUSTER_DIR"] = Directory,
            ["QW_CLUSTER_NODES"] = Size.ToString(CultureInfo.InvariantCulture),
            ["QW_CLUSTER_START_TIMEOUT"] = ((int)Waits.PrivateNodeStart.TotalSeconds).ToString(CultureInfo.InvariantCulture),
        }, timeout);
    }

    public async Task DisposeAsync()
    {
        // clean = stop every node, then delete the directory: nothing of the cluster is left.
        await RunScriptAsync("clean", Waits.Rabbitmqctl * 2);
        GC.SuppressFinalize(this);
    }

    async ValueTask IAsyncDisposable.DisposeAsync() => await DisposeAsync();

    /// <summary>A base port p with p..p+Size-1 and each +20000 (the Erlang distribution ports) free.</summary>
    private static int FreeClusterPorts()
    {
        for (var attempt = 0; attempt < 200; attempt++)
        {
            var start = FreePort.Next();
            if (start + Size - 1 + 20000 > 65535)
                continue;
            if (Enumerable.Range(start, Size).All(p => IsFree(p) && IsFree(p + 20000)))
                return start;
        }
        throw new InvalidOperationException("No free run of loopback ports for a private cluster.");
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            listener.Stop();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}

/// <summary>One node of a <see cref="RabbitCluster"/>.</summary>
public sealed class ClusterNode(int number, string name, int port)
{
    /// <summary>1-based.</summary>
    public int Number { get; } = number;

    public string Name { get; } = name;

    public int Port { get; } = port;

    public string Uri => $"amqp://guest:guest@127.0.0.1:{Port}/";

    public Rabbitmqctl Ctl { get; } = new(name);

    /// <summary>Stops the RabbitMQ application (the Erlang node stays up): its clients lose their connections, its queue replicas go down.</summary>
    public Task StopAppAsync() => Ctl.RunAsync("stop_app");

    /// <summary>Starts the application again and waits until it runs; it rejoins the cluster and its replicas catch up.</summary>
    public async Task StartAppAsync()
    {
        await Ctl.RunAsync("start_app");
        await Ctl.RunAsync("await_startup");
    }

    /// <summary>
    /// Cuts this node off from <paramref name="peers"/> while every Erlang node keeps running: a network partition
    /// without touching the network. This node is told a wrong Erlang cookie for each peer and drops its distribution
    /// links to them, so every reconnect either side tries fails the cookie handshake until <see cref="HealAsync"/>.
    /// Only this cluster's nodes are touched (the cookie of a named peer, in this node's memory).
    /// </summary>
    public Task PartitionFromAsync(IEnumerable<ClusterNode> peers) =>
        Ctl.RunAsync("eval", $"[begin erlang:set_cookie(N, qw_test_partitioned), erlang:disconnect_node(N) end || N <- [{Atoms(peers)}]], ok.");

    /// <summary>Undoes <see cref="PartitionFromAsync"/>: this node's own cookie for the peers again, and a ping to each (pong or pang).</summary>
    public Task<string> HealAsync(IEnumerable<ClusterNode> peers) =>
        Ctl.RunAsync("eval", $"C = erlang:get_cookie(), [begin erlang:set_cookie(N, C), net_adm:ping(N) end || N <- [{Atoms(peers)}]].");

    /// <summary>Whether the RabbitMQ application runs on this node (false while it is stopped or paused in a minority).</summary>
    public async Task<bool> IsAppRunningAsync()
    {
        var result = await Ctl.RunCommandAsync(["-q", "eval", "rabbit:is_running()."]);
        return result.Code == 0 && result.StandardOutput.Trim() == "true";
    }

    private static string Atoms(IEnumerable<ClusterNode> nodes) => string.Join(", ", nodes.Select(n => $"'{n.Name}'"));

    public override string ToString() => Name;
}
