using Spectre.Console.Cli;

// `qw`: the producers' and batch users' tool. Each command lives in Commands/ and registers here.
var app = new CommandApp();
app.Configure(config =>
{
    config.SetApplicationName("qw");
    config.PropagateExceptions();
    QueueWorker.Cli.CommandRegistry.Register(config);
});
return await app.RunAsync(args);
