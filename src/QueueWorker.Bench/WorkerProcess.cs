using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using QueueWorker.Contracts;

namespace QueueWorker.Bench;

/// <summary>
/// The real worker binary (<c>dotnet QueueWorker.dll</c>) as a child process, configured through environment
/// variables as an operator would (<c>RabbitMq__JobsQueue</c>, <c>Inference__Slots</c>, …). Its output is read
/// continuously (a full pipe would stall it) and the last lines are kept for error messages.
/// </summary>
public sealed class WorkerProcess : IAsyncDisposable
{
    private const int KeepLines = 200;
    private readonly Process _process;
    private readonly Queue<string> _tail = new();

    private WorkerProcess(Process process, int httpPort, string name)
    {
        _process = process;
        HttpPort = httpPort;
        Name = name;
        process.OutputDataReceived += (_, e) => Keep(e.Data);
        process.ErrorDataReceived += (_, e) => Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Name { get; }
    public int HttpPort { get; }
    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;

    /// <summary>The last lines the worker wrote (stdout and stderr).</summary>
    public string OutputTail
    {
        get
        {
            lock (_tail)
            {
                return string.Join('\n', _tail);
            }
        }
    }

    /// <summary>
    /// Where the worker binary is: beside the repository's build of qwbench (<c>src/QueueWorker/bin/&lt;configuration&gt;/net10.0/</c>,
    /// the configuration qwbench itself was built in), as the integration tests find it. Null when not found.
    /// </summary>
    public static string? FindWorkerDll(string baseDirectory)
    {
        var net = new DirectoryInfo(baseDirectory.TrimEnd(Path.DirectorySeparatorChar)); // …/bin/<configuration>/net10.0
        var configuration = net.Parent?.Name;
        for (var dir = net; dir is not null && configuration is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "QueueWorker.sln")))
            {
                var dll = Path.Combine(dir.FullName, "src", "QueueWorker", "bin", configuration, net.Name, "QueueWorker.dll");
                return File.Exists(dll) ? dll : null;
            }
        }

        // A published layout: the worker beside qwbench.
        var beside = Path.Combine(baseDirectory, "QueueWorker.dll");
        return File.Exists(beside) ? beside : null;
    }

    /// <summary>
    /// What every benchmark's worker is given: the broker and its queues, the model, and the same threads for prompt and
    /// generation. Configuration keys (case-insensitive, as .NET configuration reads them); each bench adds its own.
    /// </summary>
    public static Dictionary<string, string> Settings(string brokerUri, WorkerQueues queues, string model, int threads)
    {
        var perPhase = threads.ToString(CultureInfo.InvariantCulture);
        return new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
        {
            ["RabbitMq:Uri"] = brokerUri,
            ["RabbitMq:JobsQueue"] = queues.Jobs,
            ["RabbitMq:ResultsQueue"] = queues.Results,
            ["Model:Path"] = model,
            ["Inference:Threads"] = perPhase,
            ["Inference:BatchThreads"] = perPhase,
        };
    }

    /// <summary>Starts the worker; <paramref name="settings"/> are configuration keys (<c>RabbitMq:JobsQueue</c> …).</summary>
    public static WorkerProcess Start(string workerDll, string name, IReadOnlyDictionary<string, string> settings)
    {
        var port = FreePort();
        var psi = StartInfo(workerDll, [], settings, port);
        return new WorkerProcess(Process.Start(psi) ?? throw new InvalidOperationException($"could not start {psi.FileName} {workerDll}"), port, name);
    }

    /// <summary>
    /// How a benchmark child process is started: <c>dotnet DLL ARGS</c> in the DLL's folder, the caller's own worker
    /// settings removed from the environment, <paramref name="settings"/> as environment variables. The worker and the
    /// overhead section's raw loop (<see cref="RawLoopProcess"/>) start the same way, so neither gets a different runtime setup.
    /// </summary>
    internal static ProcessStartInfo StartInfo(string dll, IEnumerable<string> args, IReadOnlyDictionary<string, string> settings, int port)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        var psi = new ProcessStartInfo(dotnet, [dll, .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        // The worker's configuration is appsettings.json beside it plus exactly these settings: none of the
        // caller's own RabbitMq__/Model__/Inference__/Http__ variables leak into a measurement.
        foreach (var key in psi.Environment.Keys.Where(IsWorkerSetting).ToList())
        {
            psi.Environment.Remove(key);
        }

        psi.Environment["Http__Port"] = port.ToString(CultureInfo.InvariantCulture);
        psi.Environment["Http__BindAddress"] = "127.0.0.1";
        // One log line per job is noise here; warnings and errors still show in OutputTail.
        psi.Environment["Logging__LogLevel__Default"] = "Warning";
        psi.Environment["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Warning";
        foreach (var (key, value) in settings)
        {
            psi.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        return psi;
    }

    private static bool IsWorkerSetting(string variable) =>
        new[] { "RabbitMq__", "Model__", "Inference__", "Http__", "Logging__" }.Any(p => variable.StartsWith(p, StringComparison.OrdinalIgnoreCase));

    /// <summary>Waits for <c>/readyz</c> to answer 200 (model loaded, broker connected, consumer running).</summary>
    public async Task WaitReadyAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"worker '{Name}' exited with code {_process.ExitCode} before it was ready:\n{OutputTail}");
            }

            try
            {
                using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{HttpPort}/readyz"), cancellationToken);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // The request timed out: the machine is busy.
            }

            await Task.Delay(200, cancellationToken);
        }

        throw new TimeoutException($"worker '{Name}' was not ready within {timeout.TotalSeconds:F0} s:\n{OutputTail}");
    }

    /// <summary>Resident memory of the worker process now, from /proc/&lt;pid&gt;/status (VmRSS and its anonymous part).</summary>
    public ProcessMemory.Rss ReadRss()
    {
        if (_process.HasExited)
        {
            throw new InvalidOperationException($"worker '{Name}' has exited (code {_process.ExitCode}):\n{OutputTail}");
        }

        return ProcessMemory.Read($"/proc/{_process.Id}/status")
            ?? throw new PlatformNotSupportedException($"/proc/{_process.Id}/status is not readable: the memory measurement needs Linux");
    }

    /// <summary>
    /// Every result of <paramref name="waits"/>, each <c>completed</c>; a timeout names how many arrived and shows the
    /// worker's last output (or why it exited), a failed job its error.
    /// </summary>
    public async Task<ArrivedResult[]> WaitCompletedAsync(IReadOnlyList<Task<ArrivedResult>> waits, TimeSpan timeout, CancellationToken ct)
    {
        ArrivedResult[] done;
        try
        {
            done = await Task.WhenAll(waits).WaitAsync(timeout, ct);
        }
        catch (TimeoutException)
        {
            ThrowIfExited();
            throw new TimeoutException($"worker '{Name}': {waits.Count(t => t.IsCompletedSuccessfully)} of {waits.Count} results arrived within {timeout.TotalSeconds:F0} s. Its last output:\n{OutputTail}");
        }

        if (done.FirstOrDefault(r => r.Result.Status != JobStatus.Completed) is { } failed)
        {
            throw new InvalidOperationException($"worker '{Name}': job {failed.Result.Id} failed: {failed.Result.Error?.Code}: {failed.Result.Error?.Message}");
        }

        return done;
    }

    public void ThrowIfExited()
    {
        if (_process.HasExited)
        {
            throw new InvalidOperationException($"worker '{Name}' exited with code {_process.ExitCode}:\n{OutputTail}");
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    /// <summary>SIGTERM (a graceful stop, as a container runtime does), then SIGKILL if it does not end in time.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _ = kill(_process.Id, 15);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
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

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_tail)
        {
            _tail.Enqueue(line);
            while (_tail.Count > KeepLines)
            {
                _tail.Dequeue();
            }
        }
    }

    // Ports handed out by this process: the kernel may give a just-released port again, so two workers started
    // back to back (the bench starts a pair) could be told the same one (seen in CI: "address already in use").
    private static readonly HashSet<int> Given = [];

    internal static int FreePort()
    {
        lock (Given)
        {
            while (true)
            {
                using var listener = new TcpListener(IPAddress.Loopback, 0);
                listener.Start();
                var port = ((IPEndPoint)listener.LocalEndpoint).Port;
                if (Given.Add(port)) return port;
            }
        }
    }
}
