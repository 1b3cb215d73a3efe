using System.ComponentModel.DataAnnotations;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using QueueWorker.Contracts;
using QueueWorker.Inference;
using QueueWorker.Messaging;

namespace QueueWorker.Cli.Infrastructure;

/// <summary>
/// qw reads the worker's configuration keys from the same places, in the same order: appsettings.json
/// beside the binary, then environment variables (<c>RabbitMq__Uri</c>, ...), then its own flags
/// (<c>--uri</c>, <c>--set KEY=VALUE</c>), which win.
/// </summary>
internal static class CliConfiguration
{
    public static IConfigurationRoot Build(IEnumerable<string> sets, string? uri)
    {
        var overrides = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var item in sets)
        {
            var eq = item.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
                throw new CliException($"--set \"{item}\": expected KEY=VALUE, e.g. --set RabbitMq:JobsQueue=llm.jobs");
            overrides[item[..eq].Trim()] = item[(eq + 1)..];
        }
        if (uri is not null) overrides["RabbitMq:Uri"] = uri;

        return new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true, reloadOnChange: false)
            .AddEnvironmentVariables()
            .AddInMemoryCollection(overrides)
            .Build();
    }

    /// <summary>The <c>RabbitMq</c> section, validated with the worker's rules; errors name the key and the value.</summary>
    /// <param name="needsBroker">False for <c>--local</c>: the URI is not used, so a bad one is no error.</param>
    public static RabbitMqOptions RabbitMq(IConfiguration configuration, bool needsBroker = true)
    {
        var options = Bind<RabbitMqOptions>(configuration, RabbitMqOptions.Section);
        // One URI or a cluster's comma-separated list, checked as the worker checks it.
        if (needsBroker && !BrokerEndpoints.TryParse(options.Uri, "RabbitMq:Uri", out _, out var errors))
            throw new CliException($"configuration error: RabbitMq:Uri must be an amqp:// or amqps:// URI (or several, comma-separated), got \"{SecretMasker.MaskUri(options.Uri)}\": {string.Join(" ", errors)}");
        return options;
    }

    /// <summary>
    /// Points <see cref="RabbitMqOptions.JobsQueue"/> at the lane's queue (<c>{JobsQueue}.{lane}</c>). Without <c>--lane</c>,
    /// when <c>RabbitMq:Lanes</c> is configured: <paramref name="lowest"/> picks the lowest lane (batches), else the highest.
    /// </summary>
    public static void ApplyLane(RabbitMqOptions options, string? lane, bool local, bool lowest)
    {
        if (local)
        {
            if (lane is not null) throw new CliException("--lane has no meaning with --local: there is no queue.");
            return;
        }
        var lanes = options.Lanes;
        if (lane is null)
        {
            if (lanes.Count > 0) options.JobsQueue = RabbitMqOptions.LaneQueueName(options.JobsQueue, lowest ? lanes[^1] : lanes[0]);
            return;
        }
        if (lane.Length == 0 || !lane.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            throw new CliException($"--lane '{lane}' must be a name of ASCII letters, digits, '-' and '_'.");
        if (lanes.Count > 0 && !lanes.Contains(lane, StringComparer.Ordinal))
            throw new CliException($"--lane '{lane}' is not one of RabbitMq:Lanes ({string.Join(", ", lanes)}).");
        options.JobsQueue = RabbitMqOptions.LaneQueueName(options.JobsQueue, lane);
    }

    /// <summary>The job bounds from <c>Inference:MaxTokens</c> and <c>Inference:DefaultMaxTokens</c>, as the worker applies them.</summary>
    public static JobLimits Limits(IConfiguration configuration)
    {
        var inference = Bind<InferenceOptions>(configuration, InferenceOptions.Section);
        if (inference.DefaultMaxTokens > inference.MaxTokens)
            throw new CliException($"configuration error: Inference:DefaultMaxTokens ({inference.DefaultMaxTokens}) must not exceed Inference:MaxTokens ({inference.MaxTokens}).");
        return new JobLimits { MaxTokens = inference.MaxTokens, DefaultMaxTokens = inference.DefaultMaxTokens };
    }

    private static T Bind<T>(IConfiguration configuration, string section) where T : new()
    {
        var options = new T();
        try
        {
            configuration.GetSection(section).Bind(options);
        }
        catch (InvalidOperationException ex)
        {
            // The binder says which value failed to convert (e.g. "abc" for an int).
            throw new CliException($"configuration error in section {section}: {ex.Message}", ExitCodes.Usage, ex);
        }
        var results = new List<ValidationResult>();
        if (!Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true))
        {
            var first = results[0];
            var member = first.MemberNames.FirstOrDefault() ?? "?";
            var value = typeof(T).GetProperty(member)?.GetValue(options);
            throw new CliException($"configuration error: {section}:{member} = \"{Convert.ToString(value, CultureInfo.InvariantCulture)}\": {first.ErrorMessage}");
        }
        return options;
    }
}
