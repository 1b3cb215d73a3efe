using System.Text.Json;
using System.Text.Json.Nodes;
using RabbitMQ.Client;

namespace QueueWorker.Ops.Tests;

/// <summary>
/// The shared RabbitMQ (QW_TEST_RABBITMQ_URI, node QW_TEST_RABBITMQ_NODE) with ops/rabbitmq/definitions.json imported
/// into a fresh virtual host, its users renamed with a unique prefix so that tests running at the same time (and the
/// real users) are never touched. Everything is deleted afterwards. A missing broker fails the tests.
/// </summary>
public sealed class DefinitionsFixture : IAsyncLifetime
{
    public static string Node => Rabbitmqctl.Shared.Node;

    private readonly string _id = Guid.NewGuid().ToString("N")[..10];
    private readonly List<string> _vhosts = [];
    private readonly List<string> _users = [];

    public string VirtualHost => $"qw-ops-{_id}";

    /// <summary>The test's name for a user of definitions.json ("queueworker-worker" -> "qw-ops-1234-worker").</summary>
    public string UserName(string definitionsUser) => $"qw-ops-{_id}" + definitionsUser["queueworker".Length..];

    public string ScriptUserPrefix => $"qw-ops-{_id}-script";

    public string ScriptVirtualHost => $"qw-ops-{_id}-script";

    public async Task InitializeAsync()
    {
        var (code, output) = await RabbitMqCtlAsync(["-q", "await_startup", "--timeout", "20"]);
        Assert.True(code == 0, $"RabbitMQ node {Node} is not running (start it with ops/rabbitmq/start-local.sh, or set QW_TEST_RABBITMQ_NODE): {output}");

        // definitions.json with the vhost and user names of this fixture.
        var definitions = JsonNode.Parse(Repo.Read("ops/rabbitmq/definitions.json"))!.AsObject();
        definitions["vhosts"] = new JsonArray(new JsonObject { ["name"] = VirtualHost });
        foreach (var user in definitions["users"]!.AsArray())
        {
            var name = UserName(user!["name"]!.GetValue<string>());
            user["name"] = name;
            _users.Add(name);
        }
        foreach (var permission in definitions["permissions"]!.AsArray())
        {
            permission!["user"] = UserName(permission["user"]!.GetValue<string>());
            permission["vhost"] = VirtualHost;
        }
        foreach (var queue in definitions["queues"]!.AsArray())
            queue!["vhost"] = VirtualHost;
        _vhosts.Add(VirtualHost);

        // Through standard input (a file path would be read by the broker's own user); the import is asynchronous.
        (code, output) = await RabbitMqCtlAsync(["import_definitions"], stdin: definitions.ToJsonString());
        Assert.True(code == 0, $"rabbitmqctl import_definitions failed: {output}");
        for (var attempt = 0; ; attempt++)
        {
            var (queuesCode, queues) = await RabbitMqCtlAsync(["-s", "list_queues", "-p", VirtualHost, "name"]);
            var permissions = queuesCode == 0 ? await PermissionsAsync(VirtualHost) : [];
            if (permissions.Count == definitions["permissions"]!.AsArray().Count
                && queues.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length == definitions["queues"]!.AsArray().Count)
                break;
            Assert.True(attempt < 60, $"definitions not imported into {VirtualHost} after 30 s: {queues}");
            await Task.Delay(500);
        }

        _vhosts.Add(ScriptVirtualHost);
        _users.AddRange(new[] { "worker", "producer", "keda" }.Select(u => $"{ScriptUserPrefix}-{u}"));
    }

    public async Task DisposeAsync()
    {
        foreach (var vhost in _vhosts)
            await RabbitMqCtlAsync(["-q", "delete_vhost", vhost]);
        foreach (var user in _users)
            await RabbitMqCtlAsync(["-q", "delete_user", user]);
    }

    public async Task<IConnection> ConnectAsync(string definitionsUser, string password, string? vhost = null)
    {
        var shared = new Uri(TestSettings.RabbitMqUri);
        var factory = new ConnectionFactory
        {
            HostName = shared.Host,
            Port = shared.IsDefaultPort ? 5672 : shared.Port,
            VirtualHost = vhost ?? VirtualHost,
            UserName = UserName(definitionsUser),
            Password = password,
            ClientProvidedName = "qw-ops-tests",
        };
        return await factory.CreateConnectionAsync();
    }

    /// <summary>rabbitmqctl on the shared node, whatever its exit code (<paramref name="stdin"/> e.g. for import_definitions).</summary>
    public static async Task<(int ExitCode, string Output)> RabbitMqCtlAsync(IEnumerable<string> args, string? stdin = null)
    {
        var result = await Rabbitmqctl.Shared.RunCommandAsync(args, stdin);
        return (result.Code, result.Output);
    }

    /// <summary>Permissions of a vhost as rabbitmqctl reports them: user -> (configure, write, read).</summary>
    public static async Task<Dictionary<string, (string Configure, string Write, string Read)>> PermissionsAsync(string vhost)
    {
        var (code, output) = await RabbitMqCtlAsync(["-q", "list_permissions", "-p", vhost, "--formatter", "json"]);
        Assert.True(code == 0, output);
        return JsonDocument.Parse(output).RootElement.EnumerateArray().ToDictionary(
            p => p.GetProperty("user").GetString()!,
            p => (p.GetProperty("configure").GetString()!, p.GetProperty("write").GetString()!, p.GetProperty("read").GetString()!));
    }
}

[CollectionDefinition(Name)]
public sealed class BrokerCollection : ICollectionFixture<DefinitionsFixture>
{
    public const string Name = "broker";
}
