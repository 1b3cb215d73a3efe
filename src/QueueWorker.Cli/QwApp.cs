using QueueWorker.Cli.Infrastructure;

namespace QueueWorker.Cli;

/// <summary>The qw command line, runnable in-process (tests pass their own console and clock).</summary>
internal static class QwApp
{
    /// <summary>Commands that left qw for the benchmark tool, with what to type now.</summary>
    private static readonly Dictionary<string, string> Moved = new(StringComparer.Ordinal)
    {
        ["bench"] = "qwbench",
        ["model"] = "qwbench model",
    };

    public static Task<int> RunAsync(string[] args, CliConsole console, TimeProvider time, CancellationToken cancellationToken)
    {
        // Checked before parsing: Spectre would only say "unknown command", and a producer's old script deserves the new name.
        if (args is [var command, ..] && Moved.TryGetValue(command, out var replacement))
        {
            console.Message($"'qw {command}' moved to the benchmark tool: run '{replacement}' with the same options (src/QueueWorker.Bench).");
            return Task.FromResult(ExitCodes.Usage);
        }

        return CliApp.RunAsync("qw", app => app.Configure(CommandRegistry.Register), args, console, time, cancellationToken);
    }
}
