using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using QueueWorker.Cli.Infrastructure;
using QueueWorker.Cli.Running;
using QueueWorker.Contracts;
using QueueWorker.Inference;
using QueueWorker.Processing;

namespace QueueWorker.Cli.Local;

/// <summary>
/// <c>--local</c>: no broker. The worker's engine runs inside qw (<see cref="InProcessEngineHost"/>, configured by the
/// same <c>Model:*</c> and <c>Inference:*</c> keys), and each job goes through the worker's own
/// <see cref="JobPipeline"/>, so a batch's output is the same result either way. Concurrent calls are batched by
/// the engine into its slots.
/// </summary>
internal sealed class LocalJobRunner : IJobRunner
{
    private readonly IConfiguration? _configuration;
    private readonly EngineHostLogging _logging = EngineHostLogging.None;
    private readonly TimeProvider _time;
    private InProcessEngineHost? _host;
    private IInferenceEngine? _engine;
    private JobPipeline? _pipeline;

    /// <param name="logs">Where the engine logs: qw's own lines on stderr (above a live progress bar, not through it).</param>
    public LocalJobRunner(IConfiguration configuration, ILoggerProvider logs, LogLevel logLevel, TimeProvider time)
    {
        _configuration = configuration;
        _logging = new EngineHostLogging(logs, logLevel);
        _time = time;
    }

    /// <summary>Runs on an engine the caller owns (tests, or a host that already has one).</summary>
    public LocalJobRunner(IInferenceEngine engine, InferenceOptions options, TimeProvider time)
    {
        _time = time;
        Use(engine, options);
    }

    public string Description => _engine?.Info is { } info ? $"the local engine ({info.Model}, {info.Threads} threads, {info.Slots} slots)" : "the local engine";

    public RunnerCounters Counters { get; } = new();

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_pipeline is not null) return;
        try
        {
            _host = await InProcessEngineHost.StartAsync(_configuration!, _logging, cancellationToken);
        }
        catch (OptionsValidationException ex)
        {
            throw new CliException("configuration error: " + string.Join("; ", ex.Failures), ExitCodes.Usage, ex);
        }
        catch (EngineStoppedException ex)
        {
            throw new CliException("the local engine stopped before the model was loaded (see the log above).", ExitCodes.Usage, ex);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or InvalidOperationException or IOException)
        {
            throw new CliException("the local engine cannot start: " + ex.Message, ExitCodes.Usage, ex);
        }
        Use(_host.Engine, _host.Options, _configuration![$"{ModelOptions.Section}:{nameof(ModelOptions.Name)}"]);
    }

    /// <summary>
    /// Runs the job through the worker's pipeline. In process there is no queue: the job is published and received
    /// now, so the deadline rule runs from now and <c>queued_ms</c> is the wait for a free slot.
    /// </summary>
    public Task<JobResult> RunAsync(JobSubmission submission, CancellationToken cancellationToken)
    {
        var pipeline = _pipeline ?? throw new InvalidOperationException("StartAsync first.");
        var now = _time.GetUtcNow();
        var arrival = JobArrival.InProcess(now);
        if (submission.Expiry is { } expiry)
        {
            // As through the broker: out of time before its turn, answered without running; else the time left is its
            // expiration, which the pipeline's deadline rule honours (while it waits for a slot and while it runs).
            if (expiry.HasPassed(now))
            {
                Counters.AddExpiredUnpublished();
                return Task.FromResult(expiry.NotPublished(submission.Id));
            }
            arrival = arrival with { Expiration = expiry.At - now };
        }
        return pipeline.RunAsync(submission.Job, arrival, cancellationToken);
    }

    private void Use(IInferenceEngine engine, InferenceOptions options, string? servedModel = null)
    {
        _engine = engine;
        // A silent logger: qw reports each failed job in its output and summary; a log line per job would tear the progress bar.
        _pipeline = new JobPipeline(engine, options, WorkerIdentity.ForLocal(), NullJobObserver.Instance, _time, NullLogger<JobPipeline>.Instance, servedModel);
    }

    public async ValueTask DisposeAsync()
    {
        if (_host is not null) await _host.DisposeAsync();
    }
}
