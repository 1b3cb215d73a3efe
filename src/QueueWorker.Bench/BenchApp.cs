using QueueWorker.Bench.Commands;
using QueueWorker.Cli.Infrastructure;
using Spectre.Console.Cli;

namespace QueueWorker.Bench;

/// <summary>The qwbench command line: the benchmark is the default command, so its flags follow the tool's name directly.</summary>
internal static class BenchApp
{
    public static Task<int> RunAsync(string[] args, CliConsole console, TimeProvider time, CancellationToken cancellationToken) =>
        CliApp.RunAsync("qwbench", Register, args, console, time, cancellationToken);

    private static void Register(CommandApp app)
    {
        app.SetDefaultCommand<BenchCommand>().WithDescription(BenchCommand.Description);
        app.Configure(config =>
        {
            config.AddExample("--quick", "--out", "bench-results");
            config.AddExample("--model", "my-model.gguf", "--sections", "threads,batch");
            config.AddCommand<ClusterCommand>("cluster").WithDescription(ClusterCommand.Description)
                .WithExample("cluster", "--broker-uri", "amqp://guest:guest@127.0.0.1:5701/,amqp://guest:guest@127.0.0.1:5702/,amqp://guest:guest@127.0.0.1:5703/");
            config.AddCommand<RawLoopCommand>("raw-loop").WithDescription(RawLoopCommand.Description).IsHidden();
            config.AddBranch("model", model =>
            {
                model.SetDescription("Model tools.");
                model.AddCommand<ModelSynthCommand>("synth").WithDescription(ModelSynthCommand.Description)
                    .WithExample("model", "synth", "--preset", "tinyllama-1.1b", "--quant", "q4_0", "--out", "models/tinyllama-synth-q4_0.gguf");
            });
        });
    }
}
