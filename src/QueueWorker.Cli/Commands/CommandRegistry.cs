using QueueWorker.Cli.Commands;
using Spectre.Console.Cli;

namespace QueueWorker.Cli;

/// <summary>Every qw command, one line each (issue 5: submit, batch; issue 3/7: model, bench).</summary>
internal static class CommandRegistry
{
    public static void Register(IConfigurator config)
    {
        config.AddBranch("model", model =>
        {
            model.SetDescription("Model tools.");
            model.AddCommand<ModelSynthCommand>("synth").WithDescription(ModelSynthCommand.Description)
                .WithExample("model", "synth", "--preset", "tinyllama-1.1b", "--quant", "q4_0", "--out", "models/tinyllama-synth-q4_0.gguf");
        });
        config.AddCommand<BenchCommand>("bench").WithDescription(BenchCommand.Description)
            .WithExample("bench", "--quick", "--out", "bench-results")
            .WithExample("bench", "--model", "my-model.gguf", "--sections", "threads,batch");
    }
}
