using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace QueueWorker.IntegrationTests;

/// <summary>The real worker binary as a child process, configured through environment variables as an operator would.</summary>
public sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private WorkerProcess(Process process, int httpPort)
    {
        _process = process;
        HttpPort = httpPort;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public int HttpPort { get; }
    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    /// <summary>Starts the worker; <paramref name="settings"/> are configuration keys (<c>RabbitMq:JobsQueue</c> …).</summary>
    public static WorkerProcess Start(IReadOnlyDictionary<string, string> settings)
    {
        var port = FreePort();
        var psi = new ProcessStartInfo("dotnet", [TestEnvironment.WorkerDll])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = TestEnvironment.RepositoryRoot,
        };
        psi.Environment["RabbitMq__Uri"] = TestEnvironment.RabbitMqUri;
        psi.Environment["Model__Path"] = TestEnvironment.Stories260K;
        psi.Environment["Http__Port"] = port.ToString();
        psi.Environment["Http__BindAddress"] = "127.0.0.1";
        psi.Environment["Logging__LogLevel__Default"] = "Information";
        foreach (var (key, value) in settings) psi.Environment[key.Replace(":", "__")] = value;
        return new WorkerProcess(Process.Start(psi)!, port);
    }

    /// <summary>Waits for <c>/readyz</c> to answer 200 (model loaded, broker connected, consumer running).</summary>
    public async Task WaitReadyAsync(TimeSpan timeout)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var until = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < until)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"The worker exited with code {_process.ExitCode} before it was ready:\n{Output}");
            try
            {
                var response = await http.GetAsync($"http://127.0.0.1:{HttpPort}/readyz");
                if (response.StatusCode == HttpStatusCode.OK) return;
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            await Task.Delay(200);
        }
        throw new TimeoutException($"The worker was not ready within {timeout.TotalSeconds:F0} s:\n{Output}");
    }

    public async Task<string> GetAsync(string path)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        return await http.GetStringAsync($"http://127.0.0.1:{HttpPort}{path}");
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    /// <summary>SIGTERM, as a container runtime sends on stop.</summary>
    public void Terminate() => kill(_process.Id, 15);

    /// <summary>SIGKILL: a crash, no chance to clean up.</summary>
    public void Kill() => _process.Kill(entireProcessTree: true);

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            Terminate();
            try { await WaitForExitAsync(TimeSpan.FromSeconds(20)); }
            catch (OperationCanceledException) { Kill(); }
        }
        _process.Dispose();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
