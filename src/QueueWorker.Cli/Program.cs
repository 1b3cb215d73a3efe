using Spectre.Console;
using Spectre.Console.Cli;

// `qw`: the producers' and batch users' tool. Each command lives in Commands/ and registers here.
var app = new CommandApp();
app.Configure(config =>
{
    config.SetApplicationName("qw");
    config.PropagateExceptions();
    QueueWorker.Cli.CommandRegistry.Register(config);
});
try
{
    return await app.RunAsync(args);
}
catch (CommandAppException e)
{
    // Bad arguments (parse or settings validation): the message names the option; no stack trace.
    AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
    return 2;
}
