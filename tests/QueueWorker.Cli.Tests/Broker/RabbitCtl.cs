using System.Diagnostics;

namespace QueueWorker.Cli.Tests.Broker;

/// <summary>
/// Drops a client's connection from the broker side with rabbitmqctl: what the client sees when the
/// broker restarts, without restarting the broker other test runs share.
/// </summary>
internal static class RabbitCtl
{
    private static string Node => Environment.GetEnvironmentVariable("QW_TEST_RABBITMQ_NODE") is { Length: > 0 } node ? node : "rabbit@localhost";

    /// <summary>Closes every connection whose client-provided name contains <paramref name="nameContains"/>; returns how many.</summary>
    public static async Task<int> CloseConnectionsAsync(string nameContains)
    {
        // Tab-separated "pid<TAB>client_properties" lines; close_connection takes the pid in this text form.
        var listing = await RunAsync("-n", Node, "-q", "--no-table-headers", "list_connections", "pid", "client_properties");
        var closed = 0;
        foreach (var line in listing.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var tab = line.IndexOf('\t', StringComparison.Ordinal);
            if (tab <= 0 || !line[tab..].Contains(nameContains, StringComparison.Ordinal)) continue;
            await RunAsync("-n", Node, "-q", "close_connection", line[..tab].Trim(), "qw test: simulated broker restart");
            closed++;
        }
        return closed;
    }

    private static async Task<string> RunAsync(params string[] args)
    {
        var start = new ProcessStartInfo("rabbitmqctl") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start) ?? throw new InvalidOperationException("rabbitmqctl did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"rabbitmqctl {string.Join(' ', args)} failed ({process.ExitCode}): {await stderr}");
        return await stdout;
    }
}
