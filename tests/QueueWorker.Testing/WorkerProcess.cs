using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using System.Text;

namespace QueueWorker.Testing;

/// <summary>
/// The real worker binary (src/QueueWorker, built beside the tests) as a child process, configured through environment
/// variables as an operator would: the shared broker and stories260K unless the settings say otherwise, an HTTP port
/// of its own on the loopback. Its stdout and stderr are kept for the test's messages.
/// </summary>
public sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private WorkerProcess(Process process, int httpPort)
    {
        _process = process;
        HttpPort = httpPort;
        Pid = process.Id;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public int HttpPort { get; }

    /// <summary>Kept after exit and disposal, for logs.</summary>
    public int Pid { get; }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>Everything the worker wrote so far, stdout and stderr interleaved.</summary>
    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    /// <summary>
    /// The last <paramref name="max"/> warnings and errors of the log, each with its message line (the console logger
    /// writes "warn: Category[id]" and the message below it): what a failed test's first lines should show.
    /// </summary>
    public string Problems(int max = 10)
    {
        var lines = Output.Split('\n');
        var problems = new List<string>();
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.StartsWith("warn:", StringComparison.Ordinal) || line.StartsWith("fail:", StringComparison.Ordinal)
                || line.StartsWith("crit:", StringComparison.Ordinal))
                problems.Add(line + (i + 1 < lines.Length ? " " + lines[i + 1].Trim() : ""));
        }
        return problems.Count == 0 ? "no warning or error logged" : string.Join("\n", problems.TakeLast(max));
    }

    /// <summary>Starts the worker; <paramref name="settings"/> are configuration keys (<c>RabbitMq:JobsQueue</c> …) and win over the defaults.</summary>
    public static WorkerProcess Start(IReadOnlyDictionary<string, string> settings)
    {
        var port = FreePort.Next();
        var psi = new ProcessStartInfo("dotnet", [TestSettings.WorkerDll])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = TestSettings.RepositoryRoot,
        };
        psi.Environment["RabbitMq__Uri"] = TestSettings.RabbitMqUri;
        if (!settings.ContainsKey("Model:Path"))
            psi.Environment["Model__Path"] = TestModels.Stories260K;
        psi.Environment["Http__Port"] = port.ToString(CultureInfo.InvariantCulture);
        psi.Environment["Http__BindAddress"] = "127.0.0.1";
        psi.Environment["Logging__LogLevel__Default"] = "Information";
        foreach (var (key, value) in settings)
            psi.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        return new WorkerProcess(Process.Start(psi)!, port);
    }

    /// <summary>Waits for <c>/readyz</c> to answer 200 (model loaded, broker connected, consumer running).</summary>
    public async Task WaitReadyAsync(TimeSpan? timeout = null)
    {
        var limit = timeout ?? Waits.WorkerReady;
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var until = DateTime.UtcNow + limit;
        var last = "no answer";
        while (DateTime.UtcNow < until)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"The worker exited with code {_process.ExitCode} before it was ready:\n{Output}");
            try
            {
                var response = await http.GetAsync(new Uri($"http://127.0.0.1:{HttpPort}/readyz"));
                if (response.StatusCode == HttpStatusCode.OK)
                    return;
                last = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException)
            {
                // Busy starting: ask again.
            }
            await Task.Delay(200);
        }
        throw new TimeoutException($"The worker was not ready within {limit.TotalSeconds:F0} s (last /readyz: {last}); its last warnings and errors:\n{Problems()}\nits whole log:\n{Output}");
    }

    /// <summary>The body of <paramref name="path"/> whatever the status (e.g. <c>/readyz</c> answers 503 with its reasons).</summary>
    public async Task<string> GetBodyAsync(string path)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{HttpPort}{path}"));
        return await response.Content.ReadAsStringAsync();
    }

    public async Task<string> GetAsync(string path)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        return await http.GetStringAsync(new Uri($"http://127.0.0.1:{HttpPort}{path}"));
    }

    /// <summary>A gauge or counter from <c>/metrics</c> (the first sample whose name and labels start with <paramref name="name"/>).</summary>
    public async Task<double> MetricAsync(string name)
    {
        var text = await GetAsync("/metrics");
        foreach (var line in text.Split('\n'))
        {
            if (!line.StartsWith(name, StringComparison.Ordinal) || line.Length <= name.Length || line[name.Length] is not (' ' or '{'))
                continue;
            return double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        }
        throw new InvalidOperationException($"Metric {name} not found in /metrics.");
    }

    /// <summary>Resident memory of the worker process in KiB (<c>VmRSS</c> of /proc/&lt;pid&gt;/status).</summary>
    public long ResidentKib()
    {
        foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        throw new InvalidOperationException($"No VmRSS in /proc/{_process.Id}/status.");
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);

    /// <summary>SIGTERM, as a container runtime sends on stop.</summary>
    public void Terminate() => SendSignal(_process.Id, 15);

    /// <summary>SIGKILL: a crash, no chance to clean up.</summary>
    public void Kill() => _process.Kill(entireProcessTree: true);

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    /// <summary>SIGTERM, then SIGKILL if the worker has not exited within <see cref="Waits.WorkerStop"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            Terminate();
            try
            {
                await WaitForExitAsync(Waits.WorkerStop);
            }
            catch (OperationCanceledException)
            {
                Kill();
                await _process.WaitForExitAsync();
            }
        }
        _process.Dispose();
    }
}
