using System.Runtime.InteropServices;
using Microsoft.Extensions.DependencyInjection;
using Spectre.Console.Cli;

namespace QueueWorker.Cli.Infrastructure;

/// <summary>
/// What every command-line tool of this repository shares (qw, and qwbench which references this assembly): the signal
/// handling of Program.cs, the Spectre app with its DI registrar and strict parsing, and the mapping of failures to one
/// line and an exit code.
/// </summary>
internal static class CliApp
{
    /// <summary>
    /// Runs <paramref name="run"/> with a token that Ctrl-C and SIGTERM cancel, so the running command stops cleanly
    /// (a batch resumes later); a second Ctrl-C kills.
    /// </summary>
    public static async Task<int> MainAsync(Func<CancellationToken, Task<int>> run)
    {
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            if (stop.IsCancellationRequested) return;
            e.Cancel = true;
            stop.Cancel();
        };
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            stop.Cancel();
        });
        return await run(stop.Token);
    }

    /// <summary>Runs one command line of the app named <paramref name="name"/>, whose commands <paramref name="register"/> adds.</summary>
    public static async Task<int> RunAsync(string name, Action<CommandApp> register, string[] args, CliConsole console, TimeProvider time,
        CancellationToken cancellationToken)
    {
        var services = new ServiceCollection();
        services.AddSingleton(console);
        services.AddSingleton(time);
        var app = new CommandApp(new TypeRegistrar(services));
        app.Configure(config =>
        {
            config.SetApplicationName(name);
            config.Settings.Console = console.Ansi;
            config.PropagateExceptions();
            // A mistyped flag is an error, not an ignored extra argument.
            config.Settings.StrictParsing = true;
        });
        register(app);
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
