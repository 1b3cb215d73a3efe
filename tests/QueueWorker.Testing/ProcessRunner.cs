using System.Diagnostics;

namespace QueueWorker.Testing;

/// <summary>What a finished command printed.</summary>
public sealed record ProcessResult(int Code, string StandardOutput, string StandardError)
{
    /// <summary>Standard output then standard error, for messages and for checks on whatever the command said.</summary>
    public string Output => StandardOutput + StandardError;
}

/// <summary>Runs a command to its end with its output captured; one that outlives its timeout is killed and fails.</summary>
public static class ProcessRunner
{
    public static async Task<ProcessResult> RunAsync(string file, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null,
        TimeSpan? timeout = null, string? standardInput = null)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
            start.Environment[key] = value;
        var limit = timeout ?? Waits.Rabbitmqctl;
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        // Standard input is always closed: a command that reads it (rabbitmqctl import_definitions) must not wait forever.
        if (standardInput is not null)
            await process.StandardInput.WriteAsync(standardInput);
        process.StandardInput.Close();
        using var cts = new CancellationTokenSource(limit);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', start.ArgumentList)} did not finish within {limit.TotalSeconds:F0} s.");
        }
        return new ProcessResult(process.ExitCode, await stdout, await stderr);
    }
}
