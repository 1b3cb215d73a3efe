using System.Diagnostics;
using System.Globalization;
using QueueWorker.Contracts;
using QueueWorker.Messaging;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace QueueWorker.Bench;

/// <summary>A worker layout: <see cref="Workers"/> processes of <see cref="Threads"/> inference threads each.</summary>
public sealed record WorkerLayout(int Workers, int Threads)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Workers}x{Threads}");

    /// <summary>Parses <c>2x1</c> (workers x threads).</summary>
    public static bool TryParse(string text, out WorkerLayout layout)
    {
        layout = new WorkerLayout(0, 0);
        var parts = text.Split('x');
        if (parts.Length == 2
            && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var workers) && workers is >= 1 and <= 16
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var threads) && threads is >= 1 and <= 64)
        {
            layout = new WorkerLayout(workers, threads);
            return true;
        }

        return false;
    }
}

/// <summary>What <c>qwbench cluster</c> measures.</summary>
/// <param name="BrokerUri">The cluster: comma-separated node URIs (the workers get all of them; the producer connects to the first).</param>
public sealed record ClusterBenchPlan(
    string WorkerDll,
    string BrokerUri,
    string Model,
    IReadOnlyList<WorkerLayout> Layouts,
    int Jobs,
    int Rounds,
    int Slots,
    BrokerLoadPlan? BrokerLoad,
    double TimeoutSeconds = 900);

/// <summary>One layout's throughput over the rounds (jobs/s from the first publish to the last result).</summary>
public sealed record LayoutResult(WorkerLayout Layout, IReadOnlyList<double> JobsPerSecond, IReadOnlyDictionary<string, int> ResultsByWorker);

/// <summary>Everything <c>qwbench cluster</c> measured; the mean job and result sizes are those of the scale-out rounds.</summary>
public sealed record ClusterBenchResult(IReadOnlyList<LayoutResult> Layouts, IReadOnlyList<BrokerLoadResult> Broker, int MeanJobBytes, int MeanResultBytes);

/// <summary>
/// Scale-out on a cluster: the same short jobs through 1, 2, 3… worker processes (each layout freshly started on its own
/// queues, rounds interleaved so that a change of machine load hits every layout alike), then the broker's own
/// publish+ack rate for messages the size of a job and of a result (<see cref="BrokerLoad"/>).
/// </summary>
public sealed class ClusterBenchRunner(ClusterBenchPlan plan, Action<string> log)
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(300);
    private int _nextId;

    private long _jobBytes;
    private long _resultBytes;
    private long _measured;

    public async Task<ClusterBenchResult> RunAsync(CancellationToken ct)
    {
        var endpoints = BrokerEndpoints.Parse(plan.BrokerUri, "--broker-uri");
        var producerUri = plan.BrokerUri.Split(',')[0].Trim();
        var rates = plan.Layouts.ToDictionary(l => l, _ => new List<double>());
        var byWorker = plan.Layouts.ToDictionary(l => l, _ => new Dictionary<string, int>(StringComparer.Ordinal));
        await using (var broker = await BenchBroker.ConnectAsync(producerUri, ct))
        {
            // Warm-up: one round of the first layout, not recorded (page cache, JIT, the broker's first queues).
            await RoundAsync(broker, plan.Layouts[0], -1, null, ct);
            for (var round = 0; round < plan.Rounds; round++)
            {
                // Rotated order per round: A B C, B C A, C A B.
                for (var k = 0; k < plan.Layouts.Count; k++)
                {
                    var layout = plan.Layouts[(k + round) % plan.Layouts.Count];
                    var rate = await RoundAsync(broker, layout, round, byWorker[layout], ct);
                    rates[layout].Add(rate);
                }
            }
        }

        var layouts = plan.Layouts.Select(l => new LayoutResult(l, rates[l], byWorker[l])).ToList();
        var meanJob = (int)(_jobBytes / Math.Max(1, _measured));
        var meanResult = (int)(_resultBytes / Math.Max(1, _measured));
        log($"mean sizes of the scale-out rounds: job {meanJob} B, result {meanResult} B");
        var load = new List<BrokerLoadResult>();
        if (plan.BrokerLoad is { } given)
        {
            var loadPlan = given with
            {
                JobBytes = given.JobBytes > 0 ? given.JobBytes : meanJob,
                ResultBytes = given.ResultBytes > 0 ? given.ResultBytes : meanResult,
            };
            for (var round = 0; round < loadPlan.Rounds; round++)
            {
                var result = await BrokerLoad.RunAsync(endpoints, loadPlan, ct);
                log(result.ToString());
                load.Add(result);
            }
        }

        return new ClusterBenchResult(layouts, load, meanJob, meanResult);
    }

    private async Task<double> RoundAsync(BenchBroker broker, WorkerLayout layout, int round, Dictionary<string, int>? byWorker, CancellationToken ct)
    {
        var queues = broker.NewQueues($"scale{layout}.r{round + 1}");
        var workers = new List<WorkerProcess>();
        try
        {
            for (var w = 0; w < layout.Workers; w++)
            {
                workers.Add(WorkerProcess.Start(plan.WorkerDll, $"{layout}#{w + 1}", WorkerSettings(queues, layout, w)));
            }

            await Task.WhenAll(workers.Select(w => w.WaitReadyAsync(ReadyTimeout, ct)));
            var results = await broker.ConsumeAsync(queues.Results, ct);
            var waits = new List<Task<ArrivedResult>>(plan.Jobs);
            var start = Stopwatch.GetTimestamp();
            for (var i = 0; i < plan.Jobs; i++)
            {
                var job = WorkerBenchRunner.SmallJob(i, $"scale-{Interlocked.Increment(ref _nextId)}");
                _jobBytes += JobSerializer.Serialize(job).Length;
                waits.Add(await broker.PublishAsync(queues.Jobs, results, job, ct));
            }

            ArrivedResult[] arrived;
            try
            {
                arrived = await Task.WhenAll(waits).WaitAsync(TimeSpan.FromSeconds(plan.TimeoutSeconds), ct);
            }
            catch (TimeoutException)
            {
                var tails = string.Join("\n", workers.Select(w => $"--- {w.Name} (exited: {w.HasExited})\n{w.OutputTail}"));
                throw new TimeoutException($"{layout}: {waits.Count(t => t.IsCompletedSuccessfully)} of {plan.Jobs} results within {plan.TimeoutSeconds:F0} s.\n{tails}");
            }

            var failed = arrived.FirstOrDefault(r => r.Result.Status != JobStatus.Completed);
            if (failed is not null)
            {
                throw new InvalidOperationException($"{layout}: job {failed.Result.Id} failed: {failed.Result.Error?.Code}: {failed.Result.Error?.Message}");
            }

            _resultBytes += arrived.Sum(r => (long)r.Bytes);
            _measured += arrived.Length;
            var seconds = Stopwatch.GetElapsedTime(start, arrived.Max(r => r.ArrivedAt)).TotalSeconds;
            var rate = plan.Jobs / seconds;
            if (byWorker is not null)
            {
                foreach (var group in arrived.GroupBy(r => r.Result.Worker?.Id ?? "?", StringComparer.Ordinal))
                {
                    byWorker[group.Key] = byWorker.GetValueOrDefault(group.Key) + group.Count();
                }
            }

            log(string.Create(CultureInfo.InvariantCulture,
                $"{(round < 0 ? "warm-up" : $"round {round + 1}")} {layout}: {plan.Jobs} jobs in {seconds:F2} s = {rate:F1} jobs/s " +
                $"(by worker: {string.Join(", ", arrived.GroupBy(r => r.Result.Worker?.Id ?? "?").OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => g.Count()))})"));
            return rate;
        }
        finally
        {
            foreach (var worker in workers)
            {
                await worker.DisposeAsync();
            }
        }
    }

    private Dictionary<string, string> WorkerSettings(WorkerQueues queues, WorkerLayout layout, int index)
    {
        var settings = WorkerProcess.Settings(plan.BrokerUri, queues, plan.Model, layout.Threads);
        settings["Worker:Id"] = $"w{index + 1}";
        settings["Inference:Slots"] = plan.Slots.ToString(CultureInfo.InvariantCulture);
        return settings;
    }
}

/// <summary>The broker load: messages per stream, their sizes (0 = the mean sizes the scale-out rounds measured), publishes
/// awaiting a confirm at once, consumer prefetch.</summary>
public sealed record BrokerLoadPlan(int Messages, int JobBytes, int ResultBytes, int InFlight, int Prefetch, int Rounds);

/// <summary>One stream: <see cref="Messages"/> of <see cref="Bytes"/> published with confirms and consumed with one ack each.</summary>
public sealed record BrokerStreamResult(string Name, int Bytes, int Messages, double ConfirmedPerSecond, double AckedPerSecond, string PublisherNode, string ConsumerNode)
{
    /// <summary>From the first publish to the last ack.</summary>
    public double AckedSeconds => Messages / AckedPerSecond;
}

/// <summary>A job stream and a result stream run at the same time: one job's traffic is one of each.</summary>
public sealed record BrokerLoadResult(BrokerStreamResult Jobs, BrokerStreamResult Results)
{
    /// <summary>Job round trips per second the broker carried: pairs of (job, result) fully published, delivered and acked,
    /// over the longer of the two streams (each timed from its first publish, after connecting and declaring).</summary>
    public double JobCyclesPerSecond => Math.Min(Jobs.Messages, Results.Messages) / Math.Max(Jobs.AckedSeconds, Results.AckedSeconds);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"broker: {JobCyclesPerSecond:F0} job cycles/s; jobs {Jobs.Bytes} B: {Jobs.ConfirmedPerSecond:F0} confirmed/s, {Jobs.AckedPerSecond:F0} acked/s " +
        $"(publisher on {Jobs.PublisherNode}, consumer on {Jobs.ConsumerNode}); results {Results.Bytes} B: {Results.ConfirmedPerSecond:F0} confirmed/s, " +
        $"{Results.AckedPerSecond:F0} acked/s (publisher on {Results.PublisherNode}, consumer on {Results.ConsumerNode})");
}

/// <summary>
/// A PerfTest-style load with RabbitMQ.Client, the way QueueWorker uses the broker: durable quorum queues (replicated on
/// every node), persistent messages published with publisher confirms (<see cref="BrokerLoadPlan.InFlight"/> awaited at
/// once, as a busy producer or many workers would), consumed with a prefetch and one ack per message. The job stream and
/// the result stream run together on their own connections (endpoints in random order, as the worker picks them).
/// </summary>
public static class BrokerLoad
{
    public static async Task<BrokerLoadResult> RunAsync(BrokerEndpoints endpoints, BrokerLoadPlan plan, CancellationToken ct)
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        var jobs = RunStreamAsync(endpoints, $"qw-bench.broker.{run}.jobs", "jobs", plan.JobBytes, plan, ct);
        var results = RunStreamAsync(endpoints, $"qw-bench.broker.{run}.results", "results", plan.ResultBytes, plan, ct);
        var both = await Task.WhenAll(jobs, results);
        return new BrokerLoadResult(both[0], both[1]);
    }

    private static async Task<BrokerStreamResult> RunStreamAsync(BrokerEndpoints endpoints, string queue, string name, int bytes, BrokerLoadPlan plan, CancellationToken ct)
    {
        var factory = endpoints.ApplyTo(new ConnectionFactory { ClientProvidedName = "qw-bench-broker" });
        await using var publisher = await endpoints.ConnectAsync(factory, ct);
        await using var consumer = await endpoints.ConnectAsync(factory, ct);
        await using var pub = await publisher.CreateChannelAsync(
            new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), ct);
        await using var sub = await consumer.CreateChannelAsync(cancellationToken: ct);
        // Declared through the publisher's connection: the leader sits on its node (client-local), as when a worker declares.
        await pub.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false,
            new Dictionary<string, object?> { ["x-queue-type"] = "quorum" }, cancellationToken: ct);
        try
        {
            var body = new byte[bytes];
            Array.Fill(body, (byte)'x');
            var acked = 0;
            var allAcked = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
            await sub.BasicQosAsync(0, (ushort)plan.Prefetch, false, ct);
            var handler = new AsyncEventingBasicConsumer(sub);
            handler.ReceivedAsync += async (_, ea) =>
            {
                await sub.BasicAckAsync(ea.DeliveryTag, multiple: false, ct);
                if (Interlocked.Increment(ref acked) == plan.Messages)
                {
                    allAcked.TrySetResult(Stopwatch.GetTimestamp());
                }
            };
            var start = Stopwatch.GetTimestamp();
            await sub.BasicConsumeAsync(queue, autoAck: false, handler, ct);

            var window = new List<ValueTask>(plan.InFlight);
            for (var i = 0; i < plan.Messages; i++)
            {
                // Properties of their own: a publish still waiting for its turn on the channel holds them.
                var props = new BasicProperties
                {
                    DeliveryMode = DeliveryModes.Persistent,
                    ContentType = "application/json",
                    MessageId = i.ToString(CultureInfo.InvariantCulture),
                };
                window.Add(pub.BasicPublishAsync("", queue, mandatory: false, props, body, ct));
                if (window.Count == plan.InFlight || i == plan.Messages - 1)
                {
                    // Each completes when the broker confirmed its message (a nack throws).
                    foreach (var confirm in window)
                    {
                        await confirm;
                    }

                    window.Clear();
                }
            }

            var confirmedSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            var ackedAt = await allAcked.Task.WaitAsync(TimeSpan.FromSeconds(300), ct);
            var ackedSeconds = Stopwatch.GetElapsedTime(start, ackedAt).TotalSeconds;
            return new BrokerStreamResult(name, bytes, plan.Messages, plan.Messages / confirmedSeconds, plan.Messages / ackedSeconds,
                NodeOf(publisher), NodeOf(consumer));
        }
        finally
        {
            await pub.QueueDeleteAsync(queue, cancellationToken: CancellationToken.None);
        }
    }

    private static string NodeOf(IConnection connection) =>
        string.Create(CultureInfo.InvariantCulture, $"{connection.Endpoint.HostName}:{connection.Endpoint.Port}");
}
