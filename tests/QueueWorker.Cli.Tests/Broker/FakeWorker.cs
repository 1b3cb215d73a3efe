using System.Collections.Concurrent;
using QueueWorker.Contracts;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace QueueWorker.Cli.Tests.Broker;

/// <summary>One job as the fake worker received it, with its AMQP properties.</summary>
public sealed record ReceivedJob(string? MessageId, string? CorrelationId, string? ReplyTo, string? ContentType, bool Persistent, long Timestamp, byte[] Body, JobRequest? Job,
    string? Expiration = null);

/// <summary>
/// Plays the worker's side of the contract with raw RabbitMQ.Client code, so qw is tested before the
/// real worker is merged: declares the jobs queue as the worker does (quorum, delivery limit), consumes
/// with manual acks, and publishes a result to reply_to with the correlation_id echoed and
/// message_id = job id. The text is "echo: " + the prompt (or the last message).
/// </summary>
public sealed class FakeWorker : IAsyncDisposable
{
    private readonly IConnection _connection;
    private readonly IChannel _channel;
    private readonly ConcurrentQueue<(ReceivedJob Job, ulong DeliveryTag)> _held = new();
    private readonly SemaphoreSlim _publishLock = new(1, 1);

    private FakeWorker(IConnection connection, IChannel channel, string queue)
    {
        _connection = connection;
        _channel = channel;
        JobsQueue = queue;
    }

    public string JobsQueue { get; }
    public ConcurrentQueue<ReceivedJob> Received { get; } = new();

    /// <summary>False: deliveries are held unanswered and unacked (a worker busy or stuck).</summary>
    public volatile bool Answering = true;

    /// <summary>Every result published twice (a redelivered job answered again).</summary>
    public bool DuplicateReplies { get; init; }

    /// <summary>Builds the result of a job; the default echoes the prompt.</summary>
    public Func<ReceivedJob, JobResult> Reply { get; set; } = Echo;

    public static async Task<FakeWorker> StartAsync(BrokerFixture broker, bool duplicateReplies = false)
    {
        var queue = BrokerFixture.UniqueName("qw-test.jobs");
        var connection = await new ConnectionFactory { Uri = new Uri(broker.Uri), ClientProvidedName = "qw-tests fake worker" }.CreateConnectionAsync();
        var channel = await connection.CreateChannelAsync();
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments: new Dictionary<string, object?>
        {
            ["x-queue-type"] = "quorum",
            ["x-delivery-limit"] = 3,
        });
        await channel.BasicQosAsync(0, 1000, false);
        var worker = new FakeWorker(connection, channel, queue) { DuplicateReplies = duplicateReplies };
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += (_, delivery) => worker.OnJobAsync(delivery);
        await channel.BasicConsumeAsync(queue, autoAck: false, consumer);
        return worker;
    }

    private async Task OnJobAsync(BasicDeliverEventArgs delivery)
    {
        var p = delivery.BasicProperties;
        var body = delivery.Body.ToArray();
        var parsed = JobParser.Parse(body, JobLimits.Default, p.MessageId);
        var job = new ReceivedJob(p.MessageId, p.CorrelationId, p.ReplyTo, p.ContentType, p.Persistent, p.Timestamp.UnixTime, body, parsed.Job, p.Expiration);
        Received.Enqueue(job);
        if (!Answering)
        {
            _held.Enqueue((job, delivery.DeliveryTag));
            // Answering may have been switched on meanwhile: do not leave this one behind.
            if (Answering) await ReleaseHeldAsync();
            return;
        }
        await AnswerAsync(job, delivery.DeliveryTag);
    }

    /// <summary>Answers (to their original reply_to) and acks every held delivery.</summary>
    public async Task ReleaseHeldAsync()
    {
        while (_held.TryDequeue(out var held))
            await AnswerAsync(held.Job, held.DeliveryTag);
    }

    private async Task AnswerAsync(ReceivedJob job, ulong deliveryTag)
    {
        var result = Reply(job);
        var properties = new BasicProperties
        {
            Persistent = true,
            ContentType = "application/json",
            MessageId = result.Id,
            CorrelationId = job.CorrelationId,
        };
        var bytes = JobSerializer.Serialize(result);
        await _publishLock.WaitAsync();
        try
        {
            // Not mandatory: the reply queue of a client that went away simply drops the result, as with the real worker.
            for (var i = 0; i < (DuplicateReplies ? 2 : 1); i++)
                await _channel.BasicPublishAsync("", job.ReplyTo ?? "", false, properties, bytes);
            await _channel.BasicAckAsync(deliveryTag, false);
        }
        finally
        {
            _publishLock.Release();
        }
    }

    public static JobResult Echo(ReceivedJob received)
    {
        var job = received.Job;
        if (job is null)
            return JobResult.Failed(received.MessageId ?? "?", new JobError(ErrorCodes.InvalidJson, "fake worker: not a valid job"));
        var input = job.Prompt ?? job.Messages![^1].Content;
        var promptTokens = input.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
        return new JobResult
        {
            Id = job.Id!,
            Status = JobStatus.Completed,
            Text = "echo: " + input,
            FinishReason = FinishReasons.Length,
            Usage = new Usage(promptTokens, 3, 0),
            Timings = new Timings { QueuedMs = 1, PromptMs = 2, PromptTokensPerS = 500, FirstTokenMs = 3, GenerationMs = 4, TokensPerS = 500, TotalMs = 10, CpuMs = 5 },
            Worker = new WorkerInfo("fake-worker", "fake.gguf", 2, 512, 4, "0.0.0"),
            Metadata = job.Metadata,
        };
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _channel.QueueDeleteAsync(JobsQueue);
        }
        finally
        {
            await _channel.DisposeAsync();
            await _connection.DisposeAsync();
        }
    }
}
