using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace QueueWorker.Messaging.Tests;

/// <summary>
/// A broker of the test's own, started with ops/rabbitmq/start-local.sh on free ports under a unique node name, so
/// stopping its app disturbs nobody else on the shared broker. Removed (node stopped, its data deleted) at the end.
/// </summary>
public sealed class PrivateBrokerFixture : IAsyncLifetime
{
    public string Node { get; } = $"qw-test-{Guid.NewGuid().ToString("N")[..8]}@localhost";

    public int Port { get; private set; }

    public string Uri => $"amqp://guest:guest@127.0.0.1:{Port}/";

    private string StateDirectory => Path.Combine(Path.GetTempPath(), "qw-test-broker-" + Node[..Node.IndexOf('@')]);

    public async Task InitializeAsync()
    {
        Port = FreePortPair();
        var script = Path.Combine(RepositoryRoot(), "ops", "rabbitmq", "start-local.sh");
        var (code, output) = await RunAsync(script, [], new()
        {
            ["RABBITMQ_NODENAME"] = Node,
            ["QW_RABBITMQ_PORT"] = Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["QW_RABBITMQ_STATE"] = StateDirectory,
            ["QW_RABBITMQ_START_TIMEOUT"] = "180",
        }, TimeSpan.FromMinutes(4));
        if (code != 0)
            throw new InvalidOperationException($"ops/rabbitmq/start-local.sh could not start a private broker {Node} on port {Port} (exit {code}):\n{output}");
    }

    public async Task DisposeAsync()
    {
        await RunAsync("rabbitmqctl", ["-n", Node, "stop"], [], TimeSpan.FromMinutes(1));
        // The node's files are ours: remove them (other nodes' are never touched).
        foreach (var path in new[] { $"/var/lib/rabbitmq/mnesia/{Node}", $"/var/lib/rabbitmq/mnesia/{Node}-plugins-expand" })
            TryDelete(path, directory: true);
        foreach (var path in new[] { $"/var/lib/rabbitmq/mnesia/{Node}-feature_flags", $"/var/log/rabbitmq/{Node}.log", $"/var/log/rabbitmq/{Node}_upgrade.log" })
            TryDelete(path, directory: false);
        TryDelete(StateDirectory, directory: true);
    }

    public Task<(int Code, string Output)> CtlAsync(params string[] arguments) =>
        RunAsync("rabbitmqctl", ["-n", Node, .. arguments], [], TimeSpan.FromMinutes(2));

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

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ops", "rabbitmq", "start-local.sh")))
                return dir.FullName;
        throw new InvalidOperationException($"ops/rabbitmq/start-local.sh not found above {AppContext.BaseDirectory}.");
    }

    private static async Task<(int Code, string Output)> RunAsync(string file, string[] arguments, Dictionary<string, string> environment, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        foreach (var (key, value) in environment)
            start.Environment[key] = value;
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        await process.WaitForExitAsync(cts.Token);
        return (process.ExitCode, await stdout + await stderr);
    }
}

/// <summary>The broker application restarts under a running worker (<c>rabbitmqctl stop_app</c> / <c>start_app</c>), on a private broker.</summary>
[Trait("Category", "Integration")]
public sealed class BrokerRestartTests(PrivateBrokerFixture privateBroker, ITestOutputHelper output) : IClassFixture<PrivateBrokerFixture>
{
    [Fact]
    public async Task BrokerAppRestarted_WorkerRecoversAndEveryJobGetsItsResult()
    {
        await using var broker = new RabbitMqFixture(privateBroker.Uri);
        await broker.InitializeAsync();
        var options = broker.NewOptions("restart", o => o.PublishRetries = 6);
        await using var worker = await TestWorker.StartAsync(options, output);
        await broker.PublishJobAsync(options.JobsQueue, RabbitMqFixture.JobBody("before"), p => p.MessageId = "before");
        Assert.Equal("before", (await broker.GetAsync(options.ResultsQueue)).BasicProperties.MessageId);

        var stopped = await privateBroker.CtlAsync("stop_app");
        Assert.True(stopped.Code == 0, stopped.Output);
        await worker.WaitUntilAsync(() => !worker.Status.IsConnected, "the worker sees the broker go", TimeSpan.FromSeconds(20));
        await Task.Delay(TimeSpan.FromSeconds(3)); // a few failed recovery attempts while the app is down
        var started = await privateBroker.CtlAsync("start_app");
        Assert.True(started.Code == 0, started.Output);
        await worker.WaitUntilAsync(() => worker.Status.IsConsuming, "the worker consumes again", TimeSpan.FromSeconds(60));

        await using var after = new RabbitMqFixture(privateBroker.Uri);
        await after.InitializeAsync();
        for (var i = 0; i < 3; i++)
            await after.PublishJobAsync(options.JobsQueue, RabbitMqFixture.JobBody($"after-{i}"), p => p.MessageId = $"after-{i}");
        var ids = new HashSet<string>();
        for (var i = 0; i < 3; i++)
            ids.Add((await after.GetAsync(options.ResultsQueue, TimeSpan.FromSeconds(30))).BasicProperties.MessageId!);
        Assert.Equal(["after-0", "after-1", "after-2"], ids.Order());
    }
}
