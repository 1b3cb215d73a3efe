using QueueWorker.Cli.Commands;
using Spectre.Console.Cli;

namespace QueueWorker.Cli;

/// <summary>Every qw command, one line each (issue 5: submit, batch; issue 3/7: model, bench).</summary>
internal static class CommandRegistry
{
    public static void Register(IConfigurator config)
    {
        config.AddCommand<Commands.SubmitCommand>("submit")
            .WithDescription("Publish one job, wait for its result, print the text and its timings.")
            .WithExample("submit", "\"Once upon a time\"", "--temperature", "0", "--max-tokens", "64")
            .WithExample("submit", "--messages", "chat.json", "--json");
        config.AddCommand<Commands.BatchCommand>("batch")
            .WithDescription("Run a JSONL file of requests (OpenAI Batch API format) and write one result line per custom_id; resumable.")
            .WithExample("batch", "samples/batch.jsonl", "--out", "results.jsonl")
            .WithExample("batch", "samples/batch.jsonl", "--out", "results.jsonl", "--local");
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
