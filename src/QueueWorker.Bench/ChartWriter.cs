using ScottPlot;

namespace QueueWorker.Bench;

/// <summary>chart.png: the seed's predicted speed-up against the measured one per claim, plus the raw speeds behind them.</summary>
public static class ChartWriter
{
    public static bool TryWrite(BenchReport report, string path)
    {
        var claims = report.Claims.Where(c => c.MeasuredPct is not null).ToList();
        var quant = report.Sections.FirstOrDefault(s => s.Id == BenchRunner.Quant);
        var batch = report.Sections.FirstOrDefault(s => s.Id == BenchRunner.Batch);
        var plots = new List<Plot>();
        if (claims.Count > 0)
        {
            plots.Add(ClaimsPanel(claims));
        }

        if (quant is not null && quant.Configs.Count > 0)
        {
            plots.Add(SpeedPanel("Quantization: tokens/s (median; whisker = half the min–max spread)", quant.Configs,
                [(Metrics.PrefillTps, "prefill"), (Metrics.DecodeTps, "decode")]));
        }

        if (batch is not null && batch.Configs.Count > 0)
        {
            plots.Add(SpeedPanel("Batching: aggregate tokens/s over all jobs (median; whisker = half the min–max spread)", batch.Configs,
                [(Metrics.AggregateTps, "whole jobs"), (Metrics.AggregateDecodeTps, "decode only")]));
        }

        if (plots.Count == 0)
        {
            return false;
        }

        // A new Multiplot holds one empty plot: replace it with the first panel.
        var multiplot = new Multiplot();
        multiplot.Reset(plots[0]);
        foreach (var plot in plots.Skip(1))
        {
            multiplot.AddPlot(plot);
        }

        multiplot.Layout = new ScottPlot.MultiplotLayouts.Rows();
        multiplot.SavePng(path, 1200, 420 * plots.Count);
        return true;
    }

    private static Plot ClaimsPanel(IReadOnlyList<ClaimVerdict> claims)
    {
        var plot = new Plot();
        var predicted = new List<Bar>();
        var measured = new List<Bar>();
        for (var i = 0; i < claims.Count; i++)
        {
            var c = claims[i];
            if (c.PredictedLowPct is { } lo && c.PredictedHighPct is { } hi)
            {
                predicted.Add(new Bar { Position = i * 3, Value = (lo + hi) / 2, Error = (hi - lo) / 2, FillColor = Colors.Gray });
            }

            var v = c.MeasuredPct!.Value;
            measured.Add(new Bar { Position = i * 3 + 1, Value = v, FillColor = Colors.SteelBlue, Label = $"{v:+0;-0}%" });
        }

        plot.Add.Bars(predicted).LegendText = "seed's prediction";
        plot.Add.Bars(measured).LegendText = "measured";
        plot.Add.HorizontalLine(0, 1, Colors.Black);
        plot.Axes.Bottom.SetTicks(claims.Select((_, i) => i * 3 + 0.5).ToArray(), claims.Select(c => Short(c.Id)).ToArray());
        plot.Title("The seed's claims: predicted vs measured speed-up (%)");
        plot.YLabel("speed-up %");
        plot.ShowLegend(Alignment.UpperRight);
        return plot;
    }

    private static Plot SpeedPanel(string title, IReadOnlyList<ConfigResult> configs, IReadOnlyList<(string Metric, string Label)> series)
    {
        var plot = new Plot();
        var palette = new[] { Colors.SteelBlue, Colors.DarkOrange, Colors.SeaGreen };
        var width = series.Count + 1;
        for (var s = 0; s < series.Count; s++)
        {
            var bars = new List<Bar>();
            for (var i = 0; i < configs.Count; i++)
            {
                if (configs[i].Metrics.TryGetValue(series[s].Metric, out var st))
                {
                    bars.Add(new Bar { Position = i * width + s, Value = st.Median, ValueBase = 0, Error = (st.Max - st.Min) / 2, FillColor = palette[s % palette.Length] });
                }
            }

            plot.Add.Bars(bars).LegendText = series[s].Label;
        }

        plot.Axes.Bottom.SetTicks(configs.Select((_, i) => i * width + (series.Count - 1) / 2.0).ToArray(), configs.Select(c => c.Name).ToArray());
        plot.Axes.Margins(bottom: 0);
        plot.Title(title);
        plot.YLabel("tokens/s");
        plot.ShowLegend(Alignment.UpperLeft);
        return plot;
    }

    private static string Short(string id) => id switch
    {
        "context" => "ctx 512",
        "threads-explicit" => "explicit threads",
        "threads-cores-1" => "cores-1",
        "threads-cores-1-load" => "cores-1 + load",
        "mmap" => "mmap",
        "quant-q3" => "Q3 best?",
        "quant-int8" => "int8 vs Q3",
        "quant-int4" => "int4 vs Q3",
        "batching" => "batching",
        _ => id,
    };
}
