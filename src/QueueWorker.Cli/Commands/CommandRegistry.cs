using Spectre.Console.Cli;

namespace QueueWorker.Cli;

/// <summary>Every qw command, one line each: what producers need. The benchmark and model tools are qwbench (src/QueueWorker.Bench).</summary>
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
        config.AddCommand<Commands.CancelCommand>("cancel")
            .WithDescription("Cancel a batch (by its batch id) or jobs (--job): every worker answers them cancelled.")
            .WithExample("cancel", "batch-20261201-223000-1a2b3c")
            .WithExample("cancel", "--job", "job-42");
    }
}
