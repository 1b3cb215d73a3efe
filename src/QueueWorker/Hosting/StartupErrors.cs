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
            await app.RunAsync();
            return 0;
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
