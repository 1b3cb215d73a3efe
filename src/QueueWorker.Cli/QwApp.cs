using Microsoft.Extensions.DependencyInjection;
using QueueWorker.Cli.Infrastructure;
using Spectre.Console.Cli;

namespace QueueWorker.Cli;

/// <summary>The qw command line, runnable in-process (tests pass their own console and clock).</summary>
internal static class QwApp
{
    public static async Task<int> RunAsync(string[] args, CliConsole console, TimeProvider time, CancellationToken cancellationToken)
    {
        var services = new ServiceCollection();
        services.AddSingleton(console);
        services.AddSingleton(time);
        var app = new CommandApp(new TypeRegistrar(services));
        app.Configure(config =>
        {
            config.SetApplicationName("qw");
            config.Settings.Console = console.Ansi;
            config.PropagateExceptions();
            // A mistyped flag is an error, not an ignored extra argument.
            config.Settings.StrictParsing = true;
            CommandRegistry.Register(config);
        });
        try
        {
            return await app.RunAsync(args, cancellationToken);
        }
        catch (CliException ex)
        {
            console.Message(ex.Message);
            return ex.ExitCode;
        }
        catch (CommandAppException ex)
        {
            // Unknown flags, missing arguments, values of the wrong type.
            console.Message(ex.Message);
            return ExitCodes.Usage;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A full disk or a file that went away mid-run: say so in one line.
            console.Message("I/O error: " + ex.Message);
            return ExitCodes.Usage;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            console.Message("interrupted.");
            return ExitCodes.Interrupted;
        }
    }
}
