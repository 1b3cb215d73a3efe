namespace QueueWorker.Contracts;

/// <summary>Stable error codes of <see cref="JobError.Code"/>. Producers may switch on them; never rename one.</summary>
public static class ErrorCodes
{
    /// <summary>The body is empty.</summary>
    public const string EmptyBody = "empty_body";
    /// <summary>The body is not valid UTF-8.</summary>
    public const string InvalidUtf8 = "invalid_utf8";
    /// <summary>The body is not JSON, or nests too deeply.</summary>
    public const string InvalidJson = "invalid_json";
    /// <summary>The body is JSON but not an object.</summary>
    public const string NotAnObject = "not_an_object";
    /// <summary>A field has a wrong type or a value out of range; <see cref="JobError.Field"/> names it.</summary>
    public const string InvalidField = "invalid_field";
    /// <summary>Neither <c>prompt</c> nor <c>messages</c>, or both.</summary>
    public const string MissingPrompt = "missing_prompt";
    /// <summary>The body is larger than <c>RabbitMq:MaxJobBytes</c>.</summary>
    public const string BodyTooLarge = "body_too_large";
    /// <summary>The AMQP <c>content_type</c> is set and is not JSON.</summary>
    public const string UnsupportedContentType = "unsupported_content_type";
    /// <summary>Prompt tokens + max_tokens can never fit in the context.</summary>
    public const string PromptTooLong = "prompt_too_long";
    /// <summary>The job's deadline had passed before work began.</summary>
    public const string DeadlineExceeded = "deadline_exceeded";
    /// <summary>The engine failed on this job (a decode error); the message says how.</summary>
    public const string EngineError = "engine_error";
    /// <summary>The worker failed on this job in a way nobody foresaw (a bug); the message names the exception type and the log has the rest.</summary>
    public const string InternalError = "internal_error";
    /// <summary>The job names a <c>model</c> other than the one this worker serves (<c>Model:Name</c>).</summary>
    public const string ModelMismatch = "model_mismatch";
    /// <summary>An embedding job reached a worker that does not serve embeddings (<c>Model:Embeddings</c> is off).</summary>
    public const string EmbeddingsDisabled = "embeddings_disabled";
    /// <summary>
    /// The job was delivered more than <c>RabbitMq:DeliveryLimit</c> + 1 times without ever being finished: every
    /// worker that took it died. It is not run again; its body is parked in <c>{JobsQueue}.parked</c> for replay.
    /// </summary>
    /// <summary>
    /// A control message cancelled the job (by its id or its batch id) before it finished; the result also has
    /// <c>finish_reason: cancelled</c>. Not retried: publish the job again (under a batch id not cancelled) to run it.
    /// </summary>
    public const string Cancelled = "cancelled";
    public const string PoisonJob = "poison_job";
    /// <summary>
    /// The broker dead-lettered the job for a reason other than the delivery limit or its expiry (a consumer rejected it
    /// without requeue, or the jobs queue was over a length limit) before any worker answered it. Parked for replay.
    /// </summary>
    public const string DeadLettered = "dead_lettered";
}
