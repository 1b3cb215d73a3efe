using System.Text.RegularExpressions;

namespace QueueWorker.Ops.Tests;

/// <summary>The cluster files (ops/k8s/cluster, ops/rabbitmq/start-cluster.sh) agree with ops/rabbitmq/rabbitmq.conf.</summary>
[Trait("Category", "Unit")]
public sealed partial class ClusterOpsTests
{
    private static Dictionary<string, string> Settings(string text) =>
        text.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => SettingLine().Match(l)).Where(m => m.Success)
            .ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value.Trim(), StringComparer.Ordinal);

    [Fact]
    public void RabbitmqCluster_ThreeReplicas_ConfigCarriesEverySettingOfRabbitmqConf_AndPauseMinority()
    {
        var cluster = Repo.Yaml("ops/k8s/cluster/rabbitmq-cluster.yaml");
        Assert.Equal("RabbitmqCluster", cluster.Str("kind"));
        Assert.Equal("rabbitmq.com/v1beta1", cluster.Str("apiVersion"));
        // The Secret's URIs name the host "rabbitmq": the operator's client Service is named after the cluster.
        Assert.Equal("rabbitmq", cluster.Str("metadata.name"));
        var replicas = cluster.Int("spec.replicas");
        Assert.True(replicas >= 3 && replicas % 2 == 1, $"replicas {replicas}: an odd number, at least 3, so a majority survives a node");

        var wanted = Settings(Repo.Read("ops/rabbitmq/rabbitmq.conf"));
        var config = Settings(cluster.Str("spec.rabbitmq.additionalConfig"));
        foreach (var key in new[] { "consumer_timeout", "max_message_size" })
            Assert.Equal(wanted[key], config[key]);
        Assert.Equal("pause_minority", config["cluster_partition_handling"]);
    }

    [Fact]
    public void StartClusterScript_UsesRabbitmqConf_PauseMinority_AndNeverTheSharedNode()
    {
        var script = Repo.Read("ops/rabbitmq/start-cluster.sh");
        Assert.Contains("$HERE/rabbitmq.conf", script, StringComparison.Ordinal);
        Assert.Contains("cluster_partition_handling = pause_minority", script, StringComparison.Ordinal);
        Assert.DoesNotContain("rabbit@localhost\"", script, StringComparison.Ordinal);
        Assert.DoesNotContain("5672}", script, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"^([a-z_.0-9]+)\s*=\s*(.+)$")]
    private static partial Regex SettingLine();
}
