using System.Diagnostics;

namespace QueueWorker.IntegrationTests.Reliability;

/// <summary>
/// <c>rabbitmqctl</c> against one node. Tests only ever touch what they created (their connection, their queues, their
/// users, a policy matching their own queue): other helpers share the broker.
/// </summary>
public sealed class Rabbitmqctl(string node)
{
    /// <summary>The shared broker's node (<c>QW_TEST_RABBITMQ_NODE</c>, default <c>rabbit@localhost</c>).</summary>
    public static Rabbitmqctl Shared { get; } =
        new(Environment.GetEnvironmentVariable("QW_TEST_RABBITMQ_NODE") is { Length: > 0 } node ? node : "rabbit@localhost");

    public string Node { get; } = node;

    /// <summary>Runs a command; a non-zero exit fails with rabbitmqctl's own words.</summary>
    public async Task<string> RunAsync(params string[] arguments)
    {
        var (code, output) = await TryRunAsync(arguments);
        if (code != 0)
            throw new InvalidOperationException($"rabbitmqctl -n {Node} {string.Join(' ', arguments)} exited {code}: {output}");
        return output;
    }

    public Task<(int Code, string Output)> TryRunAsync(params string[] arguments) =>
        ProcessRunner.RunAsync("rabbitmqctl", ["-n", Node, .. arguments], [], TimeSpan.FromMinutes(2));

    /// <summary>The broker's pid of the connection whose client properties hold <paramref name="clientName"/>, or null.</summary>
    public async Task<string?> FindConnectionPidAsync(string clientName)
    {
        // Table output: "<pid>\t<client properties>" per line; the JSON formatter prints pids close_connection does not accept.
        var table = await RunAsync("list_connections", "-q", "pid", "client_properties");
        var line = table.Split('\n').FirstOrDefault(l => l.Contains(clientName, StringComparison.Ordinal));
        return line?.Split('\t')[0].Trim();
    }

    /// <summary>Waits until the connection named <paramref name="clientName"/> is listed and returns its pid.</summary>
    public async Task<string> ConnectionPidAsync(string clientName, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (true)
        {
            if (await FindConnectionPidAsync(clientName) is { } pid)
                return pid;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"No broker connection named '{clientName}' on {Node}.");
            await Task.Delay(500);
        }
    }

    /// <summary>Ready and unacknowledged message counts of <paramref name="queue"/>.</summary>
    public async Task<(long Ready, long Unacked)> QueueCountsAsync(string queue)
    {
        var table = await RunAsync("list_queues", "-q", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged");
        foreach (var line in table.Split('\n'))
        {
            var cells = line.Split('\t');
            if (cells.Length == 3 && cells[0] == queue)
                return (long.Parse(cells[1].Trim()), long.Parse(cells[2].Trim()));
        }
        throw new InvalidOperationException($"Queue '{queue}' not listed on {Node}.");
    }

    /// <summary>Sets a broker configuration value at run time (applies to channels opened afterwards).</summary>
    public Task<string> SetEnvAsync(string key, long value) =>
        RunAsync("eval", $"application:set_env(rabbit, {key}, {value}).");
}

internal static class ProcessRunner
{
    public static async Task<(int Code, string Output)> RunAsync(string file, string[] arguments, Dictionary<string, string> environment, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        foreach (var (key, value) in environment)
            start.Environment[key] = value;
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', arguments)} did not finish within {timeout.TotalSeconds:F0} s.");
        }
        return (process.ExitCode, await stdout + await stderr);
    }
}
