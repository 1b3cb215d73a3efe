using System.Runtime.InteropServices;

namespace QueueWorker.Bench;

/// <summary>
/// Drops one file's pages from the OS page cache (posix_fadvise DONTNEED), so a load is measured "cold"
/// as after a reboot or a fresh download, without touching the rest of the machine's cache.
/// </summary>
internal static class PageCache
{
    private const int PosixFadvDontNeed = 4;

    /// <summary>Returns false where this is not possible (not Linux, or the call failed).</summary>
    public static bool TryEvict(string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        var fd = (int)handle.DangerousGetHandle();
        return PosixFadvise(fd, 0, 0, PosixFadvDontNeed) == 0;
    }

    [DllImport("libc", EntryPoint = "posix_fadvise")]
    private static extern int PosixFadvise(int fd, long offset, long length, int advice);
}

/// <summary>Competing CPU load: busy-loop child processes, as another program on the same machine would be.</summary>
internal sealed class CpuLoad : IDisposable
{
    private readonly List<System.Diagnostics.Process> _processes = [];

    private CpuLoad(int processes)
    {
        for (var i = 0; i < processes; i++)
        {
            // Pure shell arithmetic burns one CPU; every 100k rounds it checks that qwbench still runs, so a killed
            // bench never leaves a busy loop behind.
            var script = $"while kill -0 {Environment.ProcessId} 2>/dev/null; do i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; done";
            var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("/bin/sh", ["-c", script])
            {
                UseShellExecute = false,
            }) ?? throw new InvalidOperationException("could not start a /bin/sh busy loop for the competing load");
            _processes.Add(p);
        }
    }

    public int Processes => _processes.Count;

    /// <summary>Starts the load and gives the scheduler a moment to spread it before measuring.</summary>
    public static async Task<CpuLoad> StartAsync(int processes, CancellationToken cancellationToken)
    {
        var load = new CpuLoad(processes);
        await Task.Delay(300, cancellationToken);
        return load;
    }

    public void Dispose()
    {
        foreach (var p in _processes)
        {
            try
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }

            p.Dispose();
        }

        _processes.Clear();
    }
}
