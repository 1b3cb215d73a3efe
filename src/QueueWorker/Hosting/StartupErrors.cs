using Microsoft.Extensions.Options;

namespace QueueWorker.Hosting;

public static class StartupErrors
{
    /// <summary>
    /// Runs the host; a configuration or startup fault ends it with one clear line on stderr naming
    /// the key and the value (exit code 2), not a stack trace as the only message.
    /// </summary>
    public static async Task<int> RunWorkerAsync(this WebApplication app)
    {
        try
        {
            // The host also stops when the worker cannot go on: a background service failed (the host's StopHost
            // behaviour) or one asked to stop with an exit code (e.g. the jobs queue exists with other settings).
            // Main's return value wins over Environment.ExitCode, so both must be turned into it here: orchestrators
            // restart and alert on non-zero exits only. Checked when the host has stopped, before it disposes the services.
            var failed = false;
            app.Lifetime.ApplicationStopped.Register(() =>
                failed = app.Services.GetServices<IHostedService>().OfType<BackgroundService>().Any(s => s.ExecuteTask is { IsFaulted: true }));
            await app.RunAsync();
            return failed && Environment.ExitCode == 0 ? 1 : Environment.ExitCode;
        }
        catch (OptionsValidationException ex)
        {
            foreach (var failure in ex.Failures)
                await Console.Error.WriteLineAsync($"queueworker: configuration error: {failure}");
            return 2;
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or InvalidOperationException or UnauthorizedAccessException or IOException)
        {
            await Console.Error.WriteLineAsync($"queueworker: cannot start: {ex.Message}");
            return 2;
        }
    }
}
