using System.Text;
using System.Text.Json.Nodes;
using QueueWorker.Contracts;

namespace QueueWorker.Cli.Running;

/// <summary>
/// Turns a job body into a <see cref="JobSubmission"/> with the worker's own rules: the body is
/// serialized and parsed back with <see cref="JobParser"/>, so qw reports exactly the errors the
/// worker would, before anything is published.
/// </summary>
internal static class JobBuilder
{
    public static JobBuildResult Build(JsonObject body, JobLimits limits, int maxJobBytes)
    {
        var bytes = Encoding.UTF8.GetBytes(body.ToJsonString());
        if (bytes.Length > maxJobBytes)
            return new JobBuildResult(null, new JobError(ErrorCodes.BodyTooLarge,
                $"The job body is {bytes.Length} bytes; the limit RabbitMq:MaxJobBytes is {maxJobBytes}.", "body"));
        var parsed = JobParser.Parse(bytes, limits);
        return parsed.IsValid
            ? new JobBuildResult(new JobSubmission(parsed.Job!, bytes), null)
            : new JobBuildResult(null, parsed.Error);
    }
}

internal sealed record JobBuildResult(JobSubmission? Submission, JobError? Error);
