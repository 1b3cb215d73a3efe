using System.Text.Json;
using QueueWorker.Contracts;

namespace QueueWorker.Inference;

/// <summary>
/// The one mapping between the message contract and the engine, used by the job pipeline (QueueWorker.Processing)
/// that both the worker and <c>qw batch --local</c> run, so both produce the same results from the same job.
/// </summary>
public static class JobMapping
{
    /// <summary>A validated job as an engine request; absent sampling fields take <see cref="SamplingParams"/>'s defaults.</summary>
    /// <param name="laneRank">The rank of the lane the job came in on (0 = highest), see <see cref="GenerationRequest.LaneRank"/>.</param>
    public static GenerationRequest ToGeneration(string id, JobRequest job, DateTimeOffset deadline, int laneRank = 0)
    {
        var defaults = new SamplingParams();
        return new GenerationRequest
        {
            JobId = id,
            Prompt = job.Prompt,
            Messages = job.Messages,
            MaxTokens = job.MaxTokens ?? throw new ArgumentException("A parsed job always has max_tokens.", nameof(job)),
            Stop = job.Stop ?? [],
            Deadline = deadline,
            LaneRank = laneRank,
            Priority = job.Priority ?? 0,
            Tenant = job.Tenant,
            Sampling = new SamplingParams
            {
                Temperature = job.Temperature ?? defaults.Temperature,
                TopP = job.TopP ?? defaults.TopP,
                TopK = job.TopK ?? defaults.TopK,
                MinP = job.MinP ?? defaults.MinP,
                RepeatPenalty = job.RepeatPenalty ?? defaults.RepeatPenalty,
                // A job without a seed still gets one, so its result could be reproduced from the log.
#pragma warning disable RS0030 // Random.Shared: this default seed is one of the two sources of randomness (BannedSymbols.txt).
                Seed = job.Seed ?? (uint)Random.Shared.NextInt64(0, uint.MaxValue),
#pragma warning restore RS0030
            },
        };
    }

    /// <summary>A completed result with usage and timings (see the README's definition of each timing).</summary>
    public static JobResult ToCompleted(string id, GenerationResult generated, double? queuedMs, double totalMs, WorkerInfo worker, JsonElement? metadata) => new()
    {
        Id = id,
        Status = JobStatus.Completed,
        Text = generated.Text,
        FinishReason = generated.FinishReason,
        Usage = new Usage(generated.PromptTokens, generated.CompletionTokens, generated.CachedTokens),
        Timings = new Timings
        {
            QueuedMs = queuedMs is { } q ? Round(q) : null,
            PromptMs = Round(generated.PromptMs),
            PromptTokensPerS = Rate(generated.PromptTokens - generated.CachedTokens, generated.PromptMs),
            FirstTokenMs = Round(generated.FirstTokenMs),
            GenerationMs = Round(generated.GenerationMs),
            // The first token comes from prefill; the rest are decode steps.
            TokensPerS = Rate(generated.CompletionTokens - 1, generated.GenerationMs),
            TotalMs = Round(totalMs),
        },
        Worker = worker,
        Metadata = metadata,
    };

    /// <summary>The failed result's error for a job the engine refused.</summary>
    public static JobError ToError(InferenceException ex) =>
        new(ex.Code, ex.Message, ex.Code == ErrorCodes.PromptTooLong ? "prompt" : null);

    public static double Round(double ms) => Math.Round(ms, 3);

    private static double Rate(int tokens, double ms) => tokens <= 0 || ms <= 0 ? 0 : Math.Round(tokens * 1000.0 / ms, 2);
}
