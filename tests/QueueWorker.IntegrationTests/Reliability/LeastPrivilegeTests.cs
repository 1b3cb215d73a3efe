using System.Text.RegularExpressions;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;
using Xunit.Abstractions;

namespace QueueWorker.IntegrationTests.Reliability;

/// <summary>
/// Least privilege: the worker runs as its own broker user that may read the jobs queue and write results only.
/// The users are temporary (created with rabbitmqctl, deleted at the end) and get the permission regexes of
/// ops/rabbitmq/definitions.json (copied here, applied to this test's unique queue names, as apply-users.sh does).
/// </summary>
[Collection(ReliabilityCollection.Name)]
[Trait("Category", "Integration")]
public sealed class LeastPrivilegeTests(ITestOutputHelper output)
{
    private const ushort AccessRefused = 403;

    [Fact]
    public async Task WorkerWithOwnUser_CompletesJobsButCannotReadResultsOrParkedJobs()
    {
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var jobs = TestBroker.UniqueName("lp.jobs");
        var results = TestBroker.UniqueName("lp.results");
        var dlq = jobs + ".dlq";
        var parked = jobs + ".parked";
        var (workerUser, workerPassword) = ($"qw-rel-worker-{suffix}", Guid.NewGuid().ToString("N"));
        var (producerUser, producerPassword) = ($"qw-rel-producer-{suffix}", Guid.NewGuid().ToString("N"));
        var ctl = Rabbitmqctl.Shared;
        string E(string name) => Regex.Escape(name);
        await using var admin = await TestBroker.ConnectAsync();
        admin.Own(jobs);
        admin.Own(dlq);
        admin.Own(parked);
        admin.Own(results);
        try
        {
            // Temporary users: the passwords are random and the users deleted below, so rabbitmqctl's argv is acceptable here.
            await ctl.RunAsync("add_user", workerUser, workerPassword);
            // The control exchange (cancels) and the worker's own control queue, as definitions.json grants them.
            var control = E("llm.control");
            await ctl.RunAsync("set_permissions", "-p", "/", workerUser, $@"^({E(jobs)}|{E(dlq)}|{E(parked)}|{E(results)}|{control}|{control}\.worker-[0-9a-f]+)$",
                $@"^(amq\.default|{control}\.worker-[0-9a-f]+)$", $@"^({E(jobs)}|{E(dlq)}|{control}|{control}\.worker-[0-9a-f]+)$");
            await ctl.RunAsync("add_user", producerUser, producerPassword);
            await ctl.RunAsync("set_permissions", "-p", "/", producerUser, @"^amq\.gen-.*$", $@"^(amq\.default|{control})$", $"^({E(results)}|amq\\.gen-.*)$");

            var clientName = "qw-rel-lp-worker-" + suffix;
            await using var worker = WorkerProcess.Start(new Dictionary<string, string>
            {
                ["RabbitMq:Uri"] = Uri(workerUser, workerPassword),
                ["RabbitMq:JobsQueue"] = jobs,
                ["RabbitMq:ResultsQueue"] = results,
                ["RabbitMq:ClientName"] = clientName,
                ["Inference:ContextSize"] = "1024",
            });
            try
            {
                await worker.WaitReadyAsync(TimeSpan.FromSeconds(180));
                var connections = await ctl.RunAsync("list_connections", "-q", "user", "client_properties");
                Assert.Contains(connections.Split('\n'), l => l.Contains(clientName) && l.StartsWith(workerUser + "\t", StringComparison.Ordinal));

                // The producer publishes jobs and reads results with its own user.
                await using var producer = await TestBroker.ConnectAsync(Uri(producerUser, producerPassword));
                await using var collected = await producer.CollectAsync(results);
                var ids = Enumerable.Range(0, 3).Select(i => $"lp-{i}-{suffix}").ToList();
                foreach (var id in ids)
                    await producer.PublishAsync(jobs, ReliabilityHarness.JobJson(id, 8), p => p.MessageId = id);
                await collected.WaitForIdsAsync(ids, TimeSpan.FromSeconds(120));
                Assert.All(collected.All, r => Assert.Equal(Contracts.JobStatus.Completed, r.Result.Status));

                // The worker's user cannot read the results or the parked jobs (it reads the dead letters to answer them);
                // the producer's cannot read the jobs.
                await AssertAccessRefusedAsync(Uri(workerUser, workerPassword), results, output);
                await AssertAccessRefusedAsync(Uri(workerUser, workerPassword), parked, output);
                Assert.Contains("Consuming dead letters of", worker.Output);
                await AssertAccessRefusedAsync(Uri(producerUser, producerPassword), jobs, output);
                Assert.DoesNotContain("ACCESS_REFUSED", worker.Output);
            }
            finally
            {
                output.WriteLine(worker.Output);
            }
        }
        finally
        {
            await ctl.TryRunAsync("delete_user", workerUser);
            await ctl.TryRunAsync("delete_user", producerUser);
        }
    }

    private static string Uri(string user, string password)
    {
        var shared = new Uri(TestSettings.RabbitMqUri);
        return $"amqp://{System.Uri.EscapeDataString(user)}:{System.Uri.EscapeDataString(password)}@{shared.Host}:{shared.Port}/";
    }

    private static async Task AssertAccessRefusedAsync(string uri, string queue, ITestOutputHelper output)
    {
        var factory = new ConnectionFactory { Uri = new Uri(uri), ClientProvidedName = "qw-rel-lp-probe" };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var refused = await Assert.ThrowsAsync<OperationInterruptedException>(async () => await channel.BasicGetAsync(queue, autoAck: false));
        output.WriteLine($"basic.get {queue} as {new Uri(uri).UserInfo.Split(':')[0]}: {refused.ShutdownReason?.ReplyCode} {refused.ShutdownReason?.ReplyText}");
        Assert.Equal(AccessRefused, refused.ShutdownReason!.ReplyCode);
    }
}
