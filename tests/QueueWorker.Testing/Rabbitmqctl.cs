using System.Globalization;

namespace QueueWorker.Testing;

/// <summary>
/// <c>rabbitmqctl</c> against one node. Tests only ever touch what they created (their connections, queues, users,
/// virtual hosts, a policy matching their own queue): other test runs share the broker.
/// </summary>
public sealed class Rabbitmqctl(string node)
{
    /// <summary>The shared broker's node (<c>QW_TEST_RABBITMQ_NODE</c>, default <c>rabbit@localhost</c>).</summary>
    public static Rabbitmqctl Shared { get; } = new(TestSettings.RabbitMqNode);

    public string Node { get; } = node;

    /// <summary>Runs a command and returns its standard output; a non-zero exit fails with rabbitmqctl's own words.</summary>
    public async Task<string> RunAsync(params string[] arguments)
    {
        var result = await RunCommandAsync(arguments);
        if (result.Code != 0)
            throw new InvalidOperationException($"rabbitmqctl -n {Node} {string.Join(' ', arguments)} exited {result.Code}: {result.Output}");
        return result.StandardOutput;
    }

    /// <summary>Runs a command whatever its exit code: the code, and standard output then standard error.</summary>
    public async Task<(int Code, string Output)> TryRunAsync(params string[] arguments)
    {
        var result = await RunCommandAsync(arguments);
        return (result.Code, result.Output);
    }

    /// <summary>Runs a command with <paramref name="standardInput"/> (e.g. <c>import_definitions</c> reads JSON from it).</summary>
    public Task<ProcessResult> RunCommandAsync(IEnumerable<string> arguments, string? standardInput = null) =>
        ProcessRunner.RunAsync("rabbitmqctl", ["-n", Node, .. arguments], timeout: Waits.Rabbitmqctl, standardInput: standardInput);

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
        var deadline = DateTime.UtcNow + (timeout is { } given ? Waits.Scale(given) : Waits.Seconds(60));
        while (true)
        {
            if (await FindConnectionPidAsync(clientName) is { } pid)
                return pid;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"No broker connection named '{clientName}' on {Node}.");
            await Task.Delay(500);
        }
    }

    /// <summary>Closes every connection whose client properties contain <paramref name="nameContains"/>; returns how many.</summary>
    public async Task<int> CloseConnectionsAsync(string nameContains, string reason = "test: simulated broker restart")
    {
        // Tab-separated "pid<TAB>client_properties" lines; close_connection takes the pid in this text form.
        var listing = await RunAsync("-q", "--no-table-headers", "list_connections", "pid", "client_properties");
        var closed = 0;
        foreach (var line in listing.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var tab = line.IndexOf('\t', StringComparison.Ordinal);
            if (tab <= 0 || !line[tab..].Contains(nameContains, StringComparison.Ordinal))
                continue;
            await RunAsync("-q", "close_connection", line[..tab].Trim(), reason);
            closed++;
        }
        return closed;
    }

    /// <summary>Ready and unacknowledged message counts of <paramref name="queue"/>.</summary>
    public async Task<(long Ready, long Unacked)> QueueCountsAsync(string queue)
    {
        var table = await RunAsync("list_queues", "-q", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged");
        foreach (var line in table.Split('\n'))
        {
            var cells = line.Split('\t');
            if (cells.Length == 3 && cells[0] == queue)
                return (long.Parse(cells[1].Trim(), CultureInfo.InvariantCulture), long.Parse(cells[2].Trim(), CultureInfo.InvariantCulture));
        }
        throw new InvalidOperationException($"Queue '{queue}' not listed on {Node}.");
    }

    /// <summary>Sets a broker configuration value at run time (applies to channels opened afterwards).</summary>
    public Task<string> SetEnvAsync(string key, long value) =>
        RunAsync("eval", string.Create(CultureInfo.InvariantCulture, $"application:set_env(rabbit, {key}, {value})."));
}
