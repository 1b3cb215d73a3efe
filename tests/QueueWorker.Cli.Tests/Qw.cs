using QueueWorker.Cli.Infrastructure;

namespace QueueWorker.Cli.Tests;

public sealed record QwRun(int ExitCode, string Out, string Error)
{
    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Out}\n--- stderr\n{Error}";
}

/// <summary>Runs qw in-process exactly as Program.cs does, with captured stdout/stderr (plain, non-interactive).</summary>
internal static class Qw
{
    public static async Task<QwRun> RunAsync(IEnumerable<string> args, string? stdin = null, CancellationToken cancellationToken = default)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var syncOut = TextWriter.Synchronized(output);
        var syncErr = TextWriter.Synchronized(error);
        var console = CliConsole.Plain(syncOut, syncErr, stdin is null ? null : new StringReader(stdin));
        var code = await QwApp.RunAsync(args.ToArray(), console, TimeProvider.System, cancellationToken);
        await syncOut.FlushAsync(cancellationToken);
        await syncErr.FlushAsync(cancellationToken);
        return new QwRun(code, output.ToString(), error.ToString());
    }
}

/// <summary>A temporary directory per test, removed afterwards.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("qw-test-").FullName;
    public string File(string name) => System.IO.Path.Combine(Path, name);
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { /* best effort */ }
    }
}
