using System.Globalization;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace QueueWorker.Ops.Tests;

/// <summary>ops/compose.yaml parses, scales, and agrees with the image and the worker's configuration.</summary>
[Trait("Category", "Unit")]
public sealed partial class ComposeTests
{
    private const string ComposeFile = "ops/compose.yaml";

    /// <summary>
    /// Mounted files that another branch adds (the broker-management work owns rabbitmq.conf). Each is
    /// checked like the others as soon as it exists; remove it from here once it is merged.
    /// </summary>
    private readonly YamlMappingNode _compose = Repo.Yaml(ComposeFile);
    private readonly Dockerfile _dockerfile = Dockerfile.Load();

    private YamlNode Worker => _compose.At("services.worker");

    private Dictionary<string, string> WorkerEnv =>
        Worker.Pairs("environment").ToDictionary(kv => kv.Key, kv => kv.Value.Str(), StringComparer.Ordinal);

    [Fact]
    public void Worker_IsScalable_NoContainerNameNoHostPorts()
    {
        Assert.Null(Worker.Find("container_name"));
        Assert.Null(Worker.Find("ports"));
        Assert.Equal("..", Worker.Str("build.context"));
        Assert.Equal("Dockerfile", Worker.Str("build.dockerfile"));
        Assert.True(File.Exists(Path.Combine(Repo.PathOf("ops"), "..", "Dockerfile")));
    }

    [Fact]
    public void Worker_HasWholeCpuLimitAndMemoryLimit()
    {
        var cpus = double.Parse(Worker.Str("cpus"), CultureInfo.InvariantCulture);
        Assert.True(cpus >= 1 && cpus == Math.Floor(cpus), $"cpus '{cpus}' should be whole CPUs: threads follow the limit rounded up");
        Assert.Matches("^[0-9]+[kmg]$", Worker.Str("mem_limit"));
    }

    [Fact]
    public void WorkerEnv_NamesKeysOfAppSettings()
    {
        var unknown = WorkerEnv.Keys.Where(k => !Repo.IsConfigurationVariable(k) || !Repo.ConfigKeys.Contains(Repo.ConfigKeyOf(k))).ToList();
        Assert.True(unknown.Count == 0, $"compose worker environment names no key of appsettings.json: {string.Join(", ", unknown)}");
    }

    [Fact]
    public void WorkerHttpPort_EqualsAppSettingsAndHealthCheckMatchesTheImage()
    {
        Assert.Equal(Repo.HttpPort.ToString(CultureInfo.InvariantCulture), WorkerEnv["Http__Port"]);
        var imageCheck = _dockerfile.HealthCheckCommand().Select(a => a.Replace("${Http__Port:-" + Repo.HttpPort + "}", Repo.HttpPort.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal));
        var composeCheck = Worker.Seq("healthcheck.test").Select(n => n.Str()).ToList();
        Assert.Equal("CMD", composeCheck[0]);
        Assert.Equal(imageCheck, composeCheck.Skip(1));
    }

    [Fact]
    public void WorkerModel_IsMountedReadOnlyWhereTheImageExpectsIt()
    {
        var modelDir = DockerfileTests.ModelDirectory(_dockerfile);
        var mount = Assert.Single(Worker.Seq("volumes"), v => v is YamlMappingNode m && m.Str("target") == modelDir);
        Assert.Equal("bind", mount.Str("type"));
        Assert.Equal("true", mount.Str("read_only"));
        Assert.StartsWith(modelDir + "/", WorkerEnv["Model__Path"], StringComparison.Ordinal);
        Assert.Equal("true", Worker.Str("read_only"));
        Assert.Contains(Worker.Seq("tmpfs"), t => t.Str() == "/tmp");
    }

    [Fact]
    public void WorkerStopGracePeriod_ExceedsShutdownGraceSeconds()
    {
        var match = DurationPattern().Match(Worker.Str("stop_grace_period"));
        Assert.True(match.Success, "stop_grace_period like '45s' or '1m'");
        var seconds = int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) * (match.Groups[2].Value == "m" ? 60 : 1);
        Assert.True(seconds > Repo.ShutdownGraceSeconds, $"stop_grace_period {seconds}s must exceed RabbitMq:ShutdownGraceSeconds {Repo.ShutdownGraceSeconds}s");
    }

    [Fact]
    public void WorkerRabbitMqUri_UsesTheWorkerUserOfDefinitionsAndItsPassword()
    {
        var uri = WorkerEnv["RabbitMq__Uri"];
        Assert.Equal("rabbitmq", new Uri(uri).Host);
        Assert.NotNull(_compose.At("services").Find("rabbitmq"));
        var (user, password) = Definitions.Credentials(uri);
        Assert.Equal(Definitions.WorkerUser, user);
        Assert.True(Definitions.PasswordMatches(user, password), "the worker's password in compose does not match its hash in definitions.json");
    }

    [Fact]
    public void RabbitMq_LoadsDefinitionsAndBrokerConfiguration()
    {
        var volumes = _compose.At("services.rabbitmq").Seq("volumes").Select(v => v.Str()).ToList();
        Assert.Contains("./rabbitmq/definitions.json:/etc/rabbitmq/definitions.json:ro", volumes);
        Assert.Contains(volumes, v => v.StartsWith("./rabbitmq/rabbitmq.conf:/etc/rabbitmq/conf.d/", StringComparison.Ordinal));
        Assert.Contains("load_definitions = /etc/rabbitmq/definitions.json", Repo.Read("ops/rabbitmq/load-definitions.conf"), StringComparison.Ordinal);
        Assert.Contains(volumes, v => v.StartsWith("./rabbitmq/load-definitions.conf:/etc/rabbitmq/conf.d/", StringComparison.Ordinal));
    }

    [Fact]
    public void BindMounts_RefertoFilesThatExist()
    {
        var missing = new List<string>();
        foreach (var (_, service) in _compose.Pairs("services"))
        {
            if (service.Find("volumes") is not YamlSequenceNode volumes) continue;
            foreach (var volume in volumes.Children)
            {
                var source = volume is YamlScalarNode s ? s.Value!.Split(':')[0] : volume.Find("source")?.Str();
                if (source is null || !(source.StartsWith('.') || source.StartsWith('$'))) continue; // named volumes
                source = EnvDefault().Replace(source, m => m.Groups[1].Value); // ${VAR:-default} -> default
                var relative = Path.GetRelativePath(Repo.Root, Path.GetFullPath(Path.Combine(Repo.PathOf("ops"), source))).Replace('\\', '/');
                var exists = File.Exists(Repo.PathOf(relative)) || Directory.Exists(Repo.PathOf(relative));
                if (relative.StartsWith("../", StringComparison.Ordinal)) continue; // outside the repository (models): the operator's
                if (!exists) missing.Add(relative);
            }
        }
        Assert.True(missing.Count == 0, $"compose mounts files that do not exist: {string.Join(", ", missing)}");
    }

    /// <summary>The broker configuration mounted into the container must not tie the listener to loopback (workers connect over the compose network).</summary>
    [Fact]
    public void BrokerConfiguration_DoesNotListenOnLoopbackOnly()
    {
        var path = Repo.PathOf("ops/rabbitmq/rabbitmq.conf");
        Assert.True(File.Exists(path), "ops/rabbitmq/rabbitmq.conf is missing");
        var listeners = File.ReadAllLines(path).Where(l => l.TrimStart().StartsWith("listeners.tcp", StringComparison.Ordinal)).ToList();
        Assert.DoesNotContain(listeners, l => l.Contains("127.0.0.1", StringComparison.Ordinal) || l.Contains("localhost", StringComparison.Ordinal));
        Assert.DoesNotContain(File.ReadAllLines(path), l => l.TrimStart().StartsWith("load_definitions", StringComparison.Ordinal));
    }

    [GeneratedRegex(@"^(\d+)(s|m)$")]
    private static partial Regex DurationPattern();

    [GeneratedRegex(@"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}")]
    private static partial Regex EnvDefault();
}
