using Microsoft.Extensions.Options;
using QueueWorker.Inference;
using QueueWorker.Messaging;

namespace QueueWorker.Hosting;

/// <summary>
/// Stops the worker when it can no longer do its work and only a restart helps: the engine crashed, the engine made no
/// progress for <c>Inference:StallSeconds</c> while jobs waited, or the broker link stayed lost for
/// <c>RabbitMq:MaxRecoverySeconds</c>. Without it such a worker looks alive while it holds or bounces jobs. Stopping
/// the host stops consumption and requeues what is held; the exit code tells the orchestrator why, and liveness fails
/// from the moment the condition is seen (<see cref="WorkerHealthChecks"/> reads <see cref="Verdict"/>).
/// </summary>
public sealed partial class WorkerWatchdog(
    IInferenceEngine engine,
    IBrokerStatus broker,
    IOptions<InferenceOptions> inference,
    IOptions<RabbitMqOptions> rabbit,
    IHostApplicationLifetime lifetime,
    TimeProvider time,
    ILogger<WorkerWatchdog> logger) : BackgroundService
{
    public const int EngineCrashedExitCode = 3;
    public const int EngineStalledExitCode = 4;
    public const int BrokerLostExitCode = 5;

    /// <summary>How often the worker is looked at: a crash costs at most this long before the host stops.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);

    private readonly TimeSpan _stallLimit = TimeSpan.FromSeconds(inference.Value.StallSeconds);
    private readonly TimeSpan _recoveryLimit = TimeSpan.FromSeconds(rabbit.Value.MaxRecoverySeconds);
    private long _lastSteps = -1;
    private DateTimeOffset _progressSince;
    private bool _wasConnected;
    private DateTimeOffset _connectedOrWaitingSince;
    private volatile string? _verdict;
    private DateTimeOffset _consumingOrNotExpectedSince;
    private DateTimeOffset? _consumerWarnedAt;

    /// <summary>
    /// How long the consumer may be down while the broker is connected and the model loaded before the worker says so
    /// (then once a minute): readiness only says "not running", the warning says which condition fails and where the
    /// supervisor is.
    /// </summary>
    public static readonly TimeSpan ConsumerDownWarning = TimeSpan.FromSeconds(30);

    /// <summary>Why the worker must be restarted; null while it is fine.</summary>
    public string? Verdict => _verdict;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _progressSince = _connectedOrWaitingSince = _consumingOrNotExpectedSince = time.GetUtcNow();
        using var timer = new PeriodicTimer(Interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                var now = time.GetUtcNow();
                if (ConsumerDown(now) is { } down)
                    LogConsumerDown(down.TotalSeconds, broker.ConsumerState);
                if (Inspect(now) is not { } failure) continue;
                _verdict = failure.Reason;
                LogGivingUp(failure.Reason, failure.ExitCode);
                Environment.ExitCode = failure.ExitCode;
                lifetime.StopApplication();
                return;
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The host is stopping for another reason.
        }
    }

    /// <summary>One look at the engine and the broker link; the first condition that calls for a restart, if any.</summary>
    internal (string Reason, int ExitCode)? Inspect(DateTimeOffset now)
    {
        if (engine.Fault is { } fault)
            return ($"the inference engine crashed ({fault.GetType().Name}: {fault.Message})", EngineCrashedExitCode);

        // Progress is a step count that moves; an idle engine (nothing waiting or running) is not stalled.
        var stats = engine.Stats;
        var steps = stats.Steps;
        if (steps != _lastSteps || (stats.BusySlots == 0 && stats.WaitingJobs == 0))
        {
            _lastSteps = steps;
            _progressSince = now;
        }
        else if (_stallLimit > TimeSpan.Zero && now - _progressSince >= _stallLimit)
        {
            return ($"the inference engine made no progress for {(now - _progressSince).TotalSeconds:F0} s with jobs waiting (Inference:StallSeconds = {_stallLimit.TotalSeconds:F0})",
                EngineStalledExitCode);
        }

        // Only a link that was up and is lost counts: before the first connect the worker waits for the broker.
        if (broker.IsConnected || !_wasConnected)
        {
            _wasConnected |= broker.IsConnected;
            _connectedOrWaitingSince = now;
        }
        else if (_recoveryLimit > TimeSpan.Zero && now - _connectedOrWaitingSince >= _recoveryLimit)
        {
            return ($"the broker connection has been lost for {(now - _connectedOrWaitingSince).TotalSeconds:F0} s (RabbitMq:MaxRecoverySeconds = {_recoveryLimit.TotalSeconds:F0})",
                BrokerLostExitCode);
        }
        return null;
    }

    /// <summary>How long the consumer has been down with the broker connected and the model loaded, when that is to be logged now.</summary>
    internal TimeSpan? ConsumerDown(DateTimeOffset now)
    {
        if (broker.IsConsuming || !broker.IsConnected || !engine.IsReady)
        {
            _consumingOrNotExpectedSince = now;
            _consumerWarnedAt = null;
            return null;
        }
        var down = now - _consumingOrNotExpectedSince;
        if (down < ConsumerDownWarning || (_consumerWarnedAt is { } warned && now - warned < TimeSpan.FromMinutes(1)))
            return null;
        _consumerWarnedAt = now;
        return down;
    }

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "The jobs consumer has not been running for {Seconds:F0} s though the broker is connected and the model loaded: {State}")]
    private partial void LogConsumerDown(double seconds, string state);

    [LoggerMessage(EventId = 4001, Level = LogLevel.Critical, Message = "Stopping the worker: {Reason}; jobs held are requeued, exit code {ExitCode}")]
    private partial void LogGivingUp(string reason, int exitCode);
}
