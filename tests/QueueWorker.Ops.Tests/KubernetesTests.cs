using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace QueueWorker.Ops.Tests;

/// <summary>ops/k8s parses, is namespace-agnostic, and agrees with the image, the worker's configuration and the broker users.</summary>
[Trait("Category", "Unit")]
public sealed class KubernetesTests
{
    private static readonly string[] ManifestFiles = Directory.GetFiles(Repo.PathOf("ops/k8s"), "*.yaml").Order(StringComparer.Ordinal).ToArray();

    private readonly List<(string File, YamlMappingNode Doc)> _manifests =
        ManifestFiles.Where(f => Path.GetFileName(f) != "kustomization.yaml")
            .SelectMany(f => Repo.YamlDocuments(Path.GetRelativePath(Repo.Root, f)).Select(d => (Path.GetFileName(f), d))).ToList();

    private YamlMappingNode Kind(string kind) => Assert.Single(_manifests, m => m.Doc.Str("kind") == kind).Doc;

    private YamlNode Deployment => Kind("Deployment");

    private YamlNode Container => Assert.Single(Deployment.Seq("spec.template.spec.containers"));

    private Dictionary<string, string> SecretData =>
        Kind("Secret").Pairs("stringData").ToDictionary(kv => kv.Key, kv => kv.Value.Str(), StringComparer.Ordinal);

    [Fact]
    public void Manifests_ParseAndAreNamespaceAgnostic()
    {
        Assert.True(_manifests.Count >= 5, "Deployment, PVC, Secret example, TriggerAuthentication, ScaledObject");
        Assert.All(_manifests, m =>
        {
            Assert.False(string.IsNullOrEmpty(m.Doc.Str("apiVersion")), m.File);
            Assert.False(string.IsNullOrEmpty(m.Doc.Str("metadata.name")), m.File);
            Assert.True(m.Doc.At("metadata").Find("namespace") is null, $"{m.File}: {m.Doc.Str("kind")} sets a namespace");
        });
    }

    [Fact]
    public void Kustomization_ListsExistingFiles_ButNotTheExampleSecret()
    {
        var kustomization = Repo.Yaml("ops/k8s/kustomization.yaml");
        var resources = kustomization.Seq("resources").Select(r => r.Str()).ToList();
        Assert.All(resources, r => Assert.True(File.Exists(Repo.PathOf("ops/k8s/" + r)), $"kustomization lists missing {r}"));
        Assert.DoesNotContain("secret.example.yaml", resources);
        var listed = resources.ToHashSet();
        var unlisted = ManifestFiles.Select(Path.GetFileName).Where(f => f is not "kustomization.yaml" and not "secret.example.yaml" && !listed.Contains(f!)).ToList();
        Assert.True(unlisted.Count == 0, $"manifests not in kustomization.yaml: {string.Join(", ", unlisted)}");
    }

    [Fact]
    public void Deployment_PortAndProbes_UseHttpPortAndTheWorkerEndpoints()
    {
        Assert.Equal(Repo.HttpPort, Assert.Single(Container.Seq("ports")).Int("containerPort"));
        Assert.Equal("/healthz", Container.Str("livenessProbe.httpGet.path"));
        Assert.Equal("/readyz", Container.Str("readinessProbe.httpGet.path"));
        Assert.Equal("/healthz", Container.Str("startupProbe.httpGet.path"));
        foreach (var probe in new[] { "livenessProbe", "readinessProbe", "startupProbe" })
            Assert.Equal(Repo.HttpPort, Container.Int(probe + ".httpGet.port"));
        Assert.Equal(Repo.HttpPort.ToString(CultureInfo.InvariantCulture), Deployment.At("spec.template.metadata.annotations").Find("prometheus.io/port")?.Str());
    }

    [Fact]
    public void DeploymentEnv_NamesKeysOfAppSettings_AndSecretsExist()
    {
        var env = Container.Seq("env").ToList();
        var unknown = env.Select(e => e.Str("name")).Where(n => !Repo.IsConfigurationVariable(n) || !Repo.ConfigKeys.Contains(Repo.ConfigKeyOf(n))).ToList();
        Assert.True(unknown.Count == 0, $"Deployment env names no key of appsettings.json: {string.Join(", ", unknown)}");

        var uri = Assert.Single(env, e => e.Str("name") == "RabbitMq__Uri");
        Assert.Null(uri.Find("value")); // credentials only from the Secret
        Assert.Equal(Kind("Secret").Str("metadata.name"), uri.Str("valueFrom.secretKeyRef.name"));
        Assert.True(SecretData.ContainsKey(uri.Str("valueFrom.secretKeyRef.key")));
        Assert.Equal(Repo.HttpPort.ToString(CultureInfo.InvariantCulture), Assert.Single(env, e => e.Str("name") == "Http__Port").Str("value"));
    }

    [Fact]
    public void Deployment_ModelVolume_IsReadOnlyAtTheImagesModelDirectory()
    {
        var modelDir = DockerfileTests.ModelDirectory(Dockerfile.Load());
        var mount = Assert.Single(Container.Seq("volumeMounts"), m => m.Str("mountPath") == modelDir);
        Assert.Equal("true", mount.Str("readOnly"));
        var volume = Assert.Single(Deployment.Seq("spec.template.spec.volumes"), v => v.Str("name") == mount.Str("name"));
        Assert.Equal("true", volume.Str("persistentVolumeClaim.readOnly"));
        Assert.Equal(Kind("PersistentVolumeClaim").Str("metadata.name"), volume.Str("persistentVolumeClaim.claimName"));

        var modelPath = Assert.Single(Container.Seq("env"), e => e.Str("name") == "Model__Path").Str("value");
        Assert.Equal(Dockerfile.Load().FinalEnv()["Model__Path"], modelPath);
    }

    [Fact]
    public void Deployment_TerminationGrace_ExceedsShutdownGraceSeconds()
    {
        var grace = Deployment.Int("spec.template.spec.terminationGracePeriodSeconds");
        Assert.True(grace > Repo.ShutdownGraceSeconds, $"terminationGracePeriodSeconds {grace} must exceed RabbitMq:ShutdownGraceSeconds {Repo.ShutdownGraceSeconds}");
    }

    [Fact]
    public void Deployment_RunsAsTheImagesNonRootUser_ReadOnlyWithoutCapabilities()
    {
        var pod = Deployment.At("spec.template.spec.securityContext");
        Assert.Equal("true", pod.Str("runAsNonRoot"));
        var imageUser = Assert.Single(Dockerfile.Load().FinalArgs("USER")).Split(':');
        Assert.Equal(imageUser[0], pod.Str("runAsUser"));
        Assert.Equal(imageUser[^1], pod.Str("runAsGroup"));

        var container = Container.At("securityContext");
        Assert.Equal("true", container.Str("readOnlyRootFilesystem"));
        Assert.Equal("false", container.Str("allowPrivilegeEscalation"));
        Assert.Equal(["ALL"], container.Seq("capabilities.drop").Select(c => c.Str()));

        // A read-only root needs a writable /tmp (.NET's diagnostics socket).
        var tmp = Assert.Single(Container.Seq("volumeMounts"), m => m.Str("mountPath") == "/tmp");
        Assert.NotNull(Assert.Single(Deployment.Seq("spec.template.spec.volumes"), v => v.Str("name") == tmp.Str("name")).Find("emptyDir"));
    }

    [Fact]
    public void Deployment_Resources_RequestAndLimitWholeCpusAndMemory()
    {
        foreach (var kind in new[] { "requests", "limits" })
        {
            var cpu = Container.Str($"resources.{kind}.cpu");
            Assert.True(int.TryParse(cpu, out var cores) && cores >= 1, $"{kind}.cpu '{cpu}': whole CPUs, threads follow the limit");
            Assert.Matches("^[0-9]+(Mi|Gi)$", Container.Str($"resources.{kind}.memory"));
        }
        Assert.Equal(Container.Str("resources.requests.cpu"), Container.Str("resources.limits.cpu"));
    }

    [Fact]
    public void ScaledObject_RabbitMqTrigger_CountsUnackedJobsOfTheJobsQueue()
    {
        var scaled = Kind("ScaledObject");
        Assert.Equal(Deployment.Str("metadata.name"), scaled.Str("spec.scaleTargetRef.name"));
        var trigger = Assert.Single(scaled.Seq("spec.triggers"));
        Assert.Equal("rabbitmq", trigger.Str("type"));
        Assert.Equal(Repo.JobsQueue, trigger.Str("metadata.queueName"));
        Assert.Equal("http", trigger.Str("metadata.protocol")); // amqp would count ready messages only
        Assert.Equal("QueueLength", trigger.Str("metadata.mode"));
        var slots = Repo.AppSettings.GetProperty("Inference").GetProperty("Slots").GetInt32();
        Assert.Equal(slots, trigger.Int("metadata.value"));
        Assert.Equal(Kind("TriggerAuthentication").Str("metadata.name"), trigger.Str("authenticationRef.name"));
    }

    [Fact]
    public void TriggerAuthentication_ReadsTheKedaUserFromTheSecret()
    {
        var auth = Kind("TriggerAuthentication");
        var secretName = Kind("Secret").Str("metadata.name");
        var refs = auth.Seq("spec.secretTargetRef").ToDictionary(r => r.Str("parameter"), r => r);
        Assert.Equal(["host", "password", "username"], refs.Keys.Order());
        Assert.All(refs.Values, r =>
        {
            Assert.Equal(secretName, r.Str("name"));
            Assert.True(SecretData.ContainsKey(r.Str("key")), $"Secret lacks key {r.Str("key")}");
        });

        var host = new Uri(SecretData[refs["host"].Str("key")]);
        Assert.Equal("http", host.Scheme);
        Assert.Equal(15672, host.Port);
        Assert.Equal(Definitions.KedaUser, SecretData[refs["username"].Str("key")]);
        Assert.True(Definitions.PasswordMatches(Definitions.KedaUser, SecretData[refs["password"].Str("key")]));
    }

    [Fact]
    public void Secret_WorkerUri_IsTheWorkerUserWithItsDefinitionsPassword()
    {
        var key = Assert.Single(Container.Seq("env"), e => e.Str("name") == "RabbitMq__Uri").Str("valueFrom.secretKeyRef.key");
        var (user, password) = Definitions.Credentials(SecretData[key]);
        Assert.Equal(Definitions.WorkerUser, user);
        Assert.True(Definitions.PasswordMatches(user, password));
    }
}
