using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using QueueWorker.Contracts;
using QueueWorker.Inference;

namespace QueueWorker.Processing;

/// <summary>The stages of <see cref="JobPipeline"/>, in order.</summary>
public enum JobStage
{
    Admission,
    Deadline,
    Engine,
    Result,
    Observe,
}

/// <summary>When and how a job reached this process; the clock readings the deadline and <c>queued_ms</c> are measured from.</summary>
/// <param name="ReceivedAt">When this process received the job.</param>
/// <param name="PublishedAt">When the producer published it, if known.</param>
/// <param name="Expiration">Its time to live from <paramref name="PublishedAt"/> (else from receipt), if any.</param>
/// <param name="DeliveryCount">Earlier deliveries of the same job.</param>
/// <param name="LaneRank">The transport lane's rank, 0 = highest (see <c>RabbitMq:Lanes</c>): the engine admits lower ranks first.</param>
/// <param name="LaneWeight">That lane's weight (<c>RabbitMq:LaneWeights</c>): lanes share slots by weight; 0 = strict lane order.</param>
public readonly record struct JobArrival(DateTimeOffset ReceivedAt, DateTimeOffset? PublishedAt = null, TimeSpan? Expiration = null, long DeliveryCount = 0,
    int LaneRank = 0, int LaneWeight = 0)
{
    /// <summary>
    /// A job submitted inside this process (<c>qw --local</c>): there is no queue, so publish and receipt are the same
    /// instant and <c>queued_ms</c> is the wait for a free slot alone.
    /// </summary>
    public static JobArrival InProcess(DateTimeOffset now) => new(now, now);
}

/// <summary>
/// The job pipeline, whatever the transport: envelope checks -> parse -> deadline -> engine -> result. A total
/// function: every job ends in exactly one <see cref="JobResult"/>. A job that can never succeed (bad envelope, bad
/// body, deadline passed, refused by the engine) becomes a <c>failed</c> result with its error code; anything
/// unexpected in any stage becomes a <c>failed</c> result with <c>internal_error</c> naming the exception type, so a
/// bug is answered once instead of being requeued until the delivery limit. Only an interruption
/// (<see cref="OperationCanceledException"/>: shutdown, or an engine that stopped) escapes, for the caller to requeue.
/// </summary>
public sealed class JobPipeline
{
    private readonly IInferenceEngine _engine;
    private readonly WorkerIdentity _identity;
    private readonly IJobObserver _observer;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly JobLimits _limits;
    private readonly TimeSpan _maxJob;
    private readonly string? _servedModel;
    private readonly JobCancellations _cancellations;

    /// <summary>Called as each stage begins; tests throw from it to prove no stage can leave a job without a result.</summary>
    internal Action<JobStage>? StageHook { get; set; }

    /// <param name="options">Where <c>max_tokens</c> limits and <c>Inference:MaxJobSeconds</c> come from.</param>
    /// <param name="servedModel">
    /// <c>Model:Name</c>: when set, a job naming another <c>model</c> is refused with <c>model_mismatch</c>; null or empty
    /// leaves a job's <c>model</c> informational.
    /// </param>
    /// <param name="cancellations">What control messages cancelled; null: nothing is ever cancelled (e.g. <c>qw --local</c>).</param>
    public JobPipeline(IInferenceEngine engine, InferenceOptions options, WorkerIdentity identity, IJobObserver observer, TimeProvider time, ILogger<JobPipeline> logger,
        string? servedModel = null, JobCancellations? cancellations = null)
    {
        _servedModel = string.IsNullOrEmpty(servedModel) ? null : servedModel;
        _cancellations = cancellations ?? new JobCancellations(time, TimeSpan.FromMinutes(1), 1);
        _engine = engine;
        _identity = identity;
        _observer = observer;
        _time = time;
        _logger = logger;
        _limits = new JobLimits { MaxTokens = options.MaxTokens, DefaultMaxTokens = options.DefaultMaxTokens };
        _maxJob = TimeSpan.FromSeconds(options.MaxJobSeconds);
    }

    /// <summary>A job as received: its body bytes and envelope.</summary>
    public Task<JobResult> RunAsync(JobInput input, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        return ProcessAsync(input, null, new JobArrival(input.ReceivedAt, input.PublishedAt, input.Expiration, input.DeliveryCount, input.LaneRank, input.LaneWeight), cancellationToken);
    }

    /// <summary>A job validated already (<c>qw --local</c> parses its input itself): the envelope and parse stages are skipped.</summary>
    public Task<JobResult> RunAsync(JobRequest job, JobArrival arrival, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(job);
        return ProcessAsync(null, job, arrival, cancellationToken);
    }

    /// <summary>
    /// Every stage of a job, in order; both entries come through here, so a rule added here (e.g. turning an
    /// unexpected fault into a <c>failed</c> result around the stages) applies to the worker and <c>qw --local</c> alike.
    /// Exactly one of <paramref name="input"/> and <paramref name="parsed"/> is set.
    /// </summary>
    private async Task<JobResult> ProcessAsync(JobInput? input, JobRequest? parsed, JobArrival arrival, CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        // Known before any stage runs, so even a fault in admission is answered under an id the producer can match.
        var id = input is not null ? AmqpShortString.EchoableIdOrNew(input.MessageId) : parsed!.Id ?? AmqpShortString.EchoableIdOrNew(null);
        JsonElement? metadata = null;
        IDisposable? scope = null;
        using var activity = JobTelemetry.Source.StartActivity(JobTelemetry.JobActivity, ActivityKind.Internal);
        try
        {
            // 1. Admission: the envelope, then the body (a job parsed already is admitted as it is).
            StageHook?.Invoke(JobStage.Admission);
            var admission = input is not null ? Admit(input, id) : new Admission(id, parsed, null, parsed!.Metadata);
            id = admission.Id;
            metadata = admission.Metadata;
            scope = _logger.BeginScope(new Dictionary<string, object> { ["JobId"] = id });
            activity?.SetTag("queueworker.job.id", id);
            activity?.SetTag("queueworker.job.delivery_count", arrival.DeliveryCount);
            if (admission.Error is { } rejected)
                return Fail(id, rejected, metadata, started, arrival.DeliveryCount);
            var job = admission.Job!;
            if (_servedModel is { } served && job.Model is { } asked && !string.Equals(asked, served, StringComparison.Ordinal))
                return Fail(id, new JobError(ErrorCodes.ModelMismatch,
                    $"The job asks for model \"{asked}\", but this worker serves \"{served}\" (Model:Name): send it to that model's queue.", "model"),
                    metadata, started, arrival.DeliveryCount);

            // A control message cancelled it while it was queued: answered now, never started.
            if (_cancellations.IsCancelled(id, job.BatchId))
                return Cancelled(id, job.BatchId, "before it started", metadata, started, arrival.DeliveryCount);

            // 2. Deadline: one rule for every caller; a job already too late is not started.
            StageHook?.Invoke(JobStage.Deadline);
            var deadline = JobDeadline.For(job, arrival.PublishedAt, arrival.Expiration, arrival.ReceivedAt, _maxJob);
            if (deadline.HasPassed(_time.GetUtcNow()))
                return Fail(id, new JobError(ErrorCodes.DeadlineExceeded, $"The job's deadline ({deadline.At:O}) passed before work began.", deadline.Field),
                    metadata, started, arrival.DeliveryCount);

            // 3. Engine: waits for a slot, generates until a finish reason (the deadline included).
            StageHook?.Invoke(JobStage.Engine);
            if (job.Input is { } inputs)
                return await EmbedAsync(id, job, inputs, metadata, started, arrival, cancellationToken).ConfigureAwait(false);
            Log.JobStarted(_logger, id, arrival.DeliveryCount);
            GenerationResult generated;
            using (var inference = JobTelemetry.Source.StartActivity(JobTelemetry.InferenceActivity))
            {
                using var tracked = _cancellations.Track(id, job.BatchId);
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, tracked.Token);
                try
                {
                    generated = await _engine.GenerateAsync(JobMapping.ToGeneration(id, job, deadline.At, arrival.LaneRank, arrival.LaneWeight), linked.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (tracked.IsCancelled && !cancellationToken.IsCancellationRequested)
                {
                    // Cancelled by a control message (not an interruption): answered, not requeued.
                    inference?.SetStatus(ActivityStatusCode.Error, ErrorCodes.Cancelled);
                    return Cancelled(id, job.BatchId, "in the engine", metadata, started, arrival.DeliveryCount);
                }
                catch (InferenceException ex)
                {
                    inference?.SetStatus(ActivityStatusCode.Error, ex.Code);
                    return Fail(id, JobMapping.ToError(ex), metadata, started, arrival.DeliveryCount);
                }
                inference?.SetTag("gen_ai.usage.input_tokens", generated.PromptTokens);
                inference?.SetTag("gen_ai.usage.output_tokens", generated.CompletionTokens);
                inference?.SetTag("queueworker.cached_tokens", generated.CachedTokens);
                inference?.SetTag("queueworker.finish_reason", generated.FinishReason);
            }

            // 4. Result.
            StageHook?.Invoke(JobStage.Result);
            var totalMs = _time.GetElapsedTime(started).TotalMilliseconds;
            var result = JobMapping.ToCompleted(id, generated, QueuedMs(arrival, generated.WaitMs), totalMs, _identity.Describe(_engine.Info), metadata,
                json: job.ResponseFormat?.IsJson == true, user: job.User);
            StageHook?.Invoke(JobStage.Observe);
            _observer.JobCompleted(result, job.Tenant);
            Log.JobCompleted(_logger, id, generated.FinishReason, generated.PromptTokens, generated.CompletionTokens, totalMs);
            return result;
        }
        catch (OperationCanceledException)
        {
            // Interrupted, not wrong: shutdown, or an engine that stopped. The caller requeues it for another try.
            throw;
        }
        catch (Exception ex)
        {
            return InternalError(id, ex, metadata, started, arrival.DeliveryCount);
        }
        finally
        {
            scope?.Dispose();
        }
    }

    /// <summary>An embedding job's engine and result stages: its vectors in input order, or the engine's refusal.</summary>
    private async Task<JobResult> EmbedAsync(string id, JobRequest job, IReadOnlyList<string> inputs, JsonElement? metadata, long started, JobArrival arrival,
        CancellationToken cancellationToken)
    {
        Log.JobStarted(_logger, id, arrival.DeliveryCount);
        EmbeddingResult embedded;
        try
        {
            embedded = await _engine.EmbedAsync(inputs, cancellationToken).ConfigureAwait(false);
        }
        catch (InferenceException ex)
        {
            return Fail(id, JobMapping.ToError(ex), metadata, started, arrival.DeliveryCount);
        }
        StageHook?.Invoke(JobStage.Result);
        var totalMs = _time.GetElapsedTime(started).TotalMilliseconds;
        var result = new JobResult
        {
            Id = id,
            Status = JobStatus.Completed,
            Data = embedded.Vectors.Select((v, i) => new EmbeddingItem(i, v)).ToArray(),
            Usage = new Usage(embedded.PromptTokens, 0, 0),
            Timings = new Timings { PromptMs = JobMapping.Round(embedded.ComputeMs), TotalMs = JobMapping.Round(totalMs) },
            Worker = _identity.Describe(_engine.Info),
            Metadata = metadata,
            User = job.User,
        };
        StageHook?.Invoke(JobStage.Observe);
        _observer.JobCompleted(result, job.Tenant);
        Log.JobCompleted(_logger, id, "embedding", embedded.PromptTokens, 0, totalMs);
        return result;
    }

    /// <summary>The envelope checks, then the parse; the id is the body's, else the message id, else a new one.</summary>
    private Admission Admit(JobInput input, string fallbackId)
    {
        if (EnvelopeChecks.Check(input) is { } rejected)
            return new Admission(fallbackId, null, rejected, null);
        var parsed = JobParser.Parse(input.Body.Span, _limits, fallbackId);
        return new Admission(parsed.Id ?? fallbackId, parsed.Job, parsed.Error, parsed.Metadata);
    }

    /// <summary>
    /// From publish to the start of generation: the broker queue plus the wait for a free slot. Null when the publish
    /// time is unknown. AMQP timestamps have one-second resolution (and clocks differ): never negative.
    /// </summary>
    private static double? QueuedMs(JobArrival arrival, double engineWaitMs) =>
        arrival.PublishedAt is { } published ? Math.Max(0, (arrival.ReceivedAt - published).TotalMilliseconds + engineWaitMs) : null;

    private JobResult Fail(string id, JobError error, JsonElement? metadata, long started, long deliveryCount)
    {
        // The current span: the job's, or the inference step's when the engine refused the job.
        Activity.Current?.SetTag("queueworker.error.code", error.Code);
        _observer.JobFailed(error.Code);
        Log.JobFailed(_logger, id, error.Code, error.Message, deliveryCount);
        return JobResult.Failed(id, error, _identity.Describe(_engine.Info), metadata,
            new Timings { TotalMs = JobMapping.Round(_time.GetElapsedTime(started).TotalMilliseconds) });
    }

    /// <summary>One <c>failed</c> result with <c>finish_reason: cancelled</c> and error code <c>cancelled</c>.</summary>
    private JobResult Cancelled(string id, string? batchId, string where, JsonElement? metadata, long started, long deliveryCount)
    {
        var by = batchId is not null && !_cancellations.IsCancelled(id, null) ? $"its batch {batchId}" : "its id";
        Log.JobCancelled(_logger, id, by, where);
        var failed = Fail(id, new JobError(ErrorCodes.Cancelled, $"The job was cancelled {where} by a control message naming {by}."), metadata, started, deliveryCount);
        return failed with { FinishReason = FinishReasons.Cancelled };
    }

    /// <summary>
    /// The answer to a fault nobody foresaw: <c>internal_error</c> with the exception's type (its message may carry
    /// prompt text, so it goes to the log, not the result). Guarded itself: a fault here must not cost the result.
    /// </summary>
    private JobResult InternalError(string id, Exception ex, JsonElement? metadata, long started, long deliveryCount)
    {
        var error = JobError.Internal(ex);
        try
        {
            Activity.Current?.SetTag("queueworker.error.code", error.Code);
            Log.JobFaulted(_logger, id, ex.GetType().Name, deliveryCount, ex);
            _observer.JobFailed(error.Code);
        }
        catch (Exception)
        {
            // Logging or metrics failing too: the result still goes out.
        }
        WorkerInfo? worker;
        try
        {
            worker = _identity.Describe(_engine.Info);
        }
        catch (Exception)
        {
            worker = null;
        }
        return JobResult.Failed(id, error, worker, metadata, new Timings { TotalMs = JobMapping.Round(_time.GetElapsedTime(started).TotalMilliseconds) });
    }

    /// <summary>A job after admission: valid (<see cref="Job"/>) or refused (<see cref="Error"/>), with what its result echoes.</summary>
    private sealed record Admission(string Id, JobRequest? Job, JobError? Error, JsonElement? Metadata);
}
