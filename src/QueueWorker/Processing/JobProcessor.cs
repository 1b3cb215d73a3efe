using System.Diagnostics;
using Microsoft.Extensions.Options;
using QueueWorker.Contracts;
using QueueWorker.Inference;
using QueueWorker.Hosting;
using QueueWorker.Messaging;

namespace QueueWorker.Processing;

/// <summary>
/// Joins the two halves: a delivery from Messaging becomes a validated job, the job runs on the
/// engine, and the outcome becomes the result the consumer publishes. Every job that can never
/// succeed gets a <c>failed</c> result here (and is then acked); only shutdown cancellation and
/// unexpected faults escape, so the consumer requeues them.
/// </summary>
public sealed partial class JobProcessor(
    IInferenceEngine engine,
    IOptions<InferenceOptions> inferenceOptions,
    IOptions<RabbitMqOptions> rabbitOptions,
    WorkerIdentity identity,
    WorkerMetrics metrics,
    TimeProvider time,
    ILogger<JobProcessor> logger) : IJobHandler
{
    private readonly InferenceOptions _inference = inferenceOptions.Value;
    private readonly RabbitMqOptions _rabbit = rabbitOptions.Value;
    private readonly JobLimits _limits = new()
    {
        MaxTokens = inferenceOptions.Value.MaxTokens,
        DefaultMaxTokens = inferenceOptions.Value.DefaultMaxTokens,
    };

    public async Task<JobResult> HandleAsync(IncomingJob job, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        var fallbackId = string.IsNullOrEmpty(job.MessageId) ? "job-" + Guid.NewGuid().ToString("N") : job.MessageId;

        var rejection = CheckEnvelope(job);
        var parsed = rejection is null ? JobParser.Parse(job.Body.Span, _limits, fallbackId) : null;
        var id = parsed?.Id ?? fallbackId;
        using var scope = logger.BeginScope(new Dictionary<string, object> { ["JobId"] = id });
        using var activity = WorkerTelemetry.Source.StartActivity("job", ActivityKind.Internal);
        activity?.SetTag("queueworker.job.id", id);
        activity?.SetTag("queueworker.job.delivery_count", job.DeliveryCount);

        var error = rejection ?? parsed!.Error;
        if (error is not null)
            return Fail(id, error, parsed?.Metadata, started, job.DeliveryCount);

        var request = parsed!.Job!;
        var deadline = Deadline(job, request);
        if (deadline <= time.GetUtcNow())
            return Fail(id, new JobError(ErrorCodes.DeadlineExceeded,
                $"The job's deadline ({deadline:O}) passed before work began.", request.TimeoutMs is null ? "expiration" : "timeout_ms"),
                request.Metadata, started, job.DeliveryCount);

        LogJobStarted(id, job.DeliveryCount);
        GenerationResult generated;
        using (var inference = WorkerTelemetry.Source.StartActivity("inference"))
        {
            try
            {
                generated = await engine.GenerateAsync(JobMapping.ToGeneration(id, request, deadline), cancellationToken);
            }
            catch (InferenceException ex)
            {
                inference?.SetStatus(ActivityStatusCode.Error, ex.Code);
                return Fail(id, JobMapping.ToError(ex), request.Metadata, started, job.DeliveryCount);
            }
            inference?.SetTag("gen_ai.usage.input_tokens", generated.PromptTokens);
            inference?.SetTag("gen_ai.usage.output_tokens", generated.CompletionTokens);
            inference?.SetTag("queueworker.cached_tokens", generated.CachedTokens);
            inference?.SetTag("queueworker.finish_reason", generated.FinishReason);
        }

        var totalMs = time.GetElapsedTime(started).TotalMilliseconds;
        var result = JobMapping.ToCompleted(id, generated, QueuedMs(job, generated.WaitMs), totalMs, WorkerInfo(), request.Metadata);
        metrics.JobCompleted(result);
        LogJobCompleted(id, generated.FinishReason, generated.PromptTokens, generated.CompletionTokens, totalMs);
        return result;
    }

    /// <summary>Checks what the AMQP envelope says before the body is read.</summary>
    private JobError? CheckEnvelope(IncomingJob job)
    {
        if (job.Body.Length > _rabbit.MaxJobBytes)
            return new JobError(ErrorCodes.BodyTooLarge,
                $"The body is {job.Body.Length} bytes; the limit RabbitMq:MaxJobBytes is {_rabbit.MaxJobBytes}.", "body");
        if (!IsJsonContentType(job.ContentType))
            return new JobError(ErrorCodes.UnsupportedContentType,
                $"content_type must be application/json (or absent), got \"{job.ContentType}\".", "content_type");
        if (!string.IsNullOrEmpty(job.ContentEncoding) && !job.ContentEncoding.Equals("utf-8", StringComparison.OrdinalIgnoreCase)
            && !job.ContentEncoding.Equals("identity", StringComparison.OrdinalIgnoreCase))
            return new JobError(ErrorCodes.UnsupportedContentType,
                $"content_encoding must be absent, utf-8 or identity, got \"{job.ContentEncoding}\".", "content_encoding");
        return null;
    }

    internal static bool IsJsonContentType(string? contentType)
    {
        if (string.IsNullOrWhiteSpace(contentType)) return true;
        var media = contentType.Split(';', 2)[0].Trim();
        return media.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            || media.Equals("text/json", StringComparison.OrdinalIgnoreCase)
            || (media.StartsWith("application/", StringComparison.OrdinalIgnoreCase) && media.EndsWith("+json", StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>The earliest of: the job's timeout_ms and the AMQP expiration (both from publish time when known), and Inference:MaxJobSeconds from receipt.</summary>
    private DateTimeOffset Deadline(IncomingJob job, JobRequest request)
    {
        var origin = job.Timestamp ?? job.ReceivedAt;
        var deadline = job.ReceivedAt.AddSeconds(_inference.MaxJobSeconds);
        if (request.TimeoutMs is { } timeout) deadline = Min(deadline, origin.AddMilliseconds(timeout));
        if (job.Expiration is { } ttl) deadline = Min(deadline, origin.Add(ttl));
        return deadline;
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    private double? QueuedMs(IncomingJob job, double engineWaitMs)
    {
        if (job.Timestamp is not { } published) return null;
        // AMQP timestamps have one-second resolution: never report a negative wait.
        return Math.Max(0, (job.ReceivedAt - published).TotalMilliseconds + engineWaitMs);
    }

    private JobResult Fail(string id, JobError error, System.Text.Json.JsonElement? metadata, long started, long deliveryCount)
    {
        Activity.Current?.SetTag("queueworker.error.code", error.Code);
        metrics.JobFailed(error.Code);
        LogJobFailed(id, error.Code, error.Message, deliveryCount);
        return JobResult.Failed(id, error, WorkerInfo(), metadata,
            new Timings { TotalMs = JobMapping.Round(time.GetElapsedTime(started).TotalMilliseconds) });
    }

    private WorkerInfo WorkerInfo()
    {
        var info = engine.Info;
        return new WorkerInfo(identity.Id, info?.Model ?? "", info?.Threads ?? 0, info?.ContextSize ?? 0, info?.Slots ?? 0, identity.Version);
    }

    [LoggerMessage(EventId = 1001, Level = LogLevel.Debug, Message = "Job {JobId} started (delivery {DeliveryCount})")]
    private partial void LogJobStarted(string jobId, long deliveryCount);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Job {JobId} completed: {FinishReason}, {PromptTokens} prompt + {CompletionTokens} completion tokens in {TotalMs:F0} ms")]
    private partial void LogJobCompleted(string jobId, string finishReason, int promptTokens, int completionTokens, double totalMs);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Warning, Message = "Job {JobId} failed: {Code}: {Reason} (delivery {DeliveryCount})")]
    private partial void LogJobFailed(string jobId, string code, string reason, long deliveryCount);
}
