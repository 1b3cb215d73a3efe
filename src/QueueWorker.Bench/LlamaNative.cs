using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using LLama.Native;

namespace QueueWorker.Bench;

/// <summary>
/// One-time LLamaSharp native setup for qwbench: llama.cpp's log is kept in a small ring (shown when something
/// fails, or streamed with --verbose) instead of flooding the terminal, and the native library is loaded.
/// </summary>
internal static class LlamaNative
{
    private const int KeepLines = 200;
    private static readonly ConcurrentQueue<string> Recent = new();
    private static int _configured;
    private static volatile bool _verbose;

    public static void Configure(bool verbose)
    {
        _verbose |= verbose;
        if (Interlocked.Exchange(ref _configured, 1) == 1)
        {
            return;
        }

        NativeLibraryConfig.All.WithLogCallback(OnLog);

        // Loads the native library now: LLamaQuantizer alone would not (FACTS.md).
        NativeApi.llama_empty_call();
    }

    /// <summary>
    /// Takes llama.cpp's log back after something else set its own callback (the worker's engine routes it to its
    /// ILogger when it starts; the callback is process-wide).
    /// </summary>
    public static void ReclaimLog()
    {
        if (Volatile.Read(ref _configured) == 1)
        {
            NativeLogConfig.llama_log_set(OnLog);
        }
    }

    private static void OnLog(LLamaLogLevel level, string message)
    {
        Recent.Enqueue($"{level}: {message.TrimEnd()}");
        while (Recent.Count > KeepLines && Recent.TryDequeue(out _))
        {
        }

        if (_verbose || level == LLamaLogLevel.Error)
        {
            Console.Error.Write(message);
        }
    }

    /// <summary>The last llama.cpp log lines, oldest first.</summary>
    public static IReadOnlyList<string> RecentLog() => Recent.ToArray();

    /// <summary>llama.cpp's own feature report (e.g. "CPU : SSE3 = 1 | AVX512 = 1 | ...").</summary>
    public static string SystemInfo() => NativeApi.llama_print_system_info() is var p && p != IntPtr.Zero
        ? (Marshal.PtrToStringUTF8(p) ?? "").Trim()
        : "";

    /// <summary>Which of LLamaSharp's native builds was loaded (its AVX level), as LLamaSharp reports it.</summary>
    public static string LoadedVariant()
    {
        var lib = NativeApi.GetLoadedNativeLibrary(NativeLibraryName.LLama);
        return lib?.Metadata?.ToString() ?? "unknown";
    }

    /// <summary>Paths of the llama/ggml shared objects mapped into this process (Linux).</summary>
    public static IReadOnlyList<string> LoadedLibraryFiles()
    {
        const string maps = "/proc/self/maps";
        if (!File.Exists(maps))
        {
            return [];
        }

        return File.ReadLines(maps)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(p => p.Length >= 6)
            .Select(p => string.Join(' ', p.Skip(5)))
            .Where(f => Path.GetFileName(f) is var n && (n.StartsWith("libllama", StringComparison.Ordinal) || n.StartsWith("libggml", StringComparison.Ordinal)
                || n.Contains("blas", StringComparison.OrdinalIgnoreCase) || n.Contains("mkl", StringComparison.OrdinalIgnoreCase)))
            .Distinct()
            .ToList();
    }
}
