using System.Globalization;
using System.Runtime.InteropServices;

namespace QueueWorker.Bench;

/// <summary>The machine a benchmark ran on: numbers only compare within one machine (and one run).</summary>
public sealed record MachineInfo(
    string CpuModel,
    int LogicalCpus,
    int? PhysicalCores,
    int ProcessCpus,
    double MemoryGib,
    IReadOnlyList<string> InstructionSets,
    string Os,
    string Runtime,
    string LoadAverageAtStart)
{
    // The flags that decide which llama.cpp kernels can run.
    private static readonly string[] InterestingFlags =
    [
        "sse3", "ssse3", "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
        "avx512dq", "avx512cd", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx512vbmi", "amx_tile", "amx_int8", "amx_bf16",
        "asimd", "sve", "i8mm", "dotprod",
    ];

    public static MachineInfo Collect()
    {
        var cpuinfo = ReadOrEmpty("/proc/cpuinfo");
        string? model = null;
        HashSet<string> flags = [];
        var physical = new HashSet<(string, string)>();
        string physicalId = "0";
        foreach (var line in cpuinfo.Split('\n'))
        {
            var colon = line.IndexOf(':');
            if (colon < 0)
            {
                continue;
            }

            var key = line[..colon].Trim();
            var value = line[(colon + 1)..].Trim();
            switch (key)
            {
                case "model name" or "Model" when model is null:
                    model = value;
                    break;
                case "flags" or "Features" when flags.Count == 0:
                    flags = value.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
                    break;
                case "physical id":
                    physicalId = value;
                    break;
                case "core id":
                    physical.Add((physicalId, value));
                    break;
            }
        }

        var memKb = ReadOrEmpty("/proc/meminfo").Split('\n')
            .Where(l => l.StartsWith("MemTotal:", StringComparison.Ordinal))
            .Select(l => double.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture))
            .FirstOrDefault();

        return new MachineInfo(
            model ?? RuntimeInformation.ProcessArchitecture.ToString(),
            Environment.ProcessorCount,
            physical.Count > 0 ? physical.Count : null,
            Environment.ProcessorCount,
            Math.Round(memKb / 1048576.0, 1),
            InterestingFlags.Where(flags.Contains).ToList(),
            RuntimeInformation.OSDescription,
            RuntimeInformation.FrameworkDescription,
            LoadAverage());
    }

    /// <summary>/proc/loadavg's 1, 5 and 15 minute figures: how busy the machine was (a noisy run shows here).</summary>
    public static string LoadAverage()
    {
        var parts = ReadOrEmpty("/proc/loadavg").Split(' ');
        return parts.Length >= 3 ? string.Join(' ', parts.Take(3)) : "unknown";
    }

    private static string ReadOrEmpty(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllText(path) : "";
        }
        catch (IOException)
        {
            return "";
        }
    }
}

/// <summary>What the CPU backend actually is: the seed assumed "default BLAS (likely OpenBLAS)".</summary>
public sealed record BackendInfo(
    string LlamaSharpVersion,
    string NativeVariant,
    string SystemInfo,
    IReadOnlyList<string> NativeLibraries,
    bool BlasLoaded,
    string Summary)
{
    public static BackendInfo Collect()
    {
        var files = LlamaNative.LoadedLibraryFiles();
        var blas = files.Any(f => Path.GetFileName(f) is var n && (n.Contains("blas", StringComparison.OrdinalIgnoreCase) || n.Contains("mkl", StringComparison.OrdinalIgnoreCase)));
        var variant = LlamaNative.LoadedVariant();
        var system = LlamaNative.SystemInfo();
        var assembly = typeof(LLama.LLamaWeights).Assembly;
        var version = (assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false).FirstOrDefault()
            as System.Reflection.AssemblyInformationalVersionAttribute)?.InformationalVersion.Split('+')[0] ?? "unknown";
        var dir = files.Select(Path.GetDirectoryName).FirstOrDefault(d => d is not null);
        var summary = blas
            ? $"a BLAS library is loaded ({string.Join(", ", files.Where(f => f.Contains("blas", StringComparison.OrdinalIgnoreCase)))})"
            : $"no BLAS: llama.cpp's own ggml-cpu kernels ({Path.GetFileName(dir) ?? variant} build) do every matrix product, " +
              "on the quantized blocks directly; the CPU package ships no BLAS backend for Linux";
        return new BackendInfo(version, variant, system, files, blas, summary);
    }
}

/// <summary>This process's resident memory, from /proc/self/status.</summary>
public static class ProcessMemory
{
    /// <summary>
    /// Major page faults of this process so far (<c>/proc/self/stat</c> field 12), or null off Linux: a memory-mapped
    /// model whose pages were reclaimed reads them back from the file inside decode steps, one major fault each.
    /// </summary>
    public static long? MajorFaults()
    {
        try
        {
            var stat = File.ReadAllText("/proc/self/stat");
            // Fields after the command name, which is in parentheses and may contain spaces: state is field 3.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return long.Parse(fields[12 - 3], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    public sealed record Rss(double TotalMb, double AnonMb, double FileMb);

    public static Rss Read()
    {
        if (Read("/proc/self/status") is { } rss)
        {
            return rss;
        }

        var ws = Environment.WorkingSet / 1048576.0;
        return new Rss(ws, ws, 0);
    }

    /// <summary>Reads a /proc/&lt;pid&gt;/status file (any process); null when there is none.</summary>
    public static Rss? Read(string status)
    {
        double total = 0, anon = 0, file = 0;
        if (!File.Exists(status))
        {
            return null;
        }

        foreach (var line in File.ReadLines(status))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                total = Kb(line);
            }
            else if (line.StartsWith("RssAnon:", StringComparison.Ordinal))
            {
                anon = Kb(line);
            }
            else if (line.StartsWith("RssFile:", StringComparison.Ordinal))
            {
                file = Kb(line);
            }
        }

        return new Rss(total, anon, file);

        static double Kb(string line) =>
            double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
    }
}
