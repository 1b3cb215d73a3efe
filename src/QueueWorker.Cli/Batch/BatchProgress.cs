using System.Globalization;
using QueueWorker.Cli.Infrastructure;
using QueueWorker.Cli.Running;
using Spectre.Console;

namespace QueueWorker.Cli.Batch;

/// <summary>
/// Progress of a batch: a live Spectre.Console bar when stdout and stderr are terminals, otherwise
/// one plain line on stderr every interval (logs and CI stay readable). Then a summary table.
/// </summary>
internal static class BatchProgress
{
    public static async Task<T> TrackAsync<T>(CliConsole console, CliLoggerProvider logs, BatchStats stats, RunnerCounters counters,
        TimeSpan interval, TimeProvider time, Func<Task<T>> work)
    {
        if (!console.Interactive)
        {
            var running = work();
            do
            {
                await Task.WhenAny(running, Task.Delay(interval, time));
                // The last line, written when the work is done, has the final counts.
                await console.Error.WriteLineAsync("qw batch: " + Describe(stats, counters));
            }
            while (!running.IsCompleted);
            return await running;
        }

        logs.RouteThroughAnsi = true;
        try
        {
            return await console.Ansi.Progress()
                .AutoClear(false)
                .Columns(new ProgressBarColumn(), new PercentageColumn(), new TaskDescriptionColumn { Alignment = Justify.Left })
                .StartAsync(async context =>
                {
                    var bar = context.AddTask("starting", maxValue: 1);
                    var running = work();
                    while (true)
                    {
                        bar.MaxValue = Math.Max(1, stats.Total);
                        bar.Value = Math.Min(bar.MaxValue, Done(stats));
                        bar.Description = Markup.Escape(Describe(stats, counters));
                        if (running.IsCompleted) break;
                        await Task.WhenAny(running, Task.Delay(TimeSpan.FromMilliseconds(250), time));
                    }
                    return await running;
                });
        }
        finally
        {
            logs.RouteThroughAnsi = false;
        }
    }

    private static long Done(BatchStats s) => Math.Max(s.AlreadyDone, s.Skipped) + s.Written;

    /// <summary><c>120/1000 · 2 failed · 3.1 jobs/s · 45.6 tok/s · ETA 4m 44s</c>, plus the runner's state when it has one.</summary>
    internal static string Describe(BatchStats s, RunnerCounters counters)
    {
        var text = string.Create(CultureInfo.InvariantCulture,
            $"{Math.Min(Done(s), s.Total)}/{s.Total} · {s.Failures} failed · {s.JobsPerSecond:F2} jobs/s · {s.TokensPerSecond:F1} tok/s · ETA {(s.Eta is { } eta ? Duration(eta) : "?")}");
        return counters.Status is { } status ? text + " · " + status : text;
    }

    public static void WriteSummary(CliConsole console, BatchStats s, RunnerCounters counters, string runner, string outputPath, BatchOutcome outcome)
    {
        var table = new Table().Border(TableBorder.Rounded).Title(outcome == BatchOutcome.Finished ? "qw batch: finished" : "qw batch: interrupted");
        table.AddColumn("");
        table.AddColumn(new TableColumn("").RightAligned());
        table.HideHeaders();
        void Row(string name, string value) => table.AddRow(Markup.Escape(name), Markup.Escape(value));
        var c = CultureInfo.InvariantCulture;

        Row("Input lines", s.Total.ToString(c));
        Row("Already in the output (skipped)", s.Skipped.ToString(c));
        Row("Completed", s.Completed.ToString(c));
        Row("Failed jobs", s.FailedJobs.ToString(c));
        if (s.Expired > 0) Row("  of which deadline_exceeded", s.Expired.ToString(c));
        if (counters.ExpiredUnpublished > 0) Row("  of which not published (window over)", counters.ExpiredUnpublished.ToString(c));
        Row("Invalid input lines", s.InvalidLines.ToString(c));
        Row("Wall time", Duration(s.Elapsed));
        Row("Jobs/s", s.JobsPerSecond.ToString("F2", c));
        Row("Latency p50 / p95", $"{Latency(s.LatencyPercentileMs(50))} / {Latency(s.LatencyPercentileMs(95))}");
        Row("Prompt tokens", s.PromptTokens.ToString(c));
        Row("Completion tokens", s.CompletionTokens.ToString(c));
        Row("Tokens/s (generated)", s.TokensPerSecond.ToString("F1", c));
        if (counters.Reconnects > 0 || counters.Resubmitted > 0)
            Row("Reconnects / jobs published again", $"{counters.Reconnects} / {counters.Resubmitted}");
        if (counters.DuplicatesDropped > 0) Row("Duplicate results dropped", counters.DuplicatesDropped.ToString(c));
        Row("Ran on", runner);
        Row("Output", outputPath);
        console.Ansi.Write(table);
    }

    private static string Latency(double? ms) => ms is { } v ? Commands.SubmitCommand.Ms(v) : "-";

    internal static string Duration(TimeSpan t) => t.TotalHours >= 1
        ? $"{(int)t.TotalHours}h {t.Minutes:D2}m"
        : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m {t.Seconds:D2}s" : $"{t.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture)}s";
}
