namespace QueueWorker.Processing;

/// <summary>
/// One job as it arrived, in the pipeline's own terms: the body bytes and what the pipeline needs to know of the
/// envelope it came in. A transport (the worker's AMQP consumer) maps its delivery onto this; nothing here is AMQP.
/// </summary>
public sealed record JobInput
{
    public required ReadOnlyMemory<byte> Body { get; init; }

    /// <summary>When this process received the job: the origin of <c>Inference:MaxJobSeconds</c>.</summary>
    public required DateTimeOffset ReceivedAt { get; init; }

    /// <summary>The transport's message id: the job id when the body gives none.</summary>
    public string? MessageId { get; init; }

    /// <summary>Media type of the body; absent means JSON.</summary>
    public string? ContentType { get; init; }

    /// <summary>Encoding of the body; absent, <c>utf-8</c> and <c>identity</c> are accepted.</summary>
    public string? ContentEncoding { get; init; }

    /// <summary>The largest body accepted, and the setting that says so (named in the error); null: no limit.</summary>
    public BodyLimit? BodyLimit { get; init; }

    /// <summary>When the producer published the job, if it said: the origin of <c>timeout_ms</c> and <see cref="Expiration"/>.</summary>
    public DateTimeOffset? PublishedAt { get; init; }

    /// <summary>How long the job may wait before it is worthless (a per-message TTL), from <see cref="PublishedAt"/>.</summary>
    public TimeSpan? Expiration { get; init; }

    /// <summary>Earlier deliveries of the same job (0 on the first); logged and traced.</summary>
    public long DeliveryCount { get; init; }

    /// <summary>The rank of the lane the job came in on, 0 = highest: the engine admits lower ranks first.</summary>
    public int LaneRank { get; init; }

    /// <summary>That lane's weight (<c>RabbitMq:LaneWeights</c>), 0 = lanes in strict order.</summary>
    public int LaneWeight { get; init; }
}

/// <summary>A body size limit and the configuration key it comes from, so the error tells the operator what to change.</summary>
public sealed record BodyLimit(long MaxBytes, string Setting);
