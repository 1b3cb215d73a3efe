using System.Collections;
using System.Globalization;
using System.Text;
using QueueWorker.Contracts;
using RabbitMQ.Client;

namespace QueueWorker.Messaging;

/// <summary>
/// The answer to a job that will not be run (dead-lettered by the broker, or found poison by the worker) and the
/// properties of the copies the worker publishes: parked for replay, or put back at the end of the jobs queue.
/// <para>
/// Reasons (RabbitMQ's <c>x-death</c> / <c>x-first-death-reason</c>) and the code each is answered with:
/// <c>delivery_limit</c> → <c>poison_job</c> (every worker that took it stopped before answering);
/// <c>expired</c> → <c>deadline_exceeded</c>, field <c>expiration</c> (its per-message TTL ran out in the queue);
/// <c>rejected</c> (a consumer refused it without requeue — this worker never does), <c>maxlen</c> (the queue was over a
/// length limit) and any other → <c>dead_lettered</c>, naming the reason. Each is parked either way.
/// </para>
/// </summary>
public static class DeadLetters
{
    public const string DeliveryLimit = "delivery_limit";
    public const string Expired = "expired";
    public const string Rejected = "rejected";
    public const string MaxLength = "maxlen";
    public const string Unknown = "unknown";

    /// <summary>Header on a parked copy: why it was parked (a dead-letter reason above).</summary>
    public const string ParkedReasonHeader = "x-qw-parked-reason";

    private const string DeathHeader = "x-death";
    private const string FirstDeathReasonHeader = "x-first-death-reason";

    /// <summary>
    /// Why the broker dead-lettered a message: the newest <c>x-death</c> entry's reason (a message replayed and
    /// dead-lettered again keeps its first <c>x-first-death-reason</c>), else <c>x-first-death-reason</c>, else
    /// <see cref="Unknown"/>. Never throws, whatever the headers hold.
    /// </summary>
    public static string ReadReason(IDictionary<string, object?>? headers)
    {
        if (headers is null)
            return Unknown;
        if (headers.TryGetValue(DeathHeader, out var deaths) && deaths is IList { Count: > 0 } list
            && list[0] is IDictionary<string, object?> newest && newest.TryGetValue("reason", out var reason)
            && AsText(reason) is { Length: > 0 } fromDeath)
            return fromDeath;
        return headers.TryGetValue(FirstDeathReasonHeader, out var first) && AsText(first) is { Length: > 0 } text ? text : Unknown;
    }

    /// <summary>
    /// The job's AMQP <c>expiration</c> before it was dead-lettered: the broker moves it into the newest <c>x-death</c>
    /// entry (<c>original-expiration</c>) and clears the property. Null when absent or unreadable.
    /// </summary>
    public static string? ReadOriginalExpiration(IDictionary<string, object?>? headers) =>
        headers is not null && headers.TryGetValue(DeathHeader, out var deaths) && deaths is IList { Count: > 0 } list
            && list[0] is IDictionary<string, object?> newest && newest.TryGetValue("original-expiration", out var value)
            && AsText(value) is { Length: > 0 } text
            ? text
            : null;

    /// <summary>The error a job dead-lettered for <paramref name="reason"/> is answered with.</summary>
    public static JobError ErrorFor(string reason, RabbitMqOptions options, string? expiration = null)
    {
        ArgumentNullException.ThrowIfNull(reason);
        ArgumentNullException.ThrowIfNull(options);
        var parked = $"Its body is parked in '{options.EffectiveParkedQueue}' for replay.";
        return reason switch
        {
            DeliveryLimit => Poison(options),
            Expired => new JobError(ErrorCodes.DeadlineExceeded,
                $"The job expired in the queue (AMQP expiration {expiration ?? "?"} ms) before a worker took it. {parked}", "expiration"),
            _ => new JobError(ErrorCodes.DeadLettered,
                $"The broker dead-lettered the job (reason '{reason}'{Explain(reason)}) before a worker answered it. {parked}"),
        };
    }

    /// <summary>The <c>poison_job</c> error: every worker that took the job stopped before answering it.</summary>
    public static JobError Poison(RabbitMqOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new JobError(ErrorCodes.PoisonJob,
            $"The job was delivered more than RabbitMq:DeliveryLimit ({options.DeliveryLimit}) + 1 times and every worker " +
            $"that took it stopped before answering it, so it is not run again. Its body is parked in '{options.EffectiveParkedQueue}' for replay.");
    }

    /// <summary>
    /// The failed result for a job not run: under the body's <c>id</c> when it can be read and echoed, else the AMQP
    /// <c>message_id</c>, else a new id (<see cref="AmqpShortString.EchoableIdOrNew"/>); its <c>metadata</c> echoed when clean.
    /// </summary>
    public static JobResult Answer(IncomingJob job, JobError error)
    {
        ArgumentNullException.ThrowIfNull(job);
        ParseResult parsed;
        try
        {
            parsed = JobParser.Parse(job.Body.Span, JobLimits.Default, job.MessageId);
        }
        catch (Exception)
        {
            // The parser answers every body itself; this answer must not depend on that.
            parsed = new ParseResult(null, null, null, null);
        }
        var id = AmqpShortString.EchoableIdOrNew(parsed.Job?.Id ?? parsed.Id, job.MessageId);
        return JobResult.Failed(id, error, metadata: parsed.Job?.Metadata ?? parsed.Metadata);
    }

    /// <summary>
    /// A parked copy: the job's body and properties as they were, without the counts that would make a replay of it
    /// look poison again (<c>x-delivery-count</c>, <see cref="DeliveryMapper.CarriedDeliveriesHeader"/>), with
    /// <see cref="ParkedReasonHeader"/>; persistent.
    /// </summary>
    public static BasicProperties ParkedProperties(IReadOnlyBasicProperties original, string reason)
    {
        var copy = CopyWithoutCounts(original);
        copy.Headers![ParkedReasonHeader] = reason;
        copy.DeliveryMode = DeliveryModes.Persistent;
        // A replayed job must not expire on the way back: its deadline is the worker's to judge (timestamp + expiration).
        copy.Expiration = null;
        return copy;
    }

    /// <summary>A job put back at the end of the jobs queue: as it was, carrying <paramref name="priorDeliveries"/>.</summary>
    public static BasicProperties RequeueProperties(IReadOnlyBasicProperties original, long priorDeliveries)
    {
        var copy = CopyWithoutCounts(original);
        if (priorDeliveries > 0)
            copy.Headers![DeliveryMapper.CarriedDeliveriesHeader] = priorDeliveries;
        return copy;
    }

    /// <summary>
    /// Every property as it was but <c>user_id</c> (the broker refuses a publish whose <c>user_id</c> is not the
    /// publishing connection's user), and the headers without the delivery counts.
    /// </summary>
    private static BasicProperties CopyWithoutCounts(IReadOnlyBasicProperties original)
    {
        ArgumentNullException.ThrowIfNull(original);
        var copy = new BasicProperties
        {
            AppId = original.AppId,
            ClusterId = original.ClusterId,
            ContentEncoding = original.ContentEncoding,
            ContentType = original.ContentType,
            CorrelationId = original.CorrelationId,
            Expiration = original.Expiration,
            MessageId = original.MessageId,
            ReplyTo = original.ReplyTo,
            Type = original.Type,
        };
        if (original.IsDeliveryModePresent()) copy.DeliveryMode = original.DeliveryMode;
        if (original.IsPriorityPresent()) copy.Priority = original.Priority;
        if (original.IsTimestampPresent()) copy.Timestamp = original.Timestamp;
        var headers = original.Headers is { } h ? new Dictionary<string, object?>(h, StringComparer.Ordinal) : new Dictionary<string, object?>(StringComparer.Ordinal);
        headers.Remove(DeliveryMapper.DeliveryCountHeader);
        headers.Remove(DeliveryMapper.CarriedDeliveriesHeader);
        copy.Headers = headers;
        return copy;
    }

    private static string Explain(string reason) => reason switch
    {
        Rejected => ": a consumer rejected it without requeue",
        MaxLength => ": the jobs queue was over its length limit",
        _ => "",
    };

    private static string? AsText(object? value) => value switch
    {
        byte[] bytes => Encoding.UTF8.GetString(bytes),
        string text => text,
        null => null,
        _ => Convert.ToString(value, CultureInfo.InvariantCulture),
    };
}
