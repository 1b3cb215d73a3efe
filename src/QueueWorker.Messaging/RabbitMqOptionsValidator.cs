using System.Text;
using Microsoft.Extensions.Options;

namespace QueueWorker.Messaging;

/// <summary>Rules that cross fields or need parsing; each error names the key and the value (password masked).</summary>
public sealed class RabbitMqOptionsValidator : IValidateOptions<RabbitMqOptions>
{
    private const int MaxQueueNameBytes = 255;

    public ValidateOptionsResult Validate(string? name, RabbitMqOptions options)
    {
        var errors = new List<string>();
        ValidateUri(options.Uri, errors);

        var queues = new (string Key, string? Value)[]
        {
            ("RabbitMq:JobsQueue", options.JobsQueue),
            ("RabbitMq:ResultsQueue", options.ResultsQueue),
            ("RabbitMq:DeadLetterQueue", options.EffectiveDeadLetterQueue),
            ("RabbitMq:JobsQueue + '.parked'", string.IsNullOrWhiteSpace(options.JobsQueue) ? null : options.EffectiveParkedQueue),
        };
        foreach (var (key, value) in queues)
        {
            if (string.IsNullOrWhiteSpace(value))
                continue; // [Required] reports it
            if (Encoding.UTF8.GetByteCount(value) > MaxQueueNameBytes)
                errors.Add($"{key} '{value[..Math.Min(value.Length, 40)]}…' is longer than {MaxQueueNameBytes} bytes, the AMQP limit for a queue name.");
            if (value.StartsWith("amq.", StringComparison.Ordinal))
                errors.Add($"{key} '{value}' starts with 'amq.', a prefix the broker reserves for itself.");
        }
        for (var i = 0; i < queues.Length; i++)
            for (var j = i + 1; j < queues.Length; j++)
                if (!string.IsNullOrWhiteSpace(queues[i].Value) && string.Equals(queues[i].Value, queues[j].Value, StringComparison.Ordinal))
                    errors.Add($"{queues[j].Key} '{queues[j].Value}' must differ from {queues[i].Key}.");

        var lanes = options.Lanes ?? [];
        if (lanes.Count > 10)
            errors.Add($"RabbitMq:Lanes has {lanes.Count} lanes; at most 10 (each is a queue and a consumer).");
        for (var i = 0; i < lanes.Count; i++)
        {
            var lane = lanes[i];
            if (string.IsNullOrWhiteSpace(lane) || !lane.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
                errors.Add($"RabbitMq:Lanes:{i} '{lane}' must be a non-empty name of ASCII letters, digits, '-' and '_' (it becomes part of a queue name).");
            else if (lanes.Take(i).Contains(lane, StringComparer.Ordinal))
                errors.Add($"RabbitMq:Lanes:{i} '{lane}' is given twice.");
        }
        ValidateWeights(lanes, options.LaneWeights, errors);
        if (options.ControlExchange is { Length: > 0 } control && control.StartsWith("amq.", StringComparison.Ordinal))
            errors.Add($"RabbitMq:ControlExchange '{control}' starts with 'amq.', a prefix the broker reserves for itself.");

        if (!ReplyToPolicy.TryCompile(options.ReplyToPattern, out _, out var patternError))
            errors.Add(patternError);

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    /// <summary>Weights are all or nothing: each names a lane, each lane has one, each from 1 to <see cref="MaxLaneWeight"/>.</summary>
    private static void ValidateWeights(IList<string> lanes, IDictionary<string, int>? weights, List<string> errors)
    {
        if (weights is null || weights.Count == 0)
            return;
        if (lanes.Count == 0)
        {
            errors.Add("RabbitMq:LaneWeights is set but RabbitMq:Lanes is empty: weights share slots between lanes; declare the lanes, or remove the weights.");
            return;
        }
        foreach (var (lane, weight) in weights)
        {
            if (!lanes.Contains(lane, StringComparer.Ordinal))
                errors.Add($"RabbitMq:LaneWeights:{lane} names no lane of RabbitMq:Lanes ({string.Join(", ", lanes)}).");
            else if (weight is < 1 or > MaxLaneWeight)
                errors.Add($"RabbitMq:LaneWeights:{lane} is {weight}; a weight must be from 1 to {MaxLaneWeight}.");
        }
        var missing = lanes.Where(l => !weights.ContainsKey(l)).ToList();
        if (missing.Count > 0)
            errors.Add($"RabbitMq:LaneWeights gives no weight to {string.Join(", ", missing)}: give every lane of RabbitMq:Lanes a weight, or none (strict order).");
    }

    /// <summary>The largest lane weight: enough for any sensible share, small enough that credit sums never overflow.</summary>
    public const int MaxLaneWeight = 1000;

    private static void ValidateUri(string? value, List<string> errors)
    {
        if (string.IsNullOrWhiteSpace(value))
            return; // [Required] reports it
        // One URI or a comma-separated cluster list: each checked, then checked against the first.
        if (!BrokerEndpoints.TryParse(value, "RabbitMq:Uri", out _, out var uriErrors))
            errors.AddRange(uriErrors);
    }
}
