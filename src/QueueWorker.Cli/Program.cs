using QueueWorker.Cli;
using QueueWorker.Cli.Infrastructure;

// `qw`: the producers' and batch users' tool. Each command lives in Commands/ and registers in CommandRegistry.
return await CliApp.MainAsync(stop => QwApp.RunAsync(args, CliConsole.FromProcess(), TimeProvider.System, stop));
