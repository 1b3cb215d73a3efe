using System.Text.RegularExpressions;

namespace QueueWorker.Ops.Tests;

/// <summary>The cluster files (ops/k8s/cluster, ops/compose.yaml's cluster profile, ops/rabbitmq/start-cluster.sh) agree with ops/rabbitmq/rabbitmq.conf.</summary>
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

    [Fact]
    public void ComposeClusterProfile_TwoMoreNodesJoinRabbitmq_WithTheSameConfigAndCookie()
    {
        var services = Repo.Yaml("ops/compose.yaml").At("services");
        var nodes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in new[] { "rabbitmq-2", "rabbitmq-3" })
        {
            var service = services.At(name);
            Assert.Equal(["cluster"], service.Seq("profiles").Select(p => p.Str()));
            Assert.Equal(name, service.Str("hostname"));
            var volumes = service.Seq("volumes").Select(v => v.Str()).ToList();
            Assert.Contains("./rabbitmq/rabbitmq.conf:/etc/rabbitmq/conf.d/20-queueworker.conf:ro", volumes);
            Assert.Contains(volumes, v => v.StartsWith("./rabbitmq/cluster.conf:/etc/rabbitmq/conf.d/", StringComparison.Ordinal));
            Assert.Equal(services.Str("rabbitmq.environment.RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"), service.Str("environment.RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"));
            nodes[name] = "rabbit@" + name;
        }
        nodes["rabbitmq"] = "rabbit@" + services.Str("rabbitmq.hostname");

        var config = Repo.Read("ops/rabbitmq/cluster.conf");
        foreach (var node in nodes.Values)
            Assert.Contains($"= {node}\n", config, StringComparison.Ordinal);
        Assert.Equal("pause_minority", Settings(config)["cluster_partition_handling"]);
        Assert.Equal(services.Str("rabbitmq.environment.RABBITMQ_CTL_ERL_ARGS"), services.Str("rabbitmq.environment.RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"));
    }

    [GeneratedRegex(@"^([a-z_.0-9]+)\s*=\s*(.+)$")]
    private static partial Regex SettingLine();
}
