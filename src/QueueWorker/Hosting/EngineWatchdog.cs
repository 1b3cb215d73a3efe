using QueueWorker.Inference;

namespace QueueWorker.Hosting;

/// <summary>
/// Stops the worker when its engine has crashed. Without it a crashed engine leaves the consumer taking jobs and
/// requeueing each at once, draining the backlog through the delivery limit, while the process looks alive. Stopping
/// the host stops consumption and requeues what is held; the exit code (<see cref="ExitCode"/>) makes an orchestrator
/// restart the worker. Liveness fails at the same moment (<see cref="WorkerHealthChecks"/>).
/// </summary>
public sealed partial class EngineWatchdog(IInferenceEngine engine, IHostApplicationLifetime lifetime, TimeProvider time, ILogger<EngineWatchdog> logger)
    : BackgroundService
{
    /// <summary>The process exit code after an engine crash.</summary>
    public const int ExitCode = 3;

    /// <summary>How often the engine is looked at: a crash costs at most this long of requeued deliveries.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                if (engine.Fault is not { } fault) continue;
                LogEngineCrashed(fault.GetType().Name, fault.Message, ExitCode);
                Environment.ExitCode = ExitCode;
                lifetime.StopApplication();
                return;
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The host is stopping for another reason.
        }
    }

    [LoggerMessage(EventId = 4001, Level = LogLevel.Critical, Message = "The inference engine crashed ({ExceptionType}: {Reason}): stopping the worker; jobs held are requeued, exit code {ExitCode}")]
    private partial void LogEngineCrashed(string exceptionType, string reason, int exitCode);
}
