using System.Globalization;
using CsCheck;
using Microsoft.Extensions.Time.Testing;
using QueueWorker.Cli.Batch;
using QueueWorker.Cli.Running;
using QueueWorker.Contracts;

namespace QueueWorker.Cli.Tests;

/// <summary>The duration flags (<c>--completion-window</c>, <c>--expires-in</c>) and what a batch does with its window.</summary>
[Trait("Category", "Unit")]
public sealed class CompletionWindowTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly (string Suffix, long Ms)[] Units = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];

    [Theory]
    [InlineData("24h", 24 * 3_600_000L)]
    [InlineData("30m", 30 * 60_000L)]
    [InlineData("90s", 90_000L)]
    [InlineData("2d", 2 * 86_400_000L)]
    [InlineData("1500ms", 1500L)]
    [InlineData("007s", 7000L)]
    [InlineData("4294967295ms", 4294967295L)]
    [InlineData("49d", 49 * 86_400_000L)]
    public void TryParse_Valid_Milliseconds(string text, long expectedMs)
    {
        Assert.True(Durations.TryParse(text, out var value));
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMs), value);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("0s")]
    [InlineData("0")]
    [InlineData("24")]
    [InlineData("h")]
    [InlineData("-1h")]
    [InlineData("+1h")]
    [InlineData("1.5h")]
    [InlineData("1 h")]
    [InlineData(" 1h")]
    [InlineData("1h ")]
    [InlineData("1H")]
    [InlineData("1h30m")]
    [InlineData("1w")]
    [InlineData("50d")]
    [InlineData("4294967296ms")]
    [InlineData("999999999999d")]
    [InlineData("99999999999999999999999d")]
    [InlineData("２４h")] // full-width digits: not ASCII
    public void TryParse_Garbage_ZeroNegativeOrOverflow_Rejected(string? text)
    {
        Assert.False(Durations.TryParse(text, out _));
    }

    [Fact]
    public void Property_AnyNumberAndUnit_ParsedExactlyOrRejectedOverTheLimit_FormatRoundTrips()
    {
        Gen.Select(Gen.Long[0, 10_000_000_000L], Gen.Int[0, Units.Length - 1]).Sample((n, unit) =>
        {
            var text = n.ToString(CultureInfo.InvariantCulture) + Units[unit].Suffix;
            var ms = (decimal)n * Units[unit].Ms;
            var ok = Durations.TryParse(text, out var value);
            if (n == 0 || ms > uint.MaxValue)
                return !ok;
            return ok && value == TimeSpan.FromMilliseconds((long)ms)
                && Durations.TryParse(Durations.Format(value), out var again) && again == value
                && Durations.Format(value).Length <= text.TrimStart('0').Length;
        });
    }

    [Fact]
    public void Property_AnyOtherString_RejectedNeverThrows()
    {
        // Strings over digits, unit letters, signs, dots and spaces: valid only when digits then exactly one unit.
        var chars = Gen.OneOf('0', '1', '9', 's', 'm', 'h', 'd', 'M', 'H', '-', '+', '.', ' ', 'x');
        chars.Array[0, 8].Select(a => new string(a)).Sample(text =>
        {
            var ok = Durations.TryParse(text, out var value);
            var digits = text.TakeWhile(char.IsAsciiDigit).Count();
            var shapeOk = digits > 0 && Units.Any(u => u.Suffix == text[digits..]);
            return ok ? shapeOk && value > TimeSpan.Zero : true;
        });
    }

    [Theory]
    [InlineData(1000, "1s")]
    [InlineData(60_000, "1m")]
    [InlineData(90_000, "90s")]
    [InlineData(86_400_000, "1d")]
    [InlineData(1500, "1500ms")]
    public void Format_LargestUnitThatDivides(long ms, string expected)
    {
        Assert.Equal(expected, Durations.Format(TimeSpan.FromMilliseconds(ms)));
    }

    [Fact]
    public void AmqpExpiration_TimeLeftRoundedUp_NullOnceOver()
    {
        var start = new DateTimeOffset(2026, 12, 2, 0, 0, 0, TimeSpan.Zero);
        var expiry = new JobExpiry(start + TimeSpan.FromSeconds(2), "--completion-window 2s");

        Assert.Equal("2000", expiry.AmqpExpiration(start));
        Assert.Equal("1", expiry.AmqpExpiration(start + TimeSpan.FromSeconds(2) - TimeSpan.FromTicks(1)));
        Assert.Equal("501", expiry.AmqpExpiration(start + TimeSpan.FromMilliseconds(1499.5)));
        Assert.Null(expiry.AmqpExpiration(start + TimeSpan.FromSeconds(2)));
        Assert.False(expiry.HasPassed(start));
        Assert.True(expiry.HasPassed(start + TimeSpan.FromSeconds(2)));
    }

    [Fact]
    public void NotPublished_DeadlineExceededNamingTheFlagAndField()
    {
        var expiry = new JobExpiry(new DateTimeOffset(2026, 12, 2, 1, 2, 3, TimeSpan.Zero), "the completion window (--completion-window 24h)");

        var result = expiry.NotPublished("job-1");

        Assert.Equal(JobStatus.Failed, result.Status);
        Assert.Equal(ErrorCodes.DeadlineExceeded, result.Error!.Code);
        Assert.Equal("expiration", result.Error.Field);
        Assert.Contains("--completion-window 24h", result.Error.Message, StringComparison.Ordinal);
        Assert.Contains("2026-12-02T01:02:03.000Z", result.Error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("0s")]
    [InlineData("-5m")]
    [InlineData("soon")]
    [InlineData("60d")]
    public async Task Batch_BadCompletionWindow_Exit2NamingTheFlagAndTheRule(string value)
    {
        var input = _dir.File("in.jsonl");
        await File.WriteAllTextAsync(input, """{"id":"a","prompt":"x"}""" + "\n");

        var run = await Qw.RunAsync(["batch", input, "--out", _dir.File("out.jsonl"), "--completion-window", value, "--uri", "amqp://guest:guest@127.0.0.1:1/"]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains("--completion-window must be a whole number and a unit", run.Error, StringComparison.Ordinal);
        Assert.Contains($"got '{value}'", run.Error, StringComparison.Ordinal);
        Assert.False(File.Exists(_dir.File("out.jsonl")));
    }

    [Fact]
    public async Task Submit_BadExpiresIn_Exit2NamingTheFlag()
    {
        var run = await Qw.RunAsync(["submit", "x", "--expires-in", "1.5h", "--uri", "amqp://guest:guest@127.0.0.1:1/"]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains("--expires-in must be a whole number and a unit", run.Error, StringComparison.Ordinal);
    }

    /// <summary>Records what each job carried; answers completed.</summary>
    private sealed class RecordingRunner : IJobRunner
    {
        public List<JobSubmission> Submissions { get; } = [];
        public string Description => "recording";
        public RunnerCounters Counters { get; } = new();
        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task<JobResult> RunAsync(JobSubmission submission, CancellationToken cancellationToken)
        {
            lock (Submissions) Submissions.Add(submission);
            return Task.FromResult(new JobResult { Id = submission.Id, Status = JobStatus.Completed, Text = "t", FinishReason = FinishReasons.Stop });
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    [Fact]
    public async Task Run_WithExpiry_EveryJobCarriesTheSameEnd()
    {
        var input = _dir.File("in.jsonl");
        await File.WriteAllLinesAsync(input, Enumerable.Range(1, 6).Select(i => $$"""{"id":"j{{i}}","prompt":"x"}"""));
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 2, 0, 0, 0, TimeSpan.Zero));
        var expiry = new JobExpiry(time.GetUtcNow() + TimeSpan.FromHours(24), "the completion window (--completion-window 24h)");
        var runner = new RecordingRunner();

        var outcome = await new BatchProcessor(runner, new BatchOptions(input, _dir.File("out.jsonl"), 2, JobLimits.Default, 1 << 20, "b", expiry), time)
            .RunAsync(CancellationToken.None);

        Assert.Equal(BatchOutcome.Finished, outcome);
        Assert.Equal(6, runner.Submissions.Count);
        Assert.All(runner.Submissions, s => Assert.Same(expiry, s.Expiry));
    }

    [Fact]
    public async Task Run_ExpiredAnswers_CountedAndWrittenAsErrorLinesThatAResumeSkips()
    {
        var input = _dir.File("in.jsonl");
        var output = _dir.File("out.jsonl");
        await File.WriteAllLinesAsync(input, Enumerable.Range(1, 4).Select(i => $$$"""{"custom_id":"c{{{i}}}","url":"/v1/completions","body":{"prompt":"x"}}"""));
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 2, 0, 0, 0, TimeSpan.Zero));
        var expired = new JobExpiry(time.GetUtcNow() - TimeSpan.FromSeconds(1), "the completion window (--completion-window 1s)");
        var runner = new ExpiringRunner();

        var processor = new BatchProcessor(runner, new BatchOptions(input, output, 1, JobLimits.Default, 1 << 20, "b", expired), time);
        Assert.Equal(BatchOutcome.Finished, await processor.RunAsync(CancellationToken.None));

        Assert.Equal(4, processor.Stats.Expired);
        Assert.Equal(4, processor.Stats.FailedJobs);
        var lines = File.ReadAllLines(output);
        Assert.Equal(4, lines.Length);
        Assert.All(lines, l => Assert.Contains("\"deadline_exceeded\"", l, StringComparison.Ordinal));

        // A resumed run (a new window) finds every line answered: nothing is run again.
        var resumed = new RecordingRunner();
        var again = new BatchProcessor(resumed, new BatchOptions(input, output, 1, JobLimits.Default, 1 << 20, "b2",
            new JobExpiry(time.GetUtcNow() + TimeSpan.FromHours(1), "w")), time);
        Assert.Equal(BatchOutcome.Finished, await again.RunAsync(CancellationToken.None));
        Assert.Empty(resumed.Submissions);
        Assert.Equal(4, again.Stats.Skipped);
    }

    /// <summary>Answers as the broker runner does a job whose window is over.</summary>
    private sealed class ExpiringRunner : IJobRunner
    {
        public string Description => "expiring";
        public RunnerCounters Counters { get; } = new();
        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task<JobResult> RunAsync(JobSubmission submission, CancellationToken cancellationToken)
        {
            Counters.AddExpiredUnpublished();
            return Task.FromResult(submission.Expiry!.NotPublished(submission.Id));
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
