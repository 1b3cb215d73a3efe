using Spectre.Console.Cli;

namespace QueueWorker.Cli;

/// <summary>Every qw command, one line each (issue 5: submit, batch; issue 3/7: model, bench).</summary>
internal static class CommandRegistry
{
    public static void Register(IConfigurator config)
    {
    }
}
