using Microsoft.Extensions.Options;
using QueueWorker.Contracts;
using QueueWorker.Messaging;

namespace QueueWorker.Processing;

/// <summary>
/// The worker's seam between Messaging and the <see cref="JobPipeline"/>: a delivery's body and AMQP properties
/// become the pipeline's transport-free <see cref="JobInput"/>. All job policy lives in the pipeline; the consumer
/// publishes the result it returns (and requeues on cancellation or an unexpected fault).
/// </summary>
public sealed class JobHandler(JobPipeline pipeline, IOptions<RabbitMqOptions> rabbitOptions) : IJobHandler
{
    private readonly BodyLimit _bodyLimit = new(rabbitOptions.Value.MaxJobBytes, "RabbitMq:MaxJobBytes");

    public Task<JobResult> HandleAsync(IncomingJob job, CancellationToken cancellationToken) =>
        pipeline.RunAsync(ToInput(job), cancellationToken);

    internal JobInput ToInput(IncomingJob job) => new()
    {
        Body = job.Body,
        ReceivedAt = job.ReceivedAt,
        MessageId = job.MessageId,
        ContentType = job.ContentType,
        ContentEncoding = job.ContentEncoding,
        BodyLimit = _bodyLimit,
        PublishedAt = job.Timestamp,
        Expiration = job.Expiration,
        DeliveryCount = job.DeliveryCount,
        LaneRank = job.LaneRank,
        LaneWeight = job.LaneWeight,
    };
}
