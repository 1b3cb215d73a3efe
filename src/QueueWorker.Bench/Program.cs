using QueueWorker.Bench;
using QueueWorker.Cli.Infrastructure;

// `qwbench`: the benchmark (the default command) and the model tools; qw's CLI infrastructure runs it.
return await CliApp.MainAsync(stop =>
    BenchApp.RunAsync(args, CliConsole.FromProcess() with { Name = "qwbench" }, TimeProvider.System, stop));
