using System.Reflection;
using System.Text.RegularExpressions;
using QueueWorker.Contracts;
using YamlDotNet.RepresentationModel;

namespace QueueWorker.Ops.Tests;

/// <summary>The Prometheus configuration finds every worker replica and alerts only on series that exist.</summary>
[Trait("Category", "Unit")]
public sealed partial class PrometheusTests
{
    private readonly YamlMappingNode _prometheus = Repo.Yaml("ops/prometheus/prometheus.yml");
    private readonly YamlMappingNode _alerts = Repo.Yaml("ops/prometheus/alerts.yml");

    [Fact]
    public void WorkerJob_DiscoversComposeReplicasByDnsOnTheHttpPort()
    {
        var job = Assert.Single(_prometheus.Seq("scrape_configs"), j => j.Str("job_name") == "queueworker");
        Assert.Equal("/metrics", job.Str("metrics_path"));
        var sd = Assert.Single(job.Seq("dns_sd_configs"));
        Assert.Equal("A", sd.Str("type"));
        Assert.Equal(Repo.HttpPort, sd.Int("port"));
        var name = Assert.Single(sd.Seq("names")).Str();
        Assert.NotNull(Repo.Yaml("ops/compose.yaml").At("services").Find(name));
    }

    [Fact]
    public void RuleFiles_AreMountedByCompose()
    {
        var ruleFile = Assert.Single(_prometheus.Seq("rule_files")).Str();
        var mounts = Repo.Yaml("ops/compose.yaml").At("services.prometheus").Seq("volumes").Select(v => v.Str()).ToList();
        Assert.Contains("./prometheus/alerts.yml:" + ruleFile + ":ro", mounts);
        Assert.Contains("./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro", mounts);
    }

    [Fact]
    public void Alerts_UseOnlyMetricsTheWorkerExports()
    {
        var source = Repo.Read("src/QueueWorker/Processing/WorkerMetrics.cs");
        var exported = MetricName().Matches(source).Select(m => m.Value).ToHashSet(StringComparer.Ordinal);
        Assert.NotEmpty(exported);

        var used = Rules().SelectMany(r => MetricName().Matches(r.Expr).Select(m => SeriesSuffix().Replace(m.Value, ""))).ToHashSet(StringComparer.Ordinal);
        Assert.NotEmpty(used);
        var unknown = used.Where(u => !exported.Contains(u)).ToList();
        Assert.True(unknown.Count == 0, $"alerts.yml uses metrics WorkerMetrics.cs does not create: {string.Join(", ", unknown)}");
    }

    [Fact]
    public void Alerts_ErrorCodeMatchers_NameRealErrorCodes()
    {
        var known = typeof(ErrorCodes).GetFields(BindingFlags.Public | BindingFlags.Static).Select(f => (string)f.GetRawConstantValue()!).ToHashSet();
        var codes = Rules().SelectMany(r => CodeMatcher().Matches(r.Expr)).SelectMany(m => m.Groups[1].Value.Split('|')).ToList();
        Assert.NotEmpty(codes);
        Assert.All(codes, c => Assert.Contains(c, known));
    }

    [Fact]
    public void Alerts_EachRuleHasNameExpressionAndSeverity()
    {
        var rules = Rules().ToList();
        Assert.True(rules.Count >= 5);
        Assert.All(rules, r => Assert.False(string.IsNullOrWhiteSpace(r.Expr), r.Name));
        Assert.Equal(rules.Count, rules.Select(r => r.Name).Distinct().Count());
    }

    private IEnumerable<(string Name, string Expr)> Rules() =>
        _alerts.Seq("groups").SelectMany(g => g.Seq("rules")).Select(r => (r.Str("alert"), r.Str("expr")));

    [GeneratedRegex(@"queueworker_[a-z_]+")]
    private static partial Regex MetricName();

    [GeneratedRegex(@"_(bucket|sum|count)$")]
    private static partial Regex SeriesSuffix();

    [GeneratedRegex(@"code=~""([^""]+)""")]
    private static partial Regex CodeMatcher();
}
