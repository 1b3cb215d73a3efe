using System.Globalization;
using System.Text;
using System.Text.Json;

namespace QueueWorker.Bench;

/// <summary>Writes results.md (the seed's prediction | measured | verdict table and every section) and results.json.</summary>
public static class ReportWriter
{
    public const string MarkdownFile = "results.md";
    public const string JsonFile = "results.json";
    public const string ChartFile = "chart.png";

    public static async Task WriteAsync(BenchReport report, string dir, bool chartWritten, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(dir);
        await File.WriteAllTextAsync(Path.Combine(dir, MarkdownFile), Markdown(report, chartWritten), cancellationToken);
        await using var json = File.Create(Path.Combine(dir, JsonFile));
        await JsonSerializer.SerializeAsync(json, report, BenchJsonContext.Default.BenchReport, cancellationToken);
    }

    public static string Markdown(BenchReport r, bool chartWritten)
    {
        var inv = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        void L(string line = "") => md.Append(line).Append('\n');

        var seedSections = r.Sections.Any(s => !s.Id.StartsWith(BenchRunner.Worker, StringComparison.Ordinal)
                                               && !s.Id.StartsWith(BenchRunner.Scheduling, StringComparison.Ordinal)) || r.Claims.Count > 0;
        var workerSections = r.Sections.Any(s => s.Id.StartsWith(BenchRunner.Worker, StringComparison.Ordinal));
        // The title names the tool that made the report (older reports say qw bench, its name before qwbench).
        L(seedSections ? $"# {r.Tool}: the seed's CPU optimization claims, measured"
            : workerSections || r.Scheduling is null ? $"# {r.Tool}: the worker's throughput targets, measured"
            : $"# {r.Tool}: scheduling (lanes, fair share between tenants), measured");
        L();
        L(string.Create(inv, $"Run {r.StartedAt:yyyy-MM-dd HH:mm} UTC, {r.DurationSeconds / 60:F1} min: `{r.CommandLine}`"));
        L();
        var m = r.Machine;
        L($"- **Machine**: {m.CpuModel}; {m.ProcessCpus} CPUs for this process ({m.LogicalCpus} logical" +
          (m.PhysicalCores is { } pc ? $", {pc} physical cores" : "") + string.Create(inv, $"); {m.MemoryGib:F1} GiB; {m.Os}; {m.Runtime}"));
        L($"- **Instruction sets**: {string.Join(' ', m.InstructionSets)}");
        L($"- **Load average** (1/5/15 min) at start: {m.LoadAverageAtStart}; at end: {r.LoadAverageAtEnd} (a busy machine makes every number noisier)");
        L($"- **Backend**: LLamaSharp {r.Backend.LlamaSharpVersion}, native build `{r.Backend.NativeVariant}`; {r.Backend.Summary}");
        if (!string.IsNullOrEmpty(r.Backend.SystemInfo))
        {
            L($"- **llama_print_system_info**: `{r.Backend.SystemInfo}`");
        }

        if (r.Backend.NativeLibraries.Count > 0)
        {
            L($"- **Native libraries loaded**: {string.Join(", ", r.Backend.NativeLibraries.Select(f => $"`{f}`"))}");
        }

        L(string.Create(inv, $"- **Model**: {r.Model.Source} — `{r.Model.Path}`, {r.Model.Parameters:N0} parameters, {r.Model.Quant}, {r.Model.FileBytes / 1048576.0:F0} MiB"));
        var p = r.Plan;
        if (seedSections)
        {
            L($"- **Method**: jobs of {p.Job.PromptTokens} prompt + {p.Job.GenTokens} generated tokens (greedy); {p.Warmup} warm-up run(s) per configuration, " +
              $"then {p.Repetitions} repetitions round-robin over the configurations of a comparison (all in this one run); **median [min–max]**." +
              (p.Quick ? " Quick mode: fewer and shorter runs." : ""));
        }

        if (r.Worker is { } w)
        {
            L($"- **Worker benchmark**: the worker binary `{w.WorkerDll}` started per configuration on temporary queues of {w.BrokerUri}, {w.Threads} threads; " +
              $"{w.Warmup} warm-up round(s), then {w.Repetitions} rounds of (a)–(c) with the order rotated each round; each ratio is taken within a round, " +
              "then **median [min–max]** over the rounds; a target passes when the median meets it." + (p.Quick ? " Quick mode: fewer rounds." : ""));
        }

        if (r.Scheduling is { } sp)
        {
            L($"- **Scheduling benchmark**: the worker binary `{sp.WorkerDll}` started per configuration (lanes, single queue, fair share) on temporary queues of " +
              $"{sp.BrokerUri}, model `{sp.Model}`, Inference:Slots = {sp.Slots}, {sp.Threads} threads; {sp.Warmup} warm-up round(s), then {sp.Repetitions} rounds " +
              "over every configuration with the order rotated each round; each ratio is taken within a round, then **median [min–max]** over the rounds.");
        }

        if (r.Overhead is { } o)
        {
            L($"- **Overhead benchmark**: the worker binary `{o.WorkerDll}` and `qwbench raw-loop` (the baseline), both started as `dotnet DLL` the same way, " +
              $"on {Path.GetFileName(o.Model)}, {o.Threads} threads, {o.Slots} slots; {o.Warmup} warm-up round(s), then {o.Repetitions} rounds with the order " +
              "rotated each round; each ratio is taken within a round, then **median [min–max]** over the rounds.");
        }

        L();
        if (r.Targets.Count > 0)
        {
            L("## Speed targets (the worker, end to end)");
            L();
            L("| # | Target | Threshold | Measured | Result | Behind it |");
            L("|---|---|---|---|---|---|");
            var t = 1;
            foreach (var target in r.Targets)
            {
                var threshold = string.Create(inv, $"{(target.Comparison == ">=" ? "≥" : "≤")} {target.Threshold:0.##} {target.Unit}");
                var measured = target.Measured is { } st ? FormatPrecise(st) + " " + target.Unit : "—";
                L($"| {t++} | {Cell(target.Target)} | {threshold} | {measured} | **{target.Verdict}** | {Cell(target.Detail)} |");
            }

            L();
        }

        if (r.SchedulingTargets.Count > 0)
        {
            L("## Issue 14's scheduling figures (lanes, fair share)");
            L();
            L("| # | Target | Threshold | Measured | Result | Behind it |");
            L("|---|---|---|---|---|---|");
            var t = 1;
            foreach (var target in r.SchedulingTargets)
            {
                var threshold = string.Create(inv, $"{(target.Comparison == ">=" ? "≥" : "≤")} {target.Threshold:0.##} {target.Unit}");
                var measured = target.Measured is { } st ? FormatPrecise(st) + " " + target.Unit : "—";
                L($"| {t++} | {Cell(target.Target)} | {threshold} | {measured} | **{target.Verdict}** | {Cell(target.Detail)} |");
            }

            L();
        }

        if (seedSections)
        {
            L("## The seed's predictions against this machine");
            L();
            L("| # | Seed's claim | Seed's prediction | Measured | Verdict |");
            L("|---|---|---|---|---|");
            var i = 1;
            foreach (var c in r.Claims)
            {
                L($"| {i++} | {Cell(c.Claim)} | {Cell(c.Prediction)} | {Cell(c.Measured)} | **{Cell(c.Verdict)}** |");
            }

            L();
            L("A change is a speed-up: +100% = twice as fast, −50% = half as fast. \"ranges overlap\" = the min–max ranges of the two configurations overlap: the difference may be noise, and the verdict is \"inconclusive\" unless it is under 5% (rerun on a quiet machine, or with more --reps).");
            L();
        }

        if (chartWritten)
        {
            L($"![Main comparisons]({ChartFile})");
            L();
        }

        if (r.Recommendations.Count > 0)
        {
            L("## Configuration these numbers recommend");
            L();
            foreach (var a in r.Recommendations)
            {
                L($"- {a}");
            }

            L();
        }

        L("## Measurements");
        foreach (var s in r.Sections)
        {
            L();
            L($"### {s.Title}");
            L();
            L($"Method: {s.Method}.");
            L();
            var metrics = s.Configs.SelectMany(c => c.Metrics.Keys).Distinct().ToList();
            var detailKeys = s.Configs.SelectMany(c => c.Details.Keys).Where(k => k != "file").Distinct().ToList();
            L("| configuration | " + string.Join(" | ", metrics.Select(Metrics.Label).Concat(detailKeys.Select(k => k.Replace('_', ' ')))) + " |");
            L("|---|" + string.Concat(Enumerable.Repeat("---|", metrics.Count + detailKeys.Count)));
            foreach (var c in s.Configs)
            {
                var cells = metrics.Select(k => c.Metrics.TryGetValue(k, out var st) ? Format(st) : "")
                    .Concat(detailKeys.Select(k => Cell(c.Details.GetValueOrDefault(k, ""))));
                L($"| {Cell(c.Name)} | {string.Join(" | ", cells)} |");
            }

            foreach (var note in s.Notes)
            {
                L();
                L($"- {note}");
            }
        }

        L();
        L("## Reproduce");
        L();
        L("```sh");
        L(r.CommandLine);
        L("```");
        L();
        L("Synthetic models (`qwbench model synth`) have a real model's shapes and random weights: their speed is the real model's, their text is gibberish.");
        return md.ToString();
    }

    public static string Format(Stat s)
    {
        var inv = CultureInfo.InvariantCulture;
        if (s.N == 1)
        {
            return s.Median >= 100 ? s.Median.ToString("F0", inv) : s.Median.ToString("F1", inv);
        }

        return s.Median >= 100
            ? string.Create(inv, $"{s.Median:F0} [{s.Min:F0}–{s.Max:F0}]")
            : string.Create(inv, $"{s.Median:F1} [{s.Min:F1}–{s.Max:F1}]");
    }

    /// <summary>Two decimals (ratios near a threshold such as 0.9× need them).</summary>
    public static string FormatPrecise(Stat s)
    {
        var inv = CultureInfo.InvariantCulture;
        return s.N == 1 ? s.Median.ToString("F2", inv) : string.Create(inv, $"{s.Median:F2} [{s.Min:F2}–{s.Max:F2}]");
    }

    private static string Cell(string s) => s.Replace("|", "\\|", StringComparison.Ordinal).ReplaceLineEndings(" ");
}
