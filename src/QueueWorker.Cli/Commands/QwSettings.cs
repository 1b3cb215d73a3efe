using System.ComponentModel;
using Spectre.Console.Cli;

namespace QueueWorker.Cli.Commands;

/// <summary>Flags every job-running command shares: where jobs run and configuration overrides.</summary>
internal class QwSettings : CommandSettings
{
    [CommandOption("--uri <URI>")]
    [Description("RabbitMQ URI; overrides RabbitMq:Uri (appsettings.json, env RabbitMq__Uri).")]
    public string? Uri { get; set; }

    [CommandOption("--set <KEY=VALUE>")]
    [Description("Override any configuration key, e.g. --set RabbitMq:JobsQueue=my.jobs or --set Model:Path=model.gguf. Repeatable.")]
    public string[] Set { get; set; } = [];

    [CommandOption("--local")]
    [Description("No broker: run the engine in this process (Model:*, Inference:* configure it).")]
    public bool Local { get; set; }

    [CommandOption("--lane <LANE>")]
    [Description("Priority lane (one of the workers' RabbitMq:Lanes): jobs go to the queue {RabbitMq:JobsQueue}.{LANE}.")]
    public string? Lane { get; set; }

    [CommandOption("-v|--verbose")]
    [Description("Log connection and engine events to stderr.")]
    public bool Verbose { get; set; }
}
