using System.Globalization;

namespace QueueWorker.Inference;

/// <summary>What the machine grants this process: the inputs of <see cref="CpuBudget.Compute"/>.</summary>
/// <param name="ProcessorCount"><see cref="Environment.ProcessorCount"/>: .NET already applies the affinity mask (which
/// includes cgroup cpusets) and the cgroup CPU quota, rounded up, and honours <c>DOTNET_PROCESSOR_COUNT</c>.</param>
/// <param name="AffinityCount">CPUs in the affinity mask (<c>Cpus_allowed_list</c>), null when unknown.</param>
/// <param name="QuotaCpus">The cgroup CPU quota in CPUs (e.g. 1.5), null when there is none.</param>
/// <param name="QuotaSource">The file the quota came from, or why there is none.</param>
/// <param name="ProcessorCountOverride">The value of <c>DOTNET_PROCESSOR_COUNT</c> when set.</param>
public sealed record CpuFacts(int ProcessorCount, int? AffinityCount, double? QuotaCpus, string QuotaSource, string? ProcessorCountOverride = null)
{
    /// <summary>Reads the facts of the current process (Linux files; elsewhere only the processor count).</summary>
    public static CpuFacts Detect()
    {
        static string? Read(string path)
        {
            try { return File.Exists(path) ? File.ReadAllText(path) : null; }
            catch (IOException) { return null; }
            catch (UnauthorizedAccessException) { return null; }
        }

        var affinity = CgroupCpu.ParseAffinityCount(Read("/proc/self/status"));
        var (quota, source) = CgroupCpu.FindQuota(Read);
        return new CpuFacts(Environment.ProcessorCount, affinity, quota, source, Environment.GetEnvironmentVariable("DOTNET_PROCESSOR_COUNT"));
    }
}

/// <summary>
/// The threads llama.cpp runs with, and a human reason logged at startup and echoed in results.
/// <para>
/// Automatic threads are <see cref="Environment.ProcessorCount"/> less <c>Inference:ReserveCores</c>, at least 1.
/// A fractional cgroup quota is rounded <b>up</b>, as .NET does (quota 1.5 CPUs gives 2 threads): fewer threads than
/// the quota leave granted CPU time unused (1 thread can use at most 1.0 of 1.5), while the cost of 2 threads under 1.5 CPUs
/// is some throttling at the end of each quota period. Set <c>Inference:Threads</c> to override.
/// </para>
/// </summary>
public sealed record CpuBudget(int Threads, int BatchThreads, string Reason)
{
    public static CpuBudget Compute(InferenceOptions options, CpuFacts facts)
    {
        var available = Math.Max(1, facts.ProcessorCount);
        var why = DescribeAvailable(facts);

        string threadsWhy;
        int threads;
        if (options.Threads > 0)
        {
            threads = options.Threads;
            threadsWhy = $"Inference:Threads = {threads} (explicit); {why}"
                + (threads > available ? $"; note: {threads} threads exceed the {available} CPUs available (oversubscribed)" : "");
        }
        else
        {
            var reserve = options.ReserveCores;
            threads = Math.Max(1, available - reserve);
            threadsWhy = $"{why}, reserve {reserve}"
                + (available - reserve < 1 ? $" (Inference:ReserveCores = {reserve} leaves no CPU of {available}: using 1 thread)" : "")
                + $" -> {threads} thread{(threads == 1 ? "" : "s")}";
        }

        int batchThreads = options.BatchThreads > 0 ? options.BatchThreads : threads;
        var batchWhy = options.BatchThreads > 0
            ? $"; prompt threads Inference:BatchThreads = {batchThreads} (explicit)"
            : "; prompt threads = generation threads";
        return new CpuBudget(threads, batchThreads, threadsWhy + batchWhy);
    }

    private static string DescribeAvailable(CpuFacts f)
    {
        var parts = new List<string>();
        if (f.ProcessorCountOverride is not null) parts.Add($"DOTNET_PROCESSOR_COUNT = {f.ProcessorCountOverride}");
        parts.Add(f.AffinityCount is { } a ? $"affinity {a}" : "affinity unknown");
        parts.Add(f.QuotaCpus is { } q
            ? $"cgroup quota {q.ToString("0.##", CultureInfo.InvariantCulture)} CPUs from {f.QuotaSource}{(q != Math.Ceiling(q) ? ", rounded up" : "")}"
            : $"no cgroup quota ({f.QuotaSource})");
        var count = Math.Max(1, f.ProcessorCount);
        return $"{count} CPU{(count == 1 ? "" : "s")} available ({string.Join(", ", parts)})";
    }
}

/// <summary>Parsing of Linux CPU limits: pure functions over file contents, so tests need no cgroup.</summary>
public static class CgroupCpu
{
    /// <summary>cgroup v2 <c>cpu.max</c>: "<c>max 100000</c>" (no limit) or "<c>150000 100000</c>" (1.5 CPUs).</summary>
    public static double? ParseCpuMax(string? content)
    {
        var parts = (content ?? "").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0 || parts[0] == "max") return null;
        if (!long.TryParse(parts[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out var quota) || quota <= 0) return null;
        long period = 100_000;
        if (parts.Length > 1 && (!long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out period) || period <= 0)) return null;
        return (double)quota / period;
    }

    /// <summary>cgroup v1 <c>cpu.cfs_quota_us</c> (-1 = no limit) over <c>cpu.cfs_period_us</c>.</summary>
    public static double? ParseCfs(string? quotaContent, string? periodContent)
    {
        if (!long.TryParse(quotaContent?.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var quota) || quota <= 0) return null;
        if (!long.TryParse(periodContent?.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var period) || period <= 0) return null;
        return (double)quota / period;
    }

    /// <summary>Counts a CPU list such as <c>0-3,6,8-9</c> (7 CPUs); null when it cannot be parsed.</summary>
    public static int? ParseCpuList(string? list)
    {
        if (string.IsNullOrWhiteSpace(list)) return null;
        var count = 0;
        foreach (var part in list.Trim().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var dash = part.IndexOf('-');
            if (dash < 0)
            {
                if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out _)) return null;
                count++;
            }
            else
            {
                if (!int.TryParse(part[..dash], NumberStyles.Integer, CultureInfo.InvariantCulture, out var lo)
                    || !int.TryParse(part[(dash + 1)..], NumberStyles.Integer, CultureInfo.InvariantCulture, out var hi)
                    || hi < lo) return null;
                count += hi - lo + 1;
            }
        }
        return count;
    }

    /// <summary>The affinity mask's CPU count from <c>/proc/self/status</c> (<c>Cpus_allowed_list:</c>).</summary>
    public static int? ParseAffinityCount(string? procSelfStatus)
    {
        foreach (var line in (procSelfStatus ?? "").Split('\n'))
        {
            if (line.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))
                return ParseCpuList(line["Cpus_allowed_list:".Length..]);
        }
        return null;
    }

    /// <summary>A cgroup mount from <c>/proc/self/mountinfo</c>: its root inside the hierarchy and where it is mounted.</summary>
    public sealed record CgroupMount(int Version, string Root, string MountPoint);

    /// <summary>
    /// The cgroup v2 mount and the v1 mount carrying the <c>cpu</c> controller, from <c>/proc/self/mountinfo</c>
    /// lines like <c>35 24 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw</c>.
    /// </summary>
    public static (CgroupMount? V2, CgroupMount? V1Cpu) ParseMountInfo(string? mountInfo)
    {
        CgroupMount? v2 = null, v1 = null;
        foreach (var line in (mountInfo ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var sep = line.IndexOf(" - ", StringComparison.Ordinal);
            if (sep < 0) continue;
            var left = line[..sep].Split(' ');
            var right = line[(sep + 3)..].Split(' ');
            if (left.Length < 5 || right.Length < 1) continue;
            var root = Unescape(left[3]);
            var mountPoint = Unescape(left[4]);
            if (right[0] == "cgroup2") v2 ??= new CgroupMount(2, root, mountPoint);
            else if (right[0] == "cgroup" && right.Length >= 3 && right[2].Split(',').Contains("cpu")) v1 ??= new CgroupMount(1, root, mountPoint);
        }
        return (v2, v1);
    }

    /// <summary>The process's cgroup paths from <c>/proc/self/cgroup</c> (<c>0::/path</c> for v2, <c>N:cpu,cpuacct:/path</c> for v1).</summary>
    public static (string? V2Path, string? V1CpuPath) ParseProcCgroup(string? content)
    {
        string? v2 = null, v1 = null;
        foreach (var line in (content ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(':', 3);
            if (parts.Length < 3) continue;
            if (parts[0] == "0" && parts[1].Length == 0) v2 = parts[2].Trim();
            else if (parts[1].Split(',').Contains("cpu")) v1 = parts[2].Trim();
        }
        return (v2, v1);
    }

    /// <summary>
    /// The tightest CPU quota over the process's cgroup and its ancestors (a parent's limit applies to its children),
    /// read through <paramref name="readFile"/> (returns null for a missing file). v2 first, then v1.
    /// </summary>
    public static (double? Cpus, string Source) FindQuota(Func<string, string?> readFile)
    {
        var (v2Mount, v1Mount) = ParseMountInfo(readFile("/proc/self/mountinfo"));
        var (v2Path, v1Path) = ParseProcCgroup(readFile("/proc/self/cgroup"));

        if (v2Mount is not null && v2Path is not null)
        {
            var found = Walk(v2Mount, v2Path, dir => ParseCpuMax(readFile(dir + "/cpu.max")), "cpu.max");
            if (found.Cpus is not null) return found;
        }
        if (v1Mount is not null && v1Path is not null)
        {
            var found = Walk(v1Mount, v1Path,
                dir => ParseCfs(readFile(dir + "/cpu.cfs_quota_us"), readFile(dir + "/cpu.cfs_period_us")), "cpu.cfs_quota_us");
            if (found.Cpus is not null) return found;
        }
        var seen = (v2Mount, v1Mount) switch
        {
            (null, null) => "no cgroup mount found",
            (not null, null) => "cgroup v2 cpu.max is max",
            (null, not null) => "cgroup v1 cpu.cfs_quota_us is -1",
            _ => "cgroup v2 cpu.max is max, v1 cpu.cfs_quota_us is -1",
        };
        return (null, seen);
    }

    private static (double? Cpus, string Source) Walk(CgroupMount mount, string cgroupPath, Func<string, double?> read, string file)
    {
        // Inside a container the cgroup namespace root is the mount root; elsewhere the path is relative to it.
        var relative = cgroupPath;
        if (mount.Root != "/" && relative.StartsWith(mount.Root, StringComparison.Ordinal)) relative = relative[mount.Root.Length..];
        var dir = (mount.MountPoint.TrimEnd('/') + "/" + relative.Trim('/')).TrimEnd('/');
        var top = mount.MountPoint.TrimEnd('/');
        double? best = null;
        string source = "";
        while (true)
        {
            if (read(dir) is { } cpus && (best is null || cpus < best))
            {
                best = cpus;
                source = $"{dir}/{file}";
            }
            if (dir.Length <= top.Length) break;
            var slash = dir.LastIndexOf('/');
            if (slash < top.Length) break;
            dir = dir[..slash];
        }
        return (best, source);
    }

    // mountinfo escapes spaces and a few other characters as \040 etc.
    private static string Unescape(string s) => s.Contains('\\', StringComparison.Ordinal)
        ? System.Text.RegularExpressions.Regex.Replace(s, @"\\([0-7]{3})", m => ((char)Convert.ToInt32(m.Groups[1].Value, 8)).ToString())
        : s;
}
