using System.Text.Json;
using QueueWorker.Contracts;
using QueueWorker.Inference.Grammar;

namespace QueueWorker.Inference;

/// <summary>
/// The one mapping between the message contract and the engine, used by the job pipeline (QueueWorker.Processing)
/// that both the worker and <c>qw batch --local</c> run, so both produce the same results from the same job.
/// </summary>
public static class JobMapping
{
    /// <summary>A validated job as an engine request; absent sampling fields take <see cref="SamplingParams"/>'s defaults.</summary>
    /// <param name="laneRank">The rank of the lane the job came in on (0 = highest), see <see cref="GenerationRequest.LaneRank"/>.</param>
    /// <param name="laneWeight">That lane's weight, 0 = strict lane order, see <see cref="GenerationRequest.LaneWeight"/>.</param>
    public static GenerationRequest ToGeneration(string id, JobRequest job, DateTimeOffset deadline, int laneRank = 0, int laneWeight = 0)
    {
        var defaults = new SamplingParams();
        return new GenerationRequest
        {
            JobId = id,
            Prompt = job.Prompt,
            Messages = job.Messages,
            MaxTokens = job.MaxTokens ?? throw new ArgumentException("A parsed job always has max_tokens.", nameof(job)),
            Stop = job.Stop ?? [],
            TopLogprobs = job.Logprobs == true ? job.TopLogprobs ?? 0 : null,
            Deadline = deadline,
            Grammar = SchemaGrammars.For(job),
            LaneRank = laneRank,
            LaneWeight = laneWeight,
            Priority = job.Priority ?? 0,
            Tenant = job.Tenant,
            Sampling = new SamplingParams
            {
                Temperature = job.Temperature ?? defaults.Temperature,
                TopP = job.TopP ?? defaults.TopP,
                TopK = job.TopK ?? defaults.TopK,
                MinP = job.MinP ?? defaults.MinP,
                RepeatPenalty = job.RepeatPenalty ?? defaults.RepeatPenalty,
                PresencePenalty = job.PresencePenalty ?? defaults.PresencePenalty,
                FrequencyPenalty = job.FrequencyPenalty ?? defaults.FrequencyPenalty,
                LogitBias = job.LogitBias,
                // A job without a seed still gets one, so its result could be reproduced from the log.
#pragma warning disable RS0030 // Random.Shared: this default seed is one of the two sources of randomness (BannedSymbols.txt).
                Seed = job.Seed ?? (uint)Random.Shared.NextInt64(0, uint.MaxValue),
#pragma warning restore RS0030
            },
        };
    }

    /// <summary>A completed result with usage and timings (see the README's definition of each timing).</summary>
    /// <param name="json">The job asked for JSON (<c>response_format</c>): the result carries the text parsed, or a warning when it is not complete JSON.</param>
    /// <param name="user">The job's OpenAI <c>user</c>, echoed for accounting.</param>
    public static JobResult ToCompleted(string id, GenerationResult generated, double? queuedMs, double totalMs, WorkerInfo worker, JsonElement? metadata, bool json = false, string? user = null)
    {
        ArgumentNullException.ThrowIfNull(generated);
        var (parsed, warning) = json ? ParseJson(generated) : (null, null);
        return Completed(id, generated, queuedMs, totalMs, worker, metadata, user) with { Parsed = parsed, Warnings = warning is null ? null : [warning] };
    }

    /// <summary>
    /// The output of a JSON job, parsed. Sampling followed the grammar, so output that ended on its own is complete; one
    /// cut short (max_tokens, a stop string, the deadline) usually is not, and is reported as such rather than as data.
    /// </summary>
    public static (JsonElement? Parsed, string? Warning) ParseJson(GenerationResult generated)
    {
        ArgumentNullException.ThrowIfNull(generated);
        try
        {
            using var doc = JsonDocument.Parse(generated.Text, new JsonDocumentOptions { MaxDepth = 256 });
            var parsed = doc.RootElement.Clone();
            // A "\ud800" escape is JSON text but no Unicode string: it could not be written back into the result.
            return JobSerializer.IsWritable(parsed)
                ? (parsed, null)
                : (null, "response_format: the output escapes a lone UTF-16 surrogate (\\uD800-\\uDFFF); \"parsed\" is omitted and \"text\" holds the output.");
        }
        catch (JsonException)
        {
            var why = generated.FinishReason switch
            {
                FinishReasons.Length => "max_tokens was reached before the JSON was complete",
                FinishReasons.Timeout => "the deadline passed before the JSON was complete",
                FinishReasons.StopSequence => "a stop string cut the JSON short",
                _ => "the output does not parse as JSON",
            };
            return (null, $"response_format: {why} (finish_reason {generated.FinishReason}); \"parsed\" is omitted and \"text\" holds the partial output.");
        }
    }

    private static JobResult Completed(string id, GenerationResult generated, double? queuedMs, double totalMs, WorkerInfo worker, JsonElement? metadata, string? user) => new()
    {
        User = user,
        Logprobs = generated.Logprobs is { } logprobs ? new Logprobs(logprobs) : null,
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
            CpuMs = Round(generated.CpuMs),
        },
        Worker = worker,
        Metadata = metadata,
    };

    /// <summary>The failed result's error for a job the engine refused.</summary>
    public static JobError ToError(InferenceException ex) =>
        new(ex.Code, ex.Message, ex.Field ?? (ex.Code == ErrorCodes.PromptTooLong ? "prompt" : null));

    public static double Round(double ms) => Math.Round(ms, 3);

    private static double Rate(int tokens, double ms) => tokens <= 0 || ms <= 0 ? 0 : Math.Round(tokens * 1000.0 / ms, 2);
}
