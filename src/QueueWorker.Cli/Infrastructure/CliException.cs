namespace QueueWorker.Cli.Infrastructure;

/// <summary>Process exit codes of qw (documented in the README, "Producers and batches").</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>The job failed, or the batch finished with error lines.</summary>
    public const int JobFailed = 1;
    /// <summary>Bad flags, configuration or files.</summary>
    public const int Usage = 2;
    /// <summary>The broker cannot be reached, or no worker has declared the jobs queue.</summary>
    public const int Broker = 3;
    /// <summary>No result within <c>--timeout</c>.</summary>
    public const int Timeout = 4;
    /// <summary>The jobs queue stayed full (<c>RabbitMq:MaxQueuedJobs</c>: the broker refused the publish) for longer than <c>--full-timeout</c>.</summary>
    public const int QueueFull = 5;
    /// <summary>Interrupted (Ctrl-C, SIGTERM); a batch resumes where it stopped.</summary>
    public const int Interrupted = 130;
}

/// <summary>A failure the user can fix: its message is printed as one line and qw exits with <see cref="ExitCode"/>.</summary>
internal sealed class CliException(string message, int exitCode = ExitCodes.Usage, Exception? inner = null) : Exception(message, inner)
{
    public int ExitCode { get; } = exitCode;
}
