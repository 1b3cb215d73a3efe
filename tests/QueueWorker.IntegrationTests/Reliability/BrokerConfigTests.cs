using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace QueueWorker.IntegrationTests.Reliability;

/// <summary>
/// The broker configuration shipped in ops/rabbitmq/rabbitmq.conf fits the worker's defaults in appsettings.json
/// (FACTS.md: RabbitMQ 3.10's consumer timeout is global; RabbitMQ.Client 7.x drops the connection on bodies over 64 MiB).
/// </summary>
[Trait("Category", "Unit")]
public sealed class BrokerConfigTests
{
    private const long ClientMaxInboundBodyBytes = 64L * 1024 * 1024; // RabbitMQ.Client 7.x MaxInboundMessageBodySize default
    private const int PublishAttemptTimeoutSeconds = 30; // ResiliencePipelines.CreatePublish
    private const int PublishMaxDelaySeconds = 15;

    private static Dictionary<string, string> Conf()
    {
        var path = Path.Combine(TestSettings.RepositoryRoot, "ops", "rabbitmq", "rabbitmq.conf");
        return File.ReadAllLines(path)
            .Select(l => l.Trim())
            .Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => l.Split('=', 2))
            .ToDictionary(kv => kv[0].Trim(), kv => kv[1].Trim());
    }

    private static JsonElement AppSettings() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(TestSettings.RepositoryRoot, "appsettings.json"))).RootElement;

    [Fact]
    public void ConsumerTimeout_LongerThanLongestJobTheWorkerAllows()
    {
        var timeoutMs = long.Parse(Conf()["consumer_timeout"], CultureInfo.InvariantCulture);
        var settings = AppSettings();
        var maxJobSeconds = settings.GetProperty("Inference").GetProperty("MaxJobSeconds").GetInt32();
        var publishRetries = settings.GetProperty("RabbitMq").GetProperty("PublishRetries").GetInt32();
        // A job is held unacked from receipt until its result is confirmed: the generation deadline, then every publish
        // attempt timing out, with the longest backoff between them.
        var worstHoldSeconds = maxJobSeconds + publishRetries * PublishAttemptTimeoutSeconds + (publishRetries - 1) * PublishMaxDelaySeconds;
        Assert.True(timeoutMs > worstHoldSeconds * 1000L,
            $"consumer_timeout = {timeoutMs} ms must exceed Inference:MaxJobSeconds {maxJobSeconds} s + publish retries ({worstHoldSeconds} s in all)");
    }

    [Fact]
    public void MaxMessageSize_BelowClientLimitAndAboveWorkerLimit()
    {
        var maxMessageSize = long.Parse(Conf()["max_message_size"], CultureInfo.InvariantCulture);
        var maxJobBytes = AppSettings().GetProperty("RabbitMq").GetProperty("MaxJobBytes").GetInt64();
        Assert.True(maxMessageSize < ClientMaxInboundBodyBytes, $"max_message_size = {maxMessageSize} must be below the client's 64 MiB");
        Assert.True(maxMessageSize >= maxJobBytes, $"max_message_size = {maxMessageSize} must be at least RabbitMq:MaxJobBytes = {maxJobBytes}");
    }

    [Fact]
    public void StartLocalScript_ChecksTheSameValuesAsRabbitmqConf()
    {
        var conf = Conf();
        var script = File.ReadAllText(Path.Combine(TestSettings.RepositoryRoot, "ops", "rabbitmq", "start-local.sh"));
        Assert.Equal(conf["consumer_timeout"], Regex.Match(script, @"WANT_CONSUMER_TIMEOUT=(\d+)").Groups[1].Value);
        Assert.Equal(conf["max_message_size"], Regex.Match(script, @"WANT_MAX_MESSAGE_SIZE=(\d+)").Groups[1].Value);
    }
}
