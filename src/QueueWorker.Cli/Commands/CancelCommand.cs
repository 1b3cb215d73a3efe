using System.ComponentModel;
using QueueWorker.Cli.Amqp;
using QueueWorker.Cli.Infrastructure;
using QueueWorker.Contracts;
using Spectre.Console.Cli;

namespace QueueWorker.Cli.Commands;

/// <summary>
/// <c>qw cancel BATCH_ID</c> or <c>qw cancel --job ID …</c>: one control message to every worker. Jobs running or waiting
/// in a worker stop and are answered <c>cancelled</c>; jobs still queued are answered <c>cancelled</c> when they arrive
/// (within <c>RabbitMq:CancelMemoryMinutes</c>).
/// </summary>
internal sealed class CancelCommand(CliConsole console) : AsyncCommand<CancelCommand.Settings>
{
    internal sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "[BATCH_ID]")]
        [Description("The batch to cancel (qw batch prints its batch id).")]
        public string? BatchId { get; set; }

        [CommandOption("--job <ID>")]
        [Description("A job id to cancel. Repeatable.")]
        public string[] Jobs { get; set; } = [];

        [CommandOption("--uri <URI>")]
        [Description("RabbitMQ URI; overrides RabbitMq:Uri (appsettings.json, env RabbitMq__Uri).")]
        public string? Uri { get; set; }

        [CommandOption("--set <KEY=VALUE>")]
        [Description("Override any configuration key, e.g. --set RabbitMq:ControlExchange=my.control. Repeatable.")]
        public string[] Set { get; set; } = [];
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(settings.BatchId) && settings.Jobs.Length == 0)
            throw new CliException("give a BATCH_ID or at least one --job ID to cancel.");
        if (settings.Jobs.Any(string.IsNullOrEmpty))
            throw new CliException("--job must not be empty.");
        if (settings.Jobs.Length > CancelRequest.MaxJobIds)
            throw new CliException($"at most {CancelRequest.MaxJobIds} --job ids in one cancel; cancel a batch by its id.");
        var configuration = CliConfiguration.Build(settings.Set, settings.Uri);
        var rabbit = CliConfiguration.RabbitMq(configuration);
        var request = new CancelRequest(settings.Jobs, string.IsNullOrWhiteSpace(settings.BatchId) ? null : settings.BatchId);
        await ControlPublisher.PublishCancelAsync(rabbit, request, $"qw cancel pid {Environment.ProcessId}", cancellationToken);
        console.Message(request.BatchId is { } b
            ? $"cancel sent for batch {b}{(request.JobIds.Count > 0 ? $" and {request.JobIds.Count} job id(s)" : "")}: each of its jobs is answered cancelled."
            : $"cancel sent for {request.JobIds.Count} job id(s): each is answered cancelled.");
        return ExitCodes.Ok;
    }
}
