using System.Text.Json;
using YamlDotNet.RepresentationModel;

namespace QueueWorker.Ops.Tests;

/// <summary>The repository's files as the tests read them, found from the test binary's folder upwards.</summary>
internal static class Repo
{
    public static readonly string Root = FindRoot();

    public static string PathOf(string relative) => Path.Combine(Root, relative.Replace('/', Path.DirectorySeparatorChar));

    public static string Read(string relative)
    {
        var path = PathOf(relative);
        Assert.True(File.Exists(path), $"{relative} is missing from the repository");
        return File.ReadAllText(path);
    }

    /// <summary>Every configuration key of appsettings.json, as "Section:Key" (case-insensitive, like .NET configuration).</summary>
    public static readonly IReadOnlySet<string> ConfigKeys = LoadConfigKeys();

    public static JsonElement AppSettings { get; } = JsonDocument.Parse(Read("appsettings.json")).RootElement;

    public static int HttpPort => AppSettings.GetProperty("Http").GetProperty("Port").GetInt32();

    public static int ShutdownGraceSeconds => AppSettings.GetProperty("RabbitMq").GetProperty("ShutdownGraceSeconds").GetInt32();

    public static string JobsQueue => AppSettings.GetProperty("RabbitMq").GetProperty("JobsQueue").GetString()!;

    /// <summary>The environment variable <c>A__B__C</c> names the configuration key <c>A:B:C</c>.</summary>
    public static string ConfigKeyOf(string environmentVariable) => environmentVariable.Replace("__", ":", StringComparison.Ordinal);

    public static bool IsConfigurationVariable(string name) => name.Contains("__", StringComparison.Ordinal);

    public static IReadOnlyList<YamlMappingNode> YamlDocuments(string relative)
    {
        var stream = new YamlStream();
        using var reader = new StringReader(Read(relative));
        stream.Load(reader);
        return stream.Documents.Select(d => Assert.IsType<YamlMappingNode>(d.RootNode)).ToList();
    }

    public static YamlMappingNode Yaml(string relative) => Assert.Single(YamlDocuments(relative));

    private static string FindRoot() => TestSettings.RepositoryRoot;

    private static HashSet<string> LoadConfigKeys()
    {
        var keys = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        void Walk(JsonElement element, string prefix)
        {
            if (element.ValueKind == JsonValueKind.Object)
            {
                foreach (var property in element.EnumerateObject())
                    Walk(property.Value, prefix.Length == 0 ? property.Name : prefix + ":" + property.Name);
            }
            else
            {
                keys.Add(prefix);
            }
        }
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Root, "appsettings.json")));
        Walk(doc.RootElement, "");
        return keys;
    }
}

/// <summary>Small navigation helpers over YamlDotNet's representation model; a missing key fails the test and names the path.</summary>
internal static class YamlNav
{
    public static YamlNode At(this YamlNode node, string path)
    {
        var current = node;
        foreach (var key in path.Split('.'))
        {
            var map = Assert.IsType<YamlMappingNode>(current);
            Assert.True(map.Children.TryGetValue(new YamlScalarNode(key), out var next), $"YAML key '{key}' of '{path}' is missing");
            current = next!;
        }
        return current;
    }

    public static YamlNode? Find(this YamlNode node, string key) =>
        node is YamlMappingNode map && map.Children.TryGetValue(new YamlScalarNode(key), out var value) ? value : null;

    public static string Str(this YamlNode node, string path) => Assert.IsType<YamlScalarNode>(node.At(path)).Value!;

    public static string Str(this YamlNode node) => Assert.IsType<YamlScalarNode>(node).Value!;

    public static int Int(this YamlNode node, string path) => int.Parse(node.Str(path), System.Globalization.CultureInfo.InvariantCulture);

    public static IEnumerable<YamlNode> Seq(this YamlNode node, string path) => Assert.IsType<YamlSequenceNode>(node.At(path)).Children;

    public static IEnumerable<KeyValuePair<string, YamlNode>> Pairs(this YamlNode node, string path) =>
        Assert.IsType<YamlMappingNode>(node.At(path)).Children.Select(kv => KeyValuePair.Create(kv.Key.Str(), kv.Value));

    /// <summary>Every scalar below a node, depth first (to find values wherever a manifest nests them).</summary>
    public static IEnumerable<(string Key, YamlNode Value)> Walk(this YamlNode node)
    {
        switch (node)
        {
            case YamlMappingNode map:
                foreach (var (k, v) in map.Children)
                {
                    yield return (k.Str(), v);
                    foreach (var inner in v.Walk()) yield return inner;
                }
                break;
            case YamlSequenceNode seq:
                foreach (var item in seq.Children)
                    foreach (var inner in item.Walk()) yield return inner;
                break;
        }
    }
}
