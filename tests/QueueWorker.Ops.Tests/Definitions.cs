using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using QueueWorker.Messaging;

namespace QueueWorker.Ops.Tests;

/// <summary>ops/rabbitmq/definitions.json, and the worker's RabbitMq options bound from appsettings.json the way the host binds them.</summary>
internal static class Definitions
{
    public const string WorkerUser = "queueworker-worker";
    public const string ProducerUser = "queueworker-producer";
    public const string KedaUser = "queueworker-keda";
    public const string AdminUser = "queueworker-admin";

    public static JsonElement Root => JsonDocument.Parse(Repo.Read("ops/rabbitmq/definitions.json")).RootElement;

    public static RabbitMqOptions WorkerOptions()
    {
        var configuration = new ConfigurationBuilder().AddJsonFile(Repo.PathOf("appsettings.json"), optional: false).Build();
        return configuration.GetSection(RabbitMqOptions.Section).Get<RabbitMqOptions>()
               ?? throw new InvalidOperationException("appsettings.json has no RabbitMq section");
    }

    public static JsonElement Queue(string name) =>
        Root.GetProperty("queues").EnumerateArray().SingleOrDefault(q => q.GetProperty("name").GetString() == name) is { ValueKind: JsonValueKind.Object } queue
            ? queue
            : throw new Xunit.Sdk.XunitException($"definitions.json declares no queue '{name}'");

    public static JsonElement User(string name) =>
        Root.GetProperty("users").EnumerateArray().SingleOrDefault(u => u.GetProperty("name").GetString() == name) is { ValueKind: JsonValueKind.Object } user
            ? user
            : throw new Xunit.Sdk.XunitException($"definitions.json has no user '{name}'");

    public static (string Configure, string Write, string Read) Permissions(string user)
    {
        var p = Root.GetProperty("permissions").EnumerateArray().Single(p => p.GetProperty("user").GetString() == user);
        return (p.GetProperty("configure").GetString()!, p.GetProperty("write").GetString()!, p.GetProperty("read").GetString()!);
    }

    /// <summary>RabbitMQ's rabbit_password_hashing_sha256: base64(salt[4] ++ sha256(salt ++ utf8(password))).</summary>
    public static bool PasswordMatches(string user, string password)
    {
        var entry = User(user);
        Assert.Equal("rabbit_password_hashing_sha256", entry.GetProperty("hashing_algorithm").GetString());
        var hash = Convert.FromBase64String(entry.GetProperty("password_hash").GetString()!);
        Assert.Equal(36, hash.Length);
        var digest = SHA256.HashData([.. hash.AsSpan(0, 4), .. Encoding.UTF8.GetBytes(password)]);
        return digest.AsSpan().SequenceEqual(hash.AsSpan(4));
    }

    /// <summary>User and password of an <c>amqp://user:password@host/</c> or <c>http://</c> URI.</summary>
    public static (string User, string Password) Credentials(string uri)
    {
        var info = new Uri(uri).UserInfo.Split(':', 2);
        Assert.True(info.Length == 2, $"'{uri}' carries no user:password");
        return (Uri.UnescapeDataString(info[0]), Uri.UnescapeDataString(info[1]));
    }
}
