using QueueWorker.Contracts;
using RabbitMQ.Client;

namespace QueueWorker.Messaging.Tests;

/// <summary>RabbitMq:ReplyToPattern on a real broker: a refused reply_to gets its result on the results queue, with a warning.</summary>
[Collection(RabbitMqCollection.Name)]
[Trait("Category", "Integration")]
public sealed class ReplyToTests(RabbitMqFixture broker, ITestOutputHelper output)
{
    [Fact]
    public async Task Consume_ReplyToNotAllowed_ResultOnResultsQueueWithWarningNothingInTheNamedQueue()
    {
        // The queue exists and the worker's user may write to it (another tenant's, say): the worker must not.
        var victim = broker.NewQueueName("tenant-b.results");
        await broker.DeclareClassicQueueAsync(victim);
        var options = broker.NewOptions("refused");
        await using var worker = await TestWorker.StartAsync(options, output);

        await broker.PublishJobAsync(options.JobsQueue, RabbitMqFixture.JobBody("job-refused"), p =>
        {
            p.MessageId = "job-refused";
            p.CorrelationId = "corr-refused";
            p.ReplyTo = victim;
        });
        var message = await broker.GetAsync(options.ResultsQueue);

        Assert.Equal("job-refused", message.BasicProperties.MessageId);
        Assert.Equal("corr-refused", message.BasicProperties.CorrelationId);
        Assert.Equal(DeliveryModes.Persistent, message.BasicProperties.DeliveryMode);
        var result = JobSerializer.DeserializeResult(message.Body.Span);
        Assert.Equal(JobStatus.Completed, result.Status);
        var warning = Assert.Single(result.Warnings!);
        Assert.Equal($"reply_to '{victim}' is not allowed (RabbitMq:ReplyToPattern); the result went to the results queue", warning);
        await worker.WaitUntilAsync(() => worker.Status.InFlight == 0, "the job is settled");
        Assert.Equal(0u, await broker.ReadyCountAsync(victim));
        Assert.Equal(0u, await broker.ReadyCountAsync(options.JobsQueue));
    }

    [Fact]
    public async Task Consume_ReplyToTheJobsQueue_NeverHonouredEvenByAMatchAllPattern()
    {
        var options = broker.NewOptions("loop", o => o.ReplyToPattern = ".*");
        await using var worker = await TestWorker.StartAsync(options, output);

        await broker.PublishJobAsync(options.JobsQueue, RabbitMqFixture.JobBody("job-loop"), p =>
        {
            p.MessageId = "job-loop";
            p.ReplyTo = options.JobsQueue;
        });
        var message = await broker.GetAsync(options.ResultsQueue);

        Assert.Single(JobSerializer.DeserializeResult(message.Body.Span).Warnings!);
        await worker.WaitUntilAsync(() => worker.Status.InFlight == 0, "the job is settled");
        Assert.Single(worker.Handler.Received);
        Assert.Equal(0u, await broker.ReadyCountAsync(options.JobsQueue));
    }

    [Fact]
    public async Task Consume_ReplyToMatchesPattern_ResultOnTheReplyQueueWithoutWarning()
    {
        var replyQueue = broker.NewQueueName("tenant-a.reply");
        await broker.DeclareClassicQueueAsync(replyQueue);
        var options = broker.NewOptions("allowed", o => o.ReplyToPattern = @"qw-test\.tenant-a\.reply\.[0-9a-f]{32}");
        await using var worker = await TestWorker.StartAsync(options, output);

        await broker.PublishJobAsync(options.JobsQueue, RabbitMqFixture.JobBody("job-allowed"), p =>
        {
            p.MessageId = "job-allowed";
            p.ReplyTo = replyQueue;
        });
        var reply = await broker.GetAsync(replyQueue);

        var result = JobSerializer.DeserializeResult(reply.Body.Span);
        Assert.Equal("job-allowed", result.Id);
        Assert.Null(result.Warnings);
        Assert.DoesNotContain("warnings", System.Text.Encoding.UTF8.GetString(reply.Body.Span));
        Assert.Equal(0u, await broker.ReadyCountAsync(options.ResultsQueue));
    }

    [Fact]
    public async Task Consume_ServerNamedReplyQueue_ResultThereWithNoPatternConfigured()
    {
        var options = broker.NewOptions("server-named");
        await using var worker = await TestWorker.StartAsync(options, output);
        await using var channel = await broker.OpenChannelAsync(confirms: false);
        var declared = await channel.QueueDeclareAsync(queue: "", durable: false, exclusive: false, autoDelete: false, arguments: null);
        var replyQueue = broker.Own(declared.QueueName);
        Assert.StartsWith(ReplyToPolicy.ServerNamedPrefix, replyQueue);

        await broker.PublishJobAsync(options.JobsQueue, RabbitMqFixture.JobBody("job-server-named"), p =>
        {
            p.MessageId = "job-server-named";
            p.ReplyTo = replyQueue;
        });
        var reply = await broker.GetAsync(replyQueue);

        var result = JobSerializer.DeserializeResult(reply.Body.Span);
        Assert.Equal("job-server-named", result.Id);
        Assert.Null(result.Warnings);
        Assert.Equal(0u, await broker.ReadyCountAsync(options.ResultsQueue));
    }
}
