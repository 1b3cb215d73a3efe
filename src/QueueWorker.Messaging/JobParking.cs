using Microsoft.Extensions.Logging;
using RabbitMQ.Client;

namespace QueueWorker.Messaging;

/// <summary>
/// Moves a job that will not be run out of the way without losing it or its answer: publishes its <c>failed</c> result
/// (to its allowed <c>reply_to</c> or the results queue, as every result), then its body and properties to the parked
/// queue, each confirmed by the broker. The caller acks the delivery only when both were confirmed, and nacks it with
/// requeue otherwise. Also puts a job back at the end of the jobs queue (<see cref="SuspectIsolation"/>).
/// </summary>
public sealed class JobParking(ResultPublisher publisher, RabbitMqOptions options, ILogger logger)
{
    /// <summary>Answers <paramref name="job"/> with <paramref name="error"/> and parks it; false (logged) when either publish failed.</summary>
    public async Task<bool> AnswerAndParkAsync(IncomingJob job, IReadOnlyBasicProperties original, string reason, Contracts.JobError error,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(error);
        try
        {
            var result = DeadLetters.Answer(job, error);
            var destination = await publisher.PublishAsync(result, job, cancellationToken).ConfigureAwait(false);
            await publisher.PublishMessageAsync(options.EffectiveParkedQueue, DeadLetters.ParkedProperties(original, reason), job.Body,
                result.Id, cancellationToken).ConfigureAwait(false);
            Log.JobParked(logger, result.Id, job.MessageId, reason, error.Code, destination, options.EffectiveParkedQueue);
            return true;
        }
        catch (Exception ex)
        {
            Log.MoveFailed(logger, "answer and park", job.MessageId, ResiliencePipelines.Describe(ex));
            return false;
        }
    }

    /// <summary>Re-publishes the job at the end of the jobs queue carrying its count; false (logged) when the publish failed.</summary>
    public async Task<bool> RequeueAtEndAsync(IncomingJob job, IReadOnlyBasicProperties original, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(job);
        try
        {
            // Back to its own lane's queue (the jobs queue itself without lanes).
            await publisher.PublishMessageAsync(RabbitMqOptions.LaneQueueName(options.JobsQueue, job.Lane), DeadLetters.RequeueProperties(original, job.PriorDeliveries), job.Body,
                job.MessageId ?? "(no message_id)", cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex)
        {
            Log.MoveFailed(logger, "re-publish", job.MessageId, ResiliencePipelines.Describe(ex));
            return false;
        }
    }
}
