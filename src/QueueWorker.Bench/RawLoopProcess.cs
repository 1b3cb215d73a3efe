using System.Diagnostics;
using System.Text.Json;
using QueueWorker.Bench.Commands;

namespace QueueWorker.Bench;

/// <summary>
/// <c>qwbench raw-loop</c> as a child process, started exactly as <see cref="WorkerProcess"/> starts the worker
/// (<see cref="WorkerProcess.StartInfo"/>: <c>dotnet DLL</c>, same environment rules): the baseline gets no advantage
/// (or handicap) from sharing qwbench's process, its JIT state, its GC or its threads.
/// </summary>
public sealed class RawLoopProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Queue<string> _stderr = new();

    private RawLoopProcess(Process process)
    {
        _process = process;
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            lock (_stderr)
            {
                _stderr.Enqueue(e.Data);
                while (_stderr.Count > 50)
                {
                    _stderr.Dequeue();
                }
            }
        };
        process.BeginErrorReadLine();
    }

    public int Pid => _process.Id;

    private string ErrorTail
    {
        get
        {
            lock (_stderr)
            {
                return string.Join('\n', _stderr);
            }
        }
    }

    /// <summary>
    /// Where qwbench.dll is: the repository's build of the same configuration (src/QueueWorker.Bench/bin/…, as the worker
    /// is found), else beside this process (a published layout).
    /// </summary>
    public static string? FindBenchDll(string baseDirectory)
    {
        var net = new DirectoryInfo(baseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = net.Parent?.Name;
        for (var dir = net; dir is not null && configuration is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "QueueWorker.sln")))
            {
                var dll = Path.Combine(dir.FullName, "src", "QueueWorker.Bench", "bin", configuration, net.Name, "qwbench.dll");
                if (File.Exists(dll))
                {
                    return dll;
                }

                break;
            }
        }

        var beside = Path.Combine(baseDirectory, "qwbench.dll");
        return File.Exists(beside) && File.Exists(Path.Combine(baseDirectory, "qwbench.runtimeconfig.json")) ? beside : null;
    }

    /// <summary>Starts the raw loop and waits until its model is loaded and warmed up.</summary>
    public static async Task<RawLoopProcess> StartAsync(string benchDll, RawLoopSettings settings, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var psi = WorkerProcess.StartInfo(benchDll, ["raw-loop", "--settings", JsonSerializer.Serialize(settings, RawLoopJsonContext.Default.RawLoopSettings)],
            new Dictionary<string, string>(), WorkerProcess.FreePort());
        psi.RedirectStandardInput = true;
        var raw = new RawLoopProcess(Process.Start(psi) ?? throw new InvalidOperationException($"could not start {psi.FileName} {benchDll} raw-loop"));
        try
        {
            // Anything else on stdout before it (a native library's banner) is skipped.
            while (await raw.ReadLineAsync(timeout, cancellationToken) != RawLoopCommand.Ready)
            {
            }

            return raw;
        }
        catch
        {
            await raw.DisposeAsync();
            throw;
        }
    }

    public async Task<RawLoopResult> RunAsync(RawLoopRequest request, TimeSpan timeout, CancellationToken cancellationToken)
    {
        await _process.StandardInput.WriteLineAsync(JsonSerializer.Serialize(request, RawLoopJsonContext.Default.RawLoopRequest).AsMemory(), cancellationToken);
        await _process.StandardInput.FlushAsync(cancellationToken);
        string line;
        while (!(line = await ReadLineAsync(timeout, cancellationToken)).StartsWith('{'))
        {
        }

        return JsonSerializer.Deserialize(line, RawLoopJsonContext.Default.RawLoopResult)
               ?? throw new InvalidOperationException("the raw loop answered null");
    }

    private async Task<string> ReadLineAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        string? line;
        try
        {
            line = await _process.StandardOutput.ReadLineAsync(cancellationToken).AsTask().WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"the raw loop did not answer within {timeout.TotalSeconds:F0} s:\n{ErrorTail}");
        }

        return line ?? throw new InvalidOperationException($"the raw loop exited (code {(_process.HasExited ? _process.ExitCode : -1)}):\n{ErrorTail}");
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            try
            {
                _process.StandardInput.Close();
            }
            catch (IOException)
            {
                // Gone already.
            }

            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await _process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
            }
        }

        _process.Dispose();
    }
}
