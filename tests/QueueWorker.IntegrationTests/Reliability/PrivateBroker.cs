using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace QueueWorker.IntegrationTests.Reliability;

/// <summary>
/// A RabbitMQ node of the test's own, started with ops/rabbitmq/start-local.sh (so with ops/rabbitmq/rabbitmq.conf) on
/// free loopback ports under a unique node name: restarting its app or changing its settings disturbs nobody on the
/// shared broker. Stopped, and its files removed, at the end. Same approach as the messaging tests' PrivateBrokerFixture.
/// </summary>
public sealed class PrivateBroker : IAsyncLifetime
{
    public string Node { get; } = $"qw-rel-{Guid.NewGuid().ToString("N")[..8]}@localhost";

    public int Port { get; private set; }

    public string Uri => $"amqp://guest:guest@127.0.0.1:{Port}/";

    public Rabbitmqctl Ctl { get; }

    public PrivateBroker() => Ctl = new Rabbitmqctl(Node);

    private string StateDirectory => Path.Combine(Path.GetTempPath(), "qw-rel-broker-" + Node[..Node.IndexOf('@')]);

    public async Task InitializeAsync()
    {
        Port = FreePortPair();
        // The node's own plugin list (not the machine's /etc/rabbitmq/enabled_plugins): the shovel, for the DLQ replay test.
        Directory.CreateDirectory(StateDirectory);
        var plugins = Path.Combine(StateDirectory, "enabled_plugins");
        await File.WriteAllTextAsync(plugins, "[rabbitmq_shovel].\n");
        var script = Path.Combine(TestEnvironment.RepositoryRoot, "ops", "rabbitmq", "start-local.sh");
        var (code, output) = await ProcessRunner.RunAsync(script, [], new()
        {
            ["RABBITMQ_NODENAME"] = Node,
            ["QW_RABBITMQ_PORT"] = Port.ToString(CultureInfo.InvariantCulture),
            ["QW_RABBITMQ_STATE"] = StateDirectory,
            ["QW_RABBITMQ_START_TIMEOUT"] = "240",
            ["RABBITMQ_ENABLED_PLUGINS_FILE"] = plugins,
        }, TimeSpan.FromMinutes(5));
        if (code != 0)
            throw new InvalidOperationException($"ops/rabbitmq/start-local.sh could not start a private broker {Node} on port {Port} (exit {code}):\n{output}");
    }

    public async Task DisposeAsync()
    {
        await Ctl.TryRunAsync("stop");
        // The node's files are ours: remove them (other nodes' are never touched).
        foreach (var path in new[] { $"/var/lib/rabbitmq/mnesia/{Node}", $"/var/lib/rabbitmq/mnesia/{Node}-plugins-expand" })
            TryDelete(path, directory: true);
        foreach (var path in new[] { $"/var/lib/rabbitmq/mnesia/{Node}-feature_flags", $"/var/log/rabbitmq/{Node}.log", $"/var/log/rabbitmq/{Node}_upgrade.log" })
            TryDelete(path, directory: false);
        TryDelete(StateDirectory, directory: true);
    }

    private static void TryDelete(string path, bool directory)
    {
        try
        {
            if (directory && Directory.Exists(path))
                Directory.Delete(path, recursive: true);
            else if (!directory && File.Exists(path))
                File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Not ours to insist on (e.g. run without root): the node is stopped, leftovers are harmless.
        }
    }

    /// <summary>A free port p with p + 20000 free too: RabbitMQ puts its distribution port there.</summary>
    private static int FreePortPair()
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            using var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            if (port + 20000 > 65535)
                continue;
            try
            {
                using var dist = new TcpListener(IPAddress.Loopback, port + 20000);
                dist.Start();
                dist.Stop();
                return port;
            }
            catch (SocketException)
            {
            }
        }
        throw new InvalidOperationException("No free pair of loopback ports for a private broker.");
    }
}
