using System.ComponentModel;
using System.Globalization;
using Microsoft.Extensions.Logging;
using QueueWorker.Cli.Batch;
using QueueWorker.Cli.Infrastructure;
using QueueWorker.Cli.Running;
using Spectre.Console.Cli;

namespace QueueWorker.Cli.Commands;

/// <summary>
/// <c>qw batch INPUT.jsonl --out OUTPUT.jsonl</c>: OpenAI Batch API lines (or bare job bodies) in,
/// OpenAI batch output lines out, one per custom_id, resumable. See the README, "Producers and batches".
/// </summary>
internal sealed class BatchCommand(CliConsole console, TimeProvider time) : AsyncCommand<BatchCommand.Settings>
{
    internal sealed class Settings : QwSettings
    {
        [CommandArgument(0, "<INPUT>")]
        [Description("JSONL file of requests.")]
        public string Input { get; set; } = "";

        [CommandOption("-o|--out <OUTPUT>")]
        [Description("JSONL file of results. Appended to: run the same command again to resume.")]
        public string? Out { get; set; }

        [CommandOption("--max-in-flight <N>")]
        [Description("Jobs submitted and not yet answered, at most.")]
        [DefaultValue(16)]
        public int MaxInFlight { get; set; } = 16;

        [CommandOption("--batch-id <ID>")]
        [Description("The batch id set on every job (qw cancel BATCH_ID cancels them). Default: a new one per run, so a resumed run is not cancelled with the old one.")]
        public string? BatchId { get; set; }

        [CommandOption("--completion-window <DURATION>")]
        [Description("OpenAI's completion_window: every job expires this long after the batch starts (e.g. 24h, 30m, 90s, 2d). A job still queued then is answered deadline_exceeded; one running then stops.")]
        public string? CompletionWindow { get; set; }

        [CommandOption("--progress-interval <SECONDS>")]
        [Description("Seconds between progress lines when output is not a terminal.")]
        [DefaultValue(5.0)]
        public double ProgressInterval { get; set; } = 5;
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(settings.Out))
            throw new CliException("--out OUTPUT.jsonl is required: where the results go (and where a resumed run looks for what is done).");
        if (Path.GetFullPath(settings.Out) == Path.GetFullPath(settings.Input))
            throw new CliException("--out must not be the input file.");
        if (settings.MaxInFlight is < 1 or > 4096)
            throw new CliException($"--max-in-flight must be from 1 to 4096, got {settings.MaxInFlight}.");
        if (!(settings.ProgressInterval > 0))
            throw new CliException($"--progress-interval must be more than 0 seconds, got {settings.ProgressInterval.ToString(CultureInfo.InvariantCulture)}.");
        if (!File.Exists(settings.Input))
            throw new CliException($"input file {settings.Input} does not exist.");
        TimeSpan? window = settings.CompletionWindow is null ? null : Durations.ParseFlag("--completion-window", settings.CompletionWindow);

        var configuration = CliConfiguration.Build(settings.Set, settings.Uri);
        var rabbit = CliConfiguration.RabbitMq(configuration, needsBroker: !settings.Local);
        var limits = CliConfiguration.Limits(configuration);
        CliConfiguration.ApplyLane(rabbit, settings.Lane, settings.Local, lowest: true);
        var batchId = settings.BatchId ?? $"batch-{time.GetUtcNow():yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..6]}";
        if (batchId.Length == 0 || batchId.Length > limits.MaxIdLength || batchId.Any(char.IsControl))
            throw new CliException($"--batch-id must be 1 to {limits.MaxIdLength} characters without control characters.");

        var level = settings.Verbose ? LogLevel.Debug : LogLevel.Warning;
        using var logs = new CliLoggerProvider(console, level);
        await using var runner = await RunnerFactory.StartAsync(settings.Local, "batch", configuration, rabbit, console, logs, level, time, cancellationToken);

        if (!settings.Local)
            console.Message($"batch id {batchId} (qw cancel {batchId} cancels what is left; Ctrl-C does too)");
        // The window runs from now, when the first job can go: one end for every line, so a line published late gets what
        // is left of it (a resumed run starts a new window).
        JobExpiry? expiry = null;
        if (window is { } w)
        {
            expiry = new JobExpiry(time.GetUtcNow() + w, $"the completion window (--completion-window {Durations.Format(w)})");
            console.Message($"completion window {Durations.Format(w)}: jobs not finished by {expiry.At.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z are answered deadline_exceeded.");
        }
        var processor = new BatchProcessor(runner, new BatchOptions(settings.Input, settings.Out, settings.MaxInFlight, limits, rabbit.MaxJobBytes, batchId, expiry), time);
        var outcome = await BatchProgress.TrackAsync(console, logs, processor.Stats, runner.Counters,
            TimeSpan.FromSeconds(settings.ProgressInterval), time, () => processor.RunAsync(cancellationToken));

        if (processor.Resume is { TruncatedBytes: > 0 } resume)
            console.Message($"repaired {settings.Out}: removed a partial last line ({resume.TruncatedBytes} bytes) left by an interrupted run.");
        BatchProgress.WriteSummary(console, processor.Stats, runner.Counters, runner.Description, settings.Out, outcome);
        if (runner.Counters.ExpiredUnpublished > 0)
            console.Message($"{runner.Counters.ExpiredUnpublished} lines were not published: the completion window had ended before their turn. " +
                            "Each has a deadline_exceeded error line; a resumed run skips them (drop those lines to retry them).");

        if (outcome == BatchOutcome.Interrupted)
        {
            if (!settings.Local) await CancelLeftoversAsync(rabbit, batchId);
            console.Message($"interrupted: {processor.Stats.Written} lines written this run. Run the same command again to resume.");
            return ExitCodes.Interrupted;
        }
        if (outcome == BatchOutcome.Cancelled)
        {
            console.Message($"batch {batchId} was cancelled (qw cancel): {processor.Stats.Written} lines written this run; cancelled jobs are not written. Run the same command again to resume.");
            return ExitCodes.Interrupted;
        }
        return processor.Stats.Failures > 0 ? ExitCodes.JobFailed : ExitCodes.Ok;
    }

    /// <summary>
    /// After Ctrl-C: the jobs already published would still run for nobody. One cancel for the batch id stops them
    /// (answered cancelled to a reply queue that is gone); a resumed run publishes them again under a new batch id.
    /// </summary>
    private async Task CancelLeftoversAsync(Messaging.RabbitMqOptions rabbit, string batchId)
    {
        // Not the run's token: it is cancelled already. A short bound of its own: Ctrl-C must not hang.
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(10), time);
        try
        {
            await Amqp.ControlPublisher.PublishCancelAsync(rabbit, new QueueWorker.Contracts.CancelRequest([], batchId), $"qw batch pid {Environment.ProcessId} cancel", bound.Token);
            console.Message($"cancelled batch {batchId} on the workers: its queued and running jobs stop.");
        }
        catch (Exception ex) when (ex is CliException or OperationCanceledException or IOException or RabbitMQ.Client.Exceptions.RabbitMQClientException)
        {
            console.Message($"could not cancel batch {batchId} on the workers ({ex.Message}); run qw cancel {batchId}.");
        }
    }
}
