using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using QueueWorker.Cli.Infrastructure;
using QueueWorker.Cli.Running;
using QueueWorker.Contracts;
using QueueWorker.Inference;

namespace QueueWorker.Cli.Local;

/// <summary>
/// <c>--local</c>: no broker. The worker's engine runs inside qw (a Generic Host with
/// <c>AddInference()</c>, configured by the same <c>Model:*</c> and <c>Inference:*</c> keys), and each
/// job becomes the same <see cref="JobResult"/> the worker would publish, so a batch's output has
/// the same shape either way. Concurrent calls are batched by the engine into its slots.
/// </summary>
internal sealed class LocalJobRunner : IJobRunner
{
    private readonly IConfiguration? _configuration;
    private readonly ILoggerProvider? _logs;
    private readonly LogLevel _logLevel;
    private readonly TimeProvider _time;
    private IHost? _host;
    private bool _hostStarted;
    private IInferenceEngine? _engine;
    private InferenceOptions _options;
    private readonly string _workerId = "qw-local-" + Environment.MachineName.ToLowerInvariant();
    private static readonly string Version = typeof(LocalJobRunner).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    /// <param name="logs">Where the engine logs: qw's own lines on stderr (above a live progress bar, not through it).</param>
    public LocalJobRunner(IConfiguration configuration, ILoggerProvider logs, LogLevel logLevel, TimeProvider time)
    {
        _configuration = configuration;
        _logs = logs;
        _logLevel = logLevel;
        _time = time;
        _options = new InferenceOptions();
    }

    /// <summary>Runs on an engine the caller owns (tests, or a host that already has one).</summary>
    public LocalJobRunner(IInferenceEngine engine, InferenceOptions options, TimeProvider time)
    {
        _engine = engine;
        _options = options;
        _time = time;
        _logLevel = LogLevel.Warning;
    }

    public string Description => _engine?.Info is { } info ? $"the local engine ({info.Model}, {info.Threads} threads, {info.Slots} slots)" : "the local engine";

    public RunnerCounters Counters { get; } = new();

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_engine is not null) return;

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            DisableDefaults = true,
            ContentRootPath = AppContext.BaseDirectory,
            Configuration = new ConfigurationManager(),
        });
        builder.Configuration.AddConfiguration(_configuration!);
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(_logLevel);
        builder.Logging.AddProvider(_logs!);
        // The host's own "failed to start" repeats the message qw prints anyway.
        if (_logLevel > LogLevel.Debug) builder.Logging.AddFilter("Microsoft.Extensions.Hosting", LogLevel.None);
        builder.AddInference();

        _host = builder.Build();
        try
        {
            await _host.StartAsync(cancellationToken);
            _hostStarted = true;
        }
        catch (OptionsValidationException ex)
        {
            throw new CliException("configuration error: " + string.Join("; ", ex.Failures), ExitCodes.Usage, ex);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or InvalidOperationException or IOException)
        {
            throw new CliException("the local engine cannot start: " + ex.Message, ExitCodes.Usage, ex);
        }

        _engine = _host.Services.GetRequiredService<IInferenceEngine>();
        _options = _host.Services.GetRequiredService<IOptions<InferenceOptions>>().Value;
        var stopping = _host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        // The model may load in the background: wait for it, or for the host giving up.
        while (!_engine.IsReady)
        {
            if (stopping.IsCancellationRequested)
                throw new CliException("the local engine stopped before the model was loaded (see the log above).", ExitCodes.Usage);
            await Task.Delay(TimeSpan.FromMilliseconds(50), _time, cancellationToken);
        }
    }

    public async Task<JobResult> RunAsync(JobSubmission submission, CancellationToken cancellationToken)
    {
        var engine = _engine ?? throw new InvalidOperationException("StartAsync first.");
        var job = submission.Job;
        var started = _time.GetTimestamp();
        var now = _time.GetUtcNow();
        var deadline = now.AddSeconds(_options.MaxJobSeconds);
        if (job.TimeoutMs is { } timeout && now.AddMilliseconds(timeout) < deadline) deadline = now.AddMilliseconds(timeout);

        GenerationResult generated;
        try
        {
            generated = await engine.GenerateAsync(JobMapping.ToGeneration(submission.Id, job, deadline), cancellationToken);
        }
        catch (InferenceException ex)
        {
            return JobResult.Failed(submission.Id, JobMapping.ToError(ex), Worker(), job.Metadata,
                new Timings { TotalMs = JobMapping.Round(_time.GetElapsedTime(started).TotalMilliseconds) });
        }
        // In-process there is no broker queue: queued_ms is the wait for a free slot.
        return JobMapping.ToCompleted(submission.Id, generated, generated.WaitMs, _time.GetElapsedTime(started).TotalMilliseconds, Worker(), job.Metadata);
    }

    private WorkerInfo Worker()
    {
        var info = _engine?.Info;
        return new WorkerInfo(_workerId, info?.Model ?? "", info?.Threads ?? 0, info?.ContextSize ?? 0, info?.Slots ?? 0, Version);
    }

    public async ValueTask DisposeAsync()
    {
        if (_host is null) return;
        try
        {
            // A host whose start failed cannot be stopped (it throws); disposing it is enough.
            if (_hostStarted) await _host.StopAsync(TimeSpan.FromSeconds(10));
        }
        finally
        {
            _host.Dispose();
        }
    }
}
