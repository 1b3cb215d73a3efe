using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using QueueWorker.Cli.Amqp;
using QueueWorker.Cli.Infrastructure;
using QueueWorker.Cli.Local;
using QueueWorker.Messaging;

namespace QueueWorker.Cli.Running;

internal static class RunnerFactory
{
    /// <summary>Creates and starts the runner the flags ask for: the broker, or <c>--local</c> the engine in-process.</summary>
    public static async Task<IJobRunner> StartAsync(
        bool local, string verb, IConfiguration configuration, RabbitMqOptions rabbit,
        CliConsole console, CliLoggerProvider logs, LogLevel level, TimeProvider time, CancellationToken cancellationToken, TimeSpan? queueFullTimeout = null)
    {
        IJobRunner runner = local
            ? new LocalJobRunner(configuration, logs, level, time)
            // The connection name carries the queue, so an operator (or a test) can find qw's connection.
            : new BrokerJobRunner(rabbit, $"qw {verb} pid {Environment.ProcessId} -> {rabbit.JobsQueue}", time, logs.CreateLogger(typeof(BrokerJobRunner).FullName!))
            {
                QueueFullTimeout = queueFullTimeout,
            };
        try
        {
            await runner.StartAsync(cancellationToken);
        }
        catch
        {
            await runner.DisposeAsync();
            throw;
        }
        if (runner is BrokerJobRunner { ConsumerCount: 0 })
            console.Message($"warning: no worker is consuming {rabbit.JobsQueue} right now; jobs wait in the queue until one starts.");
        return runner;
    }
}
