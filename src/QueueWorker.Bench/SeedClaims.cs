using System.Globalization;

namespace QueueWorker.Bench;

/// <summary>
/// The seed document's predictions (../shared/docs/seed-cpu-optimization-review.md) and the rules that
/// turn this run's measurements into a verdict. A change is a speed-up in percent: for throughputs
/// new/old - 1, for times old/new - 1 (so +100% = twice as fast, -50% = half as fast).
/// </summary>
public static class SeedClaims
{
    /// <summary>Differences this small, with overlapping min–max ranges, are not distinguishable from noise.</summary>
    public const double NoisePct = 5;

    public static double Change(Stat baseline, Stat candidate, bool higherIsBetter) =>
        higherIsBetter ? (candidate.Median / baseline.Median - 1) * 100 : (baseline.Median / candidate.Median - 1) * 100;

    public const string Inconclusive = "? inconclusive: ranges overlap";

    /// <summary>Verdict on a predicted speed-up range [low, high] in percent given the measured change.</summary>
    public static string Judge(double measured, double low, double high, bool overlaps)
    {
        if (Math.Abs(measured) < NoisePct && (overlaps || low >= NoisePct))
        {
            return low > 0 ? "✗ wrong: no measurable effect" : "✓ holds (no difference)";
        }

        if (overlaps)
        {
            // Could the claim still be right? Only say "wrong" when the noise cannot explain the gap.
            return Inconclusive;
        }

        if (measured < 0 && low >= 0)
        {
            return "✗ wrong: slower";
        }

        if (measured < low)
        {
            return measured < low / 3 ? "✗ wrong: far smaller effect" : "≈ partly: smaller effect";
        }

        return measured > high * 2 && high > 0 ? "✓ holds (larger than predicted)" : "✓ holds";
    }

    public static IReadOnlyList<ClaimVerdict> Evaluate(IReadOnlyList<SectionResult> sections, BackendInfo backend)
    {
        var verdicts = new List<ClaimVerdict>();
        SectionResult? S(string id) => sections.FirstOrDefault(s => s.Id == id);

        if (S(BenchRunner.Context) is { } context)
        {
            var big = context.Config("2048");
            var small = context.Config("512");
            var dyn = context.Configs.FirstOrDefault(c => c.Name.StartsWith("dynamic", StringComparison.Ordinal));
            if (big is not null && small is not null)
            {
                verdicts.Add(Compare("context", "Context window 2048 → 512", "40–60% faster", 40, 60,
                    big, small, Metrics.JobMs, "2048", "512",
                    dyn is null ? null : $"{dyn.Name}: {Ms(dyn, Metrics.JobMs)} per job"));
            }
        }

        if (S(BenchRunner.Threads) is { } threads && threads.Configs.Count >= 5)
        {
            var (unset, all, fewer, allLoad, fewerLoad) = (threads.Configs[0], threads.Configs[1], threads.Configs[2], threads.Configs[3], threads.Configs[4]);
            verdicts.Add(Compare("threads-explicit", "Explicit n_threads = all cores (vs. library default)", "30–50% faster", 30, 50,
                unset, all, Metrics.JobMs, unset.Name, all.Name, $"default chose {unset.Details.GetValueOrDefault("threads", "?")} threads"));
            verdicts.Add(Compare("threads-cores-1", "n_threads = cores − 1 (idle machine)", "5–10% faster", 5, 10,
                all, fewer, Metrics.JobMs, all.Name, fewer.Name,
                $"decode {Tps(all, Metrics.DecodeTps)} → {Tps(fewer, Metrics.DecodeTps)}"));
            verdicts.Add(Compare("threads-cores-1-load", "n_threads = cores − 1 (beside a competing CPU load)", "5–10% faster (\"prevents contention\")", 5, 10,
                allLoad, fewerLoad, Metrics.JobMs, allLoad.Name, fewerLoad.Name,
                $"decode {Tps(allLoad, Metrics.DecodeTps)} → {Tps(fewerLoad, Metrics.DecodeTps)}"));
        }

        if (S(BenchRunner.Mmap) is { } mmap && mmap.Config("mmap on") is { } on && mmap.Config("mmap off") is { } off)
        {
            verdicts.Add(Compare("mmap", "use_mmap = True", "5–15% faster", 5, 15, off, on, Metrics.SecondJobMs, "off", "on",
                $"cold load {Ms(off, Metrics.LoadColdMs)} → {Ms(on, Metrics.LoadColdMs)}, load + first job {Ms(off, Metrics.StartToFirstResultMs)} → {Ms(on, Metrics.StartToFirstResultMs)}, " +
                $"RSS after first job {Mb(off, Metrics.RssAfterJobMb)} → {Mb(on, Metrics.RssAfterJobMb)}"));
        }

        if (S(BenchRunner.Quant) is { } quant && quant.Configs.Count > 0)
        {
            var best = quant.Configs.MinBy(c => c.Metrics[Metrics.JobMs].Median)!;
            if (quant.Config("q3_k_m") is { } q3)
            {
                var pct = Change(q3.Metrics[Metrics.JobMs], best.Metrics[Metrics.JobMs], higherIsBetter: false);
                var tie = best == q3 || (q3.Metrics[Metrics.JobMs].Overlaps(best.Metrics[Metrics.JobMs]) && pct < NoisePct);
                verdicts.Add(new ClaimVerdict("quant-q3", "Q3 is optimal for CPU", "Q3 fastest (\"already optimized\")",
                    $"q3_k_m {Ms(q3, Metrics.JobMs)} per job (prefill {Tps(q3, Metrics.PrefillTps)}, decode {Tps(q3, Metrics.DecodeTps)}); " +
                    $"fastest: {best.Name} {Ms(best, Metrics.JobMs)} (prefill {Tps(best, Metrics.PrefillTps)}, decode {Tps(best, Metrics.DecodeTps)})",
                    tie ? "✓ holds" : $"✗ wrong: {best.Name} is {pct:F0}% faster per job",
                    null, null, tie ? 0 : pct));

                if (quant.Config("q8_0") is { } q8)
                {
                    verdicts.Add(Compare("quant-int8", "int8 (Q8_0) instead of Q3", "2–3× faster (+100–200%)", 100, 200,
                        q3, q8, Metrics.JobMs, "q3_k_m", "q8_0",
                        $"decode {Tps(q3, Metrics.DecodeTps)} → {Tps(q8, Metrics.DecodeTps)}; file {Mb(q3, Metrics.FileMb)} → {Mb(q8, Metrics.FileMb)}"));
                }

                var int4 = quant.Config("q4_0") ?? quant.Config("q4_k_m");
                if (int4 is not null)
                {
                    var other = int4.Name == "q4_0" ? quant.Config("q4_k_m") : null;
                    verdicts.Add(Compare("quant-int4", $"int4 ({int4.Name.ToUpperInvariant()}) instead of Q3", "3–4× faster (+200–300%)", 200, 300,
                        q3, int4, Metrics.JobMs, "q3_k_m", int4.Name,
                        $"decode {Tps(q3, Metrics.DecodeTps)} → {Tps(int4, Metrics.DecodeTps)}" +
                        (other is null ? "" : $"; q4_k_m {Ms(other, Metrics.JobMs)} per job")));
                }
            }
        }

        verdicts.Add(new ClaimVerdict("blas", "Intel MKL / optimized OpenBLAS", "2–3× faster matrix operations",
            backend.Summary + (string.IsNullOrEmpty(backend.SystemInfo) ? "" : $" (llama.cpp: {backend.SystemInfo})"),
            backend.BlasLoaded ? "? a BLAS library is loaded: compare builds to judge" : "✗ not applicable: no BLAS in the path; nothing to swap",
            200, 300, null));

        if (S(BenchRunner.Batch) is { } batchSection && RawBatch(batchSection) is { Count: > 1 } batch)
        {
            var one = batch[0];
            var four = batch.FirstOrDefault(c => c.Name.StartsWith("4 ", StringComparison.Ordinal)) ?? batch[^1];
            var most = batch[^1];
            verdicts.Add(Compare("batching", $"Batching concurrent requests ({four.Name} vs 1)", "10–20% better throughput", 10, 20,
                one, four, Metrics.AggregateTps, one.Name, four.Name,
                $"{most.Name}: {Tps(most, Metrics.AggregateTps)}; per-job latency {Ms(one, Metrics.JobMs)} → {Ms(four, Metrics.JobMs)} ({four.Name})"));
        }

        return verdicts;
    }

    /// <summary>Configuration advice that follows from this run (the worker's defaults should match it).</summary>
    public static IReadOnlyList<string> Recommend(IReadOnlyList<SectionResult> sections, BenchPlan plan)
    {
        var advice = new List<string>();
        SectionResult? S(string id) => sections.FirstOrDefault(s => s.Id == id);

        if (S(BenchRunner.Threads) is { } t && t.Configs.Count >= 5)
        {
            var idle = ClearChange(t.Configs[1].Metrics[Metrics.JobMs], t.Configs[2].Metrics[Metrics.JobMs], false);
            var busy = ClearChange(t.Configs[3].Metrics[Metrics.JobMs], t.Configs[4].Metrics[Metrics.JobMs], false);
            advice.Add(idle <= 0
                ? $"`Inference:Threads = 0` (every CPU the process may use, {plan.AllThreads} here) and `Inference:ReserveCores = 0`: cores − 1 changed job speed by {Pct(idle)} on an idle machine and {Pct(busy)} beside a competing load."
                : $"`Inference:ReserveCores = 1`: cores − 1 was {idle:F0}% faster on this machine.");
        }

        if (S(BenchRunner.Context) is { } c && c.Config("2048") is { } big && c.Config("512") is { } small)
        {
            var pct = ClearChange(big.Metrics[Metrics.JobMs], small.Metrics[Metrics.JobMs], false);
            advice.Add(pct <= 0
                ? $"`Inference:ContextSize = 2048`: a 512 context did not make a job measurably faster; it saves only memory ({Mb(big, Metrics.ContextRssMb)} vs {Mb(small, Metrics.ContextRssMb)}) and refuses longer prompts."
                : $"`Inference:ContextSize`: 512 made a job {pct:F0}% faster than 2048 here; size it to the longest prompt + max_tokens you accept.");
        }

        if (S(BenchRunner.Mmap) is { } m && m.Config("mmap on") is { } on && m.Config("mmap off") is { } off)
        {
            var start = ClearChange(off.Metrics[Metrics.StartToFirstResultMs], on.Metrics[Metrics.StartToFirstResultMs], false);
            var steady = ClearChange(off.Metrics[Metrics.SecondJobMs], on.Metrics[Metrics.SecondJobMs], false);
            advice.Add($"`Model:UseMmap = {(start >= 0 && steady >= 0 ? "true" : "false")}`: load + first job {Ms(off, Metrics.StartToFirstResultMs)} without vs {Ms(on, Metrics.StartToFirstResultMs)} with mmap; steady jobs {Ms(off, Metrics.SecondJobMs)} vs {Ms(on, Metrics.SecondJobMs)}.");
        }

        if (S(BenchRunner.Quant) is { } q && q.Configs.Count > 0)
        {
            var best = q.Configs.MinBy(x => x.Metrics[Metrics.JobMs].Median)!;
            var ties = q.Configs.Where(x => x != best && x.Metrics[Metrics.JobMs].Overlaps(best.Metrics[Metrics.JobMs])).Select(x => x.Name).ToList();
            advice.Add($"Weights: {best.Name} gave the fastest job here ({Ms(best, Metrics.JobMs)})" +
                       (ties.Count > 0 ? $", within noise of {string.Join(", ", ties)}" : "") +
                       "; weigh quality separately (a synthetic model's weights are random, so its run says nothing about quality).");
        }

        if (S(BenchRunner.Batch) is { } bs && RawBatch(bs) is { Count: > 1 } b)
        {
            var one = b[0].Metrics[Metrics.AggregateTps].Median;
            var best = b.MaxBy(x => x.Metrics[Metrics.AggregateTps].Median)!;
            advice.Add($"`Inference:Slots`: {best.Name} in one context gave {best.Metrics[Metrics.AggregateTps].Median / one:F1}× the tokens/s of one job alone; " +
                       "more slots raise throughput and each job's latency together (see the batching table).");
        }

        return advice;
    }

    /// <summary>The batching configurations of the first runner (raw LLamaSharp); other runners are shown, not judged.</summary>
    private static List<ConfigResult> RawBatch(SectionResult batch)
    {
        var runner = batch.Configs.FirstOrDefault()?.Details.GetValueOrDefault("runner");
        return batch.Configs.Where(c => c.Details.GetValueOrDefault("runner") == runner).ToList();
    }

    /// <summary>The speed-up when it is clear of noise, else 0 (recommendations never follow noise).</summary>
    public static double ClearChange(Stat baseline, Stat candidate, bool higherIsBetter)
    {
        var pct = Change(baseline, candidate, higherIsBetter);
        return baseline.Overlaps(candidate) || Math.Abs(pct) < NoisePct ? 0 : pct;
    }

    private static ClaimVerdict Compare(string id, string claim, string prediction, double low, double high,
        ConfigResult baseline, ConfigResult candidate, string metric, string baseName, string candName, string? extra)
    {
        var b = baseline.Metrics[metric];
        var c = candidate.Metrics[metric];
        var higher = Metrics.HigherIsBetter(metric);
        var pct = Change(b, c, higher);
        var unit = higher ? "tok/s" : "ms";
        var measured = string.Create(CultureInfo.InvariantCulture,
            $"{Metrics.Label(metric)}: {baseName} {Fmt(b)} → {candName} {Fmt(c)} {unit} ({pct:+0;-0}%{(b.Overlaps(c) ? ", ranges overlap" : "")})");
        if (extra is not null)
        {
            measured += "; " + extra;
        }

        return new ClaimVerdict(id, claim, prediction, measured, Judge(pct, low, high, b.Overlaps(c)), low, high, Math.Round(pct, 1));
    }

    private static string Pct(double pct) => pct == 0 ? "nothing measurable" : string.Create(CultureInfo.InvariantCulture, $"{pct:+0;-0}%");

    private static string Fmt(Stat s) => s.Median >= 100
        ? string.Create(CultureInfo.InvariantCulture, $"{s.Median:F0} [{s.Min:F0}–{s.Max:F0}]")
        : string.Create(CultureInfo.InvariantCulture, $"{s.Median:F1} [{s.Min:F1}–{s.Max:F1}]");

    private static string Ms(ConfigResult c, string metric) =>
        c.Metrics.TryGetValue(metric, out var s) ? string.Create(CultureInfo.InvariantCulture, $"{s.Median:F0} ms") : "n/a";

    private static string Tps(ConfigResult c, string metric) =>
        c.Metrics.TryGetValue(metric, out var s) ? string.Create(CultureInfo.InvariantCulture, $"{s.Median:F1} tok/s") : "n/a";

    private static string Mb(ConfigResult c, string metric) =>
        c.Metrics.TryGetValue(metric, out var s) ? string.Create(CultureInfo.InvariantCulture, $"{s.Median:F0} MB") : "n/a";
}
