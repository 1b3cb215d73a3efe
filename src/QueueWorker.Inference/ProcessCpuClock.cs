using System.Runtime.InteropServices;

namespace QueueWorker.Inference;

/// <summary>
/// CPU time used so far by every thread of this process (<c>clock_gettime(CLOCK_PROCESS_CPUTIME_ID)</c>: nanosecond
/// resolution, one cheap call). <see cref="System.Diagnostics.Process.TotalProcessorTime"/> counts in 10 ms ticks on
/// Linux, coarser than a decode step. Null where the clock is not available (not Linux): callers fall back to wall × threads.
/// </summary>
internal static partial class ProcessCpuClock
{
    private const int ClockProcessCpuTimeId = 2;

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int ClockGetTime(int clockId, out TimeSpec time);

    private static readonly bool Available = OperatingSystem.IsLinux() && Probe();

    private static bool Probe()
    {
        try
        {
            return ClockGetTime(ClockProcessCpuTimeId, out _) == 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    /// <summary>The process's CPU time in milliseconds, or null when it cannot be read.</summary>
    public static double? NowMs()
    {
        if (!Available || ClockGetTime(ClockProcessCpuTimeId, out var t) != 0) return null;
        return t.Seconds * 1000.0 + t.Nanoseconds / 1_000_000.0;
    }
}
