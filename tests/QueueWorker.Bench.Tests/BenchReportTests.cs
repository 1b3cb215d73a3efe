using System.Text.Json;

namespace QueueWorker.Bench.Tests;

[Trait("Category", "Unit")]
public sealed class StatTests
{
    [Fact]
    public void Of_OddAndEvenCounts_MedianMinMax()
    {
        var odd = Stat.Of([5, 1, 3]);
        Assert.Equal((3.0, 1.0, 5.0, 3), (odd.Median, odd.Min, odd.Max, odd.N));
        Assert.Equal(2.5, Stat.Of([4, 1, 2, 3]).Median);
    }

    [Fact]
    public void Overlaps_DisjointRanges_False()
    {
        Assert.False(Stat.Of([1, 2]).Overlaps(Stat.Of([3, 4])));
        Assert.True(Stat.Of([1, 3]).Overlaps(Stat.Of([2, 4])));
    }

    [Fact]
    public void Of_NoSamples_Throws() => Assert.Throws<ArgumentException>(() => Stat.Of([]));
}

[Trait("Category", "Unit")]
public sealed class SeedClaimsTests
{
    private static ConfigResult Job(string name, params double[] jobMs) =>
        new(name, new Dictionary<string, Stat>
        {
            [Metrics.JobMs] = Stat.Of(jobMs),
            [Metrics.DecodeTps] = Stat.Of(jobMs.Select(ms => 32000 / ms).ToArray()),
            [Metrics.PrefillTps] = Stat.Of(jobMs.Select(ms => 128000 / ms).ToArray()),
            [Metrics.ContextRssMb] = Stat.Of([10]),
        }, new Dictionary<string, string> { ["threads"] = "1 generation / 1 prompt" });

    private static ConfigResult Agg(string name, params double[] tps) =>
        new(name, new Dictionary<string, Stat> { [Metrics.AggregateTps] = Stat.Of(tps), [Metrics.JobMs] = Stat.Of([1000]) }, new Dictionary<string, string>());

    private static readonly BackendInfo NoBlas = new("0.30.0", "avx512", "CPU : AVX512 = 1", [], false, "no BLAS");

    [Theory]
    [InlineData(2, 40, 60, true, "✗ wrong: no measurable effect")]
    [InlineData(-48, 5, 10, false, "✗ wrong: slower")]
    [InlineData(-48, 5, 10, true, SeedClaims.Inconclusive)]
    [InlineData(200, 10, 20, false, "✓ holds (larger than predicted)")]
    [InlineData(45, 40, 60, false, "✓ holds")]
    [InlineData(20, 40, 60, false, "≈ partly: smaller effect")]
    [InlineData(8, 100, 200, false, "✗ wrong: far smaller effect")]
    public void Judge_MeasuredAgainstPrediction_Verdict(double measured, double low, double high, bool overlaps, string expected)
    {
        Assert.Equal(expected, SeedClaims.Judge(measured, low, high, overlaps));
    }

    [Fact]
    public void Evaluate_FactsLikeNumbers_MatchFactsVerdicts()
    {
        // Ratios from FACTS.md: cores - 1 halves speed on 2 cores, Q4_K_M beats Q3_K_M, Q8_0 is slower than Q4_0, 4 jobs ≈ 3x.
        var sections = new List<SectionResult>
        {
            new(BenchRunner.Context, "Context size", "", [Job("2048", 3000, 3050, 3100), Job("512", 2990, 3040, 3110), Job("dynamic (256)", 3000, 3020, 3080)], []),
            new(BenchRunner.Threads, "Threads", "", [Job("default (unset)", 6000, 6100, 6200), Job("all (2)", 3000, 3050, 3100), Job("cores - 1 (1)", 6000, 6050, 6100),
                Job("all (2) + load", 5000, 5200, 5400), Job("cores - 1 (1) + load", 6500, 6600, 6700)], []),
            new(BenchRunner.Quant, "Quantization", "", [Job("q3_k_m", 4500, 4550, 4600), Job("q4_0", 3000, 3050, 3100), Job("q4_k_m", 2900, 2950, 3000), Job("q8_0", 4000, 4100, 4200), Job("f16", 6000, 6100, 6200)], []),
            new(BenchRunner.Batch, "Batching", "", [Agg("1 job", 17, 17.5, 18), Agg("2 jobs", 30, 31, 32), Agg("4 jobs", 49, 50, 51), Agg("8 jobs", 52, 53, 54)], []),
        };

        var verdicts = SeedClaims.Evaluate(sections, NoBlas).ToDictionary(v => v.Id);
        Assert.Equal("✗ wrong: no measurable effect", verdicts["context"].Verdict);
        Assert.StartsWith("✓ holds", verdicts["threads-explicit"].Verdict);
        Assert.Equal("✗ wrong: slower", verdicts["threads-cores-1"].Verdict);
        Assert.Equal(-50, verdicts["threads-cores-1"].MeasuredPct!.Value, 0);
        Assert.Equal("✗ wrong: slower", verdicts["threads-cores-1-load"].Verdict);
        Assert.StartsWith("✗ wrong: q4_k_m is", verdicts["quant-q3"].Verdict);
        Assert.Equal("✗ wrong: far smaller effect", verdicts["quant-int8"].Verdict);
        Assert.Equal("✗ wrong: far smaller effect", verdicts["quant-int4"].Verdict); // +49% against +200–300%
        Assert.StartsWith("✗ not applicable", verdicts["blas"].Verdict);
        Assert.Equal("✓ holds (larger than predicted)", verdicts["batching"].Verdict);
        Assert.Equal(186, verdicts["batching"].MeasuredPct!.Value, 0);

        var advice = SeedClaims.Recommend(sections, Plan());
        Assert.Contains(advice, a => a.Contains("`Inference:ReserveCores = 0`", StringComparison.Ordinal));
        Assert.Contains(advice, a => a.Contains("`Inference:ContextSize = 2048`", StringComparison.Ordinal));
        Assert.Contains(advice, a => a.StartsWith("Weights: q4_k_m", StringComparison.Ordinal));
    }

    internal static BenchPlan Plan() => new(false, 1, 3, new JobShape(128, 32), 2, 2048, BenchRunner.DefaultSections, ["q4_0"], [1, 4], 1);
}

[Trait("Category", "Unit")]
public sealed class ReportWriterTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static BenchReport Report()
    {
        var sections = new List<SectionResult>
        {
            new(BenchRunner.Quant, "Quantization", "one job", [
                new ConfigResult("q4_0", new Dictionary<string, Stat> { [Metrics.JobMs] = Stat.Of([100, 110, 120]), [Metrics.PrefillTps] = Stat.Of([80, 82, 84]), [Metrics.DecodeTps] = Stat.Of([17, 18, 19]) }, new Dictionary<string, string>()),
                new ConfigResult("q3_k_m", new Dictionary<string, Stat> { [Metrics.JobMs] = Stat.Of([150, 160, 170]), [Metrics.PrefillTps] = Stat.Of([50, 51, 52]), [Metrics.DecodeTps] = Stat.Of([17, 18, 19]) }, new Dictionary<string, string>()),
            ], ["a note | with a pipe"]),
        };
        var backend = new BackendInfo("0.30.0", "avx512", "CPU : AVX512 = 1", ["/x/libllama.so"], false, "no BLAS");
        return new BenchReport("qw bench", DateTimeOffset.UnixEpoch, 61, "qw bench --quick",
            new MachineInfo("Test CPU", 2, 2, 2, 24, ["avx2", "avx512f"], "Linux", ".NET 10", "0.10 0.20 0.30"), "0.40 0.50 0.60",
            backend, new ModelInfo("/m.gguf", "synthetic", 1 << 20, 1_100_048_384, "MOSTLY_Q4_0"), SeedClaimsTests.Plan(), sections,
            SeedClaims.Evaluate(sections, backend), SeedClaims.Recommend(sections, SeedClaimsTests.Plan()));
    }

    [Fact]
    public async Task WriteAsync_Report_WritesPredictionMeasuredVerdictTableAndJson()
    {
        var report = Report();
        var chart = ChartWriter.TryWrite(report, Path.Combine(_dir.Path, ReportWriter.ChartFile));
        await ReportWriter.WriteAsync(report, _dir.Path, chart, CancellationToken.None);

        var md = await File.ReadAllTextAsync(_dir.File(ReportWriter.MarkdownFile));
        Assert.Contains("| # | Seed's claim | Seed's prediction | Measured | Verdict |", md);
        Assert.Contains("| Q3 is optimal for CPU |", md);
        Assert.Contains("✗ wrong: q4_0 is 45% faster per job", md);
        Assert.Contains("| q4_0 | 110 [100–120] | 82.0 [80.0–84.0] | 18.0 [17.0–19.0] |", md);
        Assert.Contains("- a note | with a pipe", md); // notes are list items, not table cells
        Assert.Contains("![Main comparisons](chart.png)", md);
        Assert.Contains("Test CPU", md);

        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(_dir.File(ReportWriter.JsonFile)));
        var root = json.RootElement;
        Assert.Equal("Test CPU", root.GetProperty("machine").GetProperty("cpu_model").GetString());
        var q4 = root.GetProperty("sections")[0].GetProperty("configs")[0];
        Assert.Equal(110, q4.GetProperty("metrics").GetProperty(Metrics.JobMs).GetProperty("median").GetDouble());
        Assert.Equal(3, q4.GetProperty("metrics").GetProperty(Metrics.JobMs).GetProperty("samples").GetArrayLength());

        Assert.True(chart);
        var png = await File.ReadAllBytesAsync(_dir.File(ReportWriter.ChartFile));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        Assert.True(png.Length > 10_000);
    }
}
