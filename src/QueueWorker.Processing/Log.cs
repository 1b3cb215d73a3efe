using Microsoft.Extensions.Logging;

namespace QueueWorker.Processing;

/// <summary>Pipeline log messages (event ids 3000-3099; Inference uses 1000-1099, Messaging 2000-2099, qw 5000-5099).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 3001, Level = LogLevel.Debug, Message = "Job {JobId} started (delivery {DeliveryCount})")]
    public static partial void JobStarted(ILogger logger, string jobId, long deliveryCount);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Information, Message = "Job {JobId} completed: {FinishReason}, {PromptTokens} prompt + {CompletionTokens} completion tokens in {TotalMs:F0} ms")]
    public static partial void JobCompleted(ILogger logger, string jobId, string finishReason, int promptTokens, int completionTokens, double totalMs);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Warning, Message = "Job {JobId} failed: {Code}: {Reason} (delivery {DeliveryCount})")]
    public static partial void JobFailed(ILogger logger, string jobId, string code, string reason, long deliveryCount);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Error, Message = "Job {JobId} failed on an unexpected {ExceptionType} (delivery {DeliveryCount}); answered internal_error")]
    public static partial void JobFaulted(ILogger logger, string jobId, string exceptionType, long deliveryCount, Exception exception);

    [LoggerMessage(EventId = 3030, Level = LogLevel.Information, Message = "Job {JobId} cancelled by a control message naming {By} ({Where}); answered cancelled")]
    public static partial void JobCancelled(ILogger logger, string jobId, string by, string where);
}
