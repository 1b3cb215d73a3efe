using System.Globalization;

namespace QueueWorker.Testing;

/// <summary>
/// A RabbitMQ node of the test's own: Debian's rabbitmq-server started by ops/rabbitmq/start-local.sh (so with
/// ops/rabbitmq/rabbitmq.conf) on free loopback ports, under a unique node name, with its own data directory
/// (/var/lib/rabbitmq/mnesia/&lt;node&gt;), state directory and plugin list. Stopping, killing or reconfiguring it
/// disturbs nobody on the shared broker. Stopped, and its files removed, at the end. Usable as a class fixture.
/// </summary>
public class PrivateRabbitNode : IAsyncLifetime, IAsyncDisposable
{
    public PrivateRabbitNode()
    {
        Node = $"qw-test-{Guid.NewGuid().ToString("N")[..8]}@localhost";
        Ctl = new Rabbitmqctl(Node);
    }

    public string Node { get; }

    public int Port { get; private set; }

    public string Uri => $"amqp://guest:guest@127.0.0.1:{Port}/";

    public Rabbitmqctl Ctl { get; }

    /// <summary>
    /// The node's plugins (its own enabled_plugins file, not the machine's). The shovel is there because one test replays
    /// a dead-letter queue with it; it costs a second at start.
    /// </summary>
    public virtual IReadOnlyList<string> Plugins => ["rabbitmq_shovel"];

    private string ShortName => Node[..Node.IndexOf('@', StringComparison.Ordinal)];

    public string StateDirectory => Path.Combine(Path.GetTempPath(), "qw-test-broker-" + ShortName);

    public async Task InitializeAsync()
    {
        Port = FreePort.ForRabbitMq();
        Directory.CreateDirectory(StateDirectory);
        await File.WriteAllTextAsync(PluginsFile, $"[{string.Join(',', Plugins)}].\n");
        await StartAsync();
    }

    private string PluginsFile => Path.Combine(StateDirectory, "enabled_plugins");

    /// <summary>Starts the node (again, after <see cref="StopAsync"/> or <see cref="KillAsync"/>: same port, same data).</summary>
    public async Task StartAsync()
    {
        var script = Path.Combine(TestSettings.RepositoryRoot, "ops", "rabbitmq", "start-local.sh");
        var start = Waits.PrivateNodeStart;
        var result = await ProcessRunner.RunAsync(script, [], new Dictionary<string, string>
        {
            ["RABBITMQ_NODENAME"] = Node,
            ["QW_RABBITMQ_PORT"] = Port.ToString(CultureInfo.InvariantCulture),
            ["QW_RABBITMQ_STATE"] = StateDirectory,
            ["QW_RABBITMQ_START_TIMEOUT"] = ((int)start.TotalSeconds).ToString(CultureInfo.InvariantCulture),
            ["RABBITMQ_ENABLED_PLUGINS_FILE"] = PluginsFile,
        }, start + TimeSpan.FromMinutes(1));
        if (result.Code != 0)
            throw new InvalidOperationException($"ops/rabbitmq/start-local.sh could not start a private broker {Node} on port {Port} (exit {result.Code}):\n{result.Output}");
    }

    /// <summary>
    /// Restarts the node when RabbitMQ's supervisor of at-least-once dead-letter workers is gone, and says so; returns
    /// whether it did. A RabbitMQ bug, not ours (3.10 here; rabbitmq-server#16652 on 4.2): after <c>stop_app</c>/<c>start_app</c>
    /// the dead-letter workers of quorum queues deleted at once crash, <c>rabbit_fifo_dlx_sup</c> reaches its restart
    /// limit and is not restarted, and from then on every declare of an at-least-once dead-lettering quorum queue is
    /// refused with 541 INTERNAL_ERROR until the node restarts. Seen as the next test's worker never ready.
    /// </summary>
    public async Task<bool> RestartIfDeadLetterSupervisorGoneAsync(Action<string> log)
    {
        var output = (await Ctl.TryRunAsync("eval", "is_pid(whereis(rabbit_fifo_dlx_sup)).")).Output;
        var alive = output.Split('\n').Select(l => l.Trim()).LastOrDefault(l => l.Length > 0) ?? "";
        if (alive == "true")
            return false;
        log($"{Node}: rabbit_fifo_dlx_sup is gone (eval said '{alive}'): at-least-once dead-lettering quorum queues cannot be " +
            "declared until the node restarts (RabbitMQ bug, see PrivateRabbitNode); restarting it");
        await Ctl.TryRunAsync("stop");
        await StartAsync();
        return true;
    }

    /// <summary>Stops the node cleanly (<c>rabbitmqctl stop</c>).</summary>
    public async Task StopAsync()
    {
        var (code, output) = await Ctl.TryRunAsync("stop");
        if (code != 0)
            throw new InvalidOperationException($"rabbitmqctl -n {Node} stop exited {code}: {output}");
    }

    /// <summary>Stops the RabbitMQ application, the Erlang node staying up (<c>rabbitmqctl stop_app</c>): clients lose their connections.</summary>
    public Task StopAppAsync() => Ctl.RunAsync("stop_app");

    /// <summary>Starts the RabbitMQ application again (<c>rabbitmqctl start_app</c>).</summary>
    public Task StartAppAsync() => Ctl.RunAsync("start_app");

    /// <summary>SIGKILL to the node's Erlang VM: a crash, with no chance to close connections or flush anything.</summary>
    public async Task KillAsync()
    {
        var pid = (await Ctl.RunAsync("eval", "os:getpid().")).Trim().Trim('"');
        var result = await ProcessRunner.RunAsync("kill", ["-KILL", pid]);
        if (result.Code != 0)
            throw new InvalidOperationException($"kill -KILL {pid} ({Node}) exited {result.Code}: {result.Output}");
        // The node is gone once rabbitmqctl cannot reach it.
        var deadline = DateTime.UtcNow + Waits.Seconds(30);
        while ((await Ctl.TryRunAsync("-q", "status")).Code == 0)
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{Node} still answers after SIGKILL to pid {pid}.");
            await Task.Delay(200);
        }
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
        GC.SuppressFinalize(this);
    }

    async ValueTask IAsyncDisposable.DisposeAsync() => await DisposeAsync();

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
}
