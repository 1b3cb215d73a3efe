using System.Text.Json.Serialization;

namespace QueueWorker.Bench;

/// <summary>What was measured and how (written into results.json and results.md).</summary>
public sealed record BenchPlan(
    bool Quick,
    int Warmup,
    int Repetitions,
    JobShape Job,
    int AllThreads,
    int ContextSize,
    IReadOnlyList<string> Sections,
    IReadOnlyList<string> Quants,
    IReadOnlyList<int> BatchJobs,
    int CompetingLoadProcesses,
    bool Mmap = true,
    int MmapIdleSeconds = 0);

public sealed record ModelInfo(string Path, string Source, long FileBytes, ulong Parameters, string Quant);

public sealed record ConfigResult(string Name, IReadOnlyDictionary<string, Stat> Metrics, IReadOnlyDictionary<string, string> Details);

public sealed record SectionResult(string Id, string Title, string Method, IReadOnlyList<ConfigResult> Configs, IReadOnlyList<string> Notes)
{
    public ConfigResult? Config(string name) => Configs.FirstOrDefault(c => c.Name == name);
}

/// <summary>One of the seed's predictions against this run's measurement.</summary>
public sealed record ClaimVerdict(
    string Id,
    string Claim,
    string Prediction,
    string Measured,
    string Verdict,
    double? PredictedLowPct,
    double? PredictedHighPct,
    double? MeasuredPct);

public sealed record BenchReport(
    string Tool,
    DateTimeOffset StartedAt,
    double DurationSeconds,
    string CommandLine,
    MachineInfo Machine,
    string LoadAverageAtEnd,
    BackendInfo Backend,
    ModelInfo Model,
    BenchPlan Plan,
    IReadOnlyList<SectionResult> Sections,
    IReadOnlyList<ClaimVerdict> Claims,
    IReadOnlyList<string> Recommendations)
{
    /// <summary>The worker's speed targets, when the worker section ran.</summary>
    public IReadOnlyList<TargetResult> Targets { get; init; } = [];

    /// <summary>How the worker section ran (null when it did not).</summary>
    public WorkerBenchPlan? Worker { get; init; }

    /// <summary>Issue 14's figures judged against its targets, when the scheduling section ran.</summary>
    public IReadOnlyList<TargetResult> SchedulingTargets { get; init; } = [];

    /// <summary>How the scheduling section ran (null when it did not).</summary>
    public SchedulingBenchPlan? Scheduling { get; init; }
    /// <summary>How the overhead section ran (null when it did not).</summary>
    public OverheadBenchPlan? Overhead { get; init; }
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(BenchReport))]
internal sealed partial class BenchJsonContext : JsonSerializerContext;
