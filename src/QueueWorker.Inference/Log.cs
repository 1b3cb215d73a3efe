using Microsoft.Extensions.Logging;

namespace QueueWorker.Inference;

/// <summary>Engine log messages (event ids 1000-1099).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1000, Level = LogLevel.Information, Message = "Model {ModelPath} ({Source})")]
    public static partial void ModelResolved(ILogger logger, string modelPath, string source);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Threads: {Threads} generation, {BatchThreads} prompt. Why: {Reason}")]
    public static partial void CpuBudgetChosen(ILogger logger, int threads, int batchThreads, string reason);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Loading the model with load mode {LoadMode} (Model:UseMmap = {UseMmap})")]
    public static partial void Loading(ILogger logger, string loadMode, bool useMmap);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Information,
        Message = "Model loaded in {ElapsedMs:F0} ms: {Description}, {Parameters} parameters, {SizeBytes} bytes, {Layers} layers, vocabulary {Vocab}, trained context {TrainContext}")]
    public static partial void ModelLoaded(ILogger logger, double elapsedMs, string description, ulong parameters, ulong sizeBytes, int layers, int vocab, int trainContext);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Information,
        Message = "Context: {Slots} slots share {ContextSize} KV cells (Inference:ContextSize; llama.cpp allocated {ActualContext}), batch {BatchSize} tokens per step, unified KV cache, prefix reuse {PrefixReuse}")]
    public static partial void ContextCreated(ILogger logger, int slots, int contextSize, uint actualContext, uint batchSize, bool prefixReuse);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Information, Message = "Chat messages are rendered with {ChatFormat}")]
    public static partial void ChatFormatChosen(ILogger logger, string chatFormat);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Warning, Message = "{Warning}")]
    public static partial void ChatTemplateWarning(ILogger logger, string warning);

    [LoggerMessage(EventId = 1007, Level = LogLevel.Information, Message = "Scheduler started")]
    public static partial void SchedulerStarted(ILogger logger);

    [LoggerMessage(EventId = 1008, Level = LogLevel.Information, Message = "Scheduler stopped; {Jobs} unfinished jobs were cancelled")]
    public static partial void SchedulerStopped(ILogger logger, int jobs);

    [LoggerMessage(EventId = 1009, Level = LogLevel.Critical, Message = "The scheduler failed; every job in it fails with engine_error")]
    public static partial void SchedulerCrashed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1010, Level = LogLevel.Error, Message = "llama_decode returned {Result} for a batch of {Tokens} tokens; failing its {Jobs} jobs")]
    public static partial void DecodeFailed(ILogger logger, string result, int tokens, int jobs);

    [LoggerMessage(EventId = 1011, Level = LogLevel.Debug,
        Message = "Job {JobId} admitted to slot {Slot}: {PromptTokens} prompt tokens, {Reused} reused from slot {Source}, waited {WaitMs:F1} ms")]
    public static partial void JobAdmitted(ILogger logger, string jobId, int slot, int promptTokens, int reused, int source, double waitMs);

    [LoggerMessage(EventId = 1012, Level = LogLevel.Debug,
        Message = "Job {JobId} finished in slot {Slot}: {FinishReason}, {CompletionTokens} tokens, prompt {PromptMs:F1} ms, generation {GenerationMs:F1} ms")]
    public static partial void JobFinished(ILogger logger, string jobId, int slot, string finishReason, int completionTokens, double promptMs, double generationMs);

    [LoggerMessage(EventId = 1013, Level = LogLevel.Warning, Message = "The OnText callback of job {JobId} threw; its text is still collected")]
    public static partial void OnTextFailed(ILogger logger, string jobId, Exception exception);

    [LoggerMessage(EventId = 1014, Message = "llama.cpp: {Message}")]
    public static partial void Native(ILogger logger, LogLevel level, string message);

    [LoggerMessage(EventId = 1016, Level = LogLevel.Information, Message = "Warm-up decode took {Milliseconds:F0} ms (compute buffers allocated, weights paged in)")]
    public static partial void WarmedUp(ILogger logger, double milliseconds);

    [LoggerMessage(EventId = 1017, Level = LogLevel.Warning, Message = "The default model is not on disk: downloading {Url} into {Directory}")]
    public static partial void Downloading(ILogger logger, string url, string directory);

    [LoggerMessage(EventId = 1015, Level = LogLevel.Debug, Message = "Decode returned NoKvSlot; evicted {Slots} idle prefix caches and retried")]
    public static partial void EvictedForRetry(ILogger logger, int slots);

    [LoggerMessage(EventId = 1018, Level = LogLevel.Warning, Message = "Fault injection (Inference:StallSchedulerOnPrompt): job {JobId} hangs the scheduler until the engine stops")]
    public static partial void FaultInjectionStall(ILogger logger, string jobId);

    [LoggerMessage(EventId = 1019, Level = LogLevel.Error, Message = "The scheduler did not stop within {Seconds} s (hung in llama.cpp?): leaving the model and context to the process exit")]
    public static partial void DisposeAbandoned(ILogger logger, double seconds);

    [LoggerMessage(EventId = 1020, Level = LogLevel.Information, Message = "KV cache: K {TypeK}, V {TypeV}; flash attention {FlashAttention}")]
    public static partial void KvCacheChosen(ILogger logger, string typeK, string typeV, string flashAttention);
    [LoggerMessage(EventId = 1040, Level = LogLevel.Information,
        Message = "Embeddings on (Model:Embeddings): a second context, mean pooling, {Dimensions} dimensions, up to {Sequences} texts and {BatchSize} tokens per decode")]
    public static partial void EmbeddingsEnabled(ILogger logger, int dimensions, int sequences, int batchSize);

    [LoggerMessage(EventId = 1060, Level = LogLevel.Information,
        Message = "Host-RAM prompt cache on (Inference:PromptCacheMb = {Megabytes}): finished jobs' KV cells are kept, up to {Bytes} bytes, for repeated prompts")]
    public static partial void PromptCacheEnabled(ILogger logger, int megabytes, long bytes);

    [LoggerMessage(EventId = 1061, Level = LogLevel.Information,
        Message = "Host-RAM prompt cache off ({Reason})")]
    public static partial void PromptCacheDisabled(ILogger logger, string reason);

    [LoggerMessage(EventId = 1062, Level = LogLevel.Debug,
        Message = "Job {JobId}: {Tokens} of {PromptTokens} prompt tokens restored from the host-RAM prompt cache ({Bytes} bytes in {Milliseconds:F1} ms) into slot {Slot}")]
    public static partial void PromptCacheRestored(ILogger logger, string jobId, int tokens, int promptTokens, long bytes, double milliseconds, int slot);

    [LoggerMessage(EventId = 1063, Level = LogLevel.Warning,
        Message = "Job {JobId}: llama.cpp refused to restore a {Tokens}-token prompt cache entry into slot {Slot} (no free run of KV cells?); the prompt is prefilled instead")]
    public static partial void PromptCacheRestoreFailed(ILogger logger, string jobId, int tokens, int slot);

    [LoggerMessage(EventId = 1064, Level = LogLevel.Debug,
        Message = "Job {JobId}: {Tokens} tokens saved to the host-RAM prompt cache ({Bytes} bytes in {Milliseconds:F1} ms); it holds {Entries} entries, {TotalBytes} bytes")]
    public static partial void PromptCacheSaved(ILogger logger, string jobId, int tokens, long bytes, double milliseconds, int entries, long totalBytes);
}
