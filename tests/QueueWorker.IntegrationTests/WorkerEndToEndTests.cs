using QueueWorker.Contracts;

namespace QueueWorker.IntegrationTests;

/// <summary>Jobs in through a real broker, the real stories260K model, results with timings out.</summary>
[Trait("Category", "Integration")]
public class WorkerEndToEndTests(WorkerFixture fixture) : IClassFixture<WorkerFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static string NewId() => "job-" + Guid.NewGuid().ToString("N")[..10];

    [Fact]
    public async Task Job_WithReplyTo_CompletesWithStoryUsageAndTimings()
    {
        var id = NewId();
        await fixture.Broker.PublishAsync(fixture.JobsQueue,
            $$$"""{"id":"{{{id}}}","prompt":"Once upon a time","max_tokens":40,"temperature":0,"metadata":{"doc":"d-7"}}""",
            p => { p.ReplyTo = fixture.ReplyQueue; p.CorrelationId = "corr-" + id; });

        var received = await fixture.Replies.WaitForIdAsync(id, Timeout);
        var result = received.Result;
        Assert.Equal(JobStatus.Completed, result.Status);
        Assert.Null(result.Error);
        // Greedy from "Once upon a time", stories260K tells of a little girl named Lily.
        Assert.Contains("Lily", result.Text);
        Assert.Contains("little girl", result.Text);
        Assert.Equal(id, received.MessageId);
        Assert.Equal("corr-" + id, received.CorrelationId);
        Assert.Equal("application/json", received.ContentType);
        Assert.True(received.Persistent);
        Assert.Equal("d-7", result.Metadata!.Value.GetProperty("doc").GetString());

        Assert.NotNull(result.Usage);
        Assert.Equal(5, result.Usage.PromptTokens); // BOS + "Once upon a time"
        Assert.InRange(result.Usage.CompletionTokens, 1, 40);
        Assert.Contains(result.FinishReason, new[] { FinishReasons.Length, FinishReasons.Stop });
        if (result.FinishReason == FinishReasons.Length) Assert.Equal(40, result.Usage.CompletionTokens);

        var t = result.Timings!;
        Assert.NotNull(t.QueuedMs);
        Assert.True(t.PromptMs > 0, "prompt_ms");
        Assert.True(t.PromptTokensPerS > 0, "prompt_tokens_per_s");
        Assert.True(t.FirstTokenMs >= t.PromptMs, "first_token_ms covers the prefill");
        Assert.True(t.GenerationMs > 0, "generation_ms");
        Assert.True(t.TokensPerS > 0, "tokens_per_s");
        Assert.True(t.TotalMs >= t.FirstTokenMs + t.GenerationMs - 1, "total_ms covers the rest");

        var worker = result.Worker!;
        Assert.Equal("stories260K.gguf", worker.Model);
        Assert.Equal(Environment.ProcessorCount, worker.Threads);
        Assert.Equal(1024, worker.Context);
        Assert.Equal(4, worker.Slots);
        Assert.False(string.IsNullOrEmpty(worker.Id));
        Assert.False(string.IsNullOrEmpty(worker.Version));
    }

    [Fact]
    public async Task Job_WithoutReplyTo_LandsInResultsQueue()
    {
        var id = NewId();
        await fixture.Broker.PublishAsync(fixture.JobsQueue, $$"""{"id":"{{id}}","prompt":"Once upon a time","max_tokens":8,"temperature":0}""");
        var received = await fixture.Results.WaitForIdAsync(id, Timeout);
        Assert.Equal(JobStatus.Completed, received.Result.Status);
        Assert.Equal(8, received.Result.Usage!.CompletionTokens);
        Assert.Equal(FinishReasons.Length, received.Result.FinishReason);
    }

    [Fact]
    public async Task Job_WithReplyToNotAllowed_LandsInResultsQueueWithWarning()
    {
        var id = NewId();
        var other = fixture.ReplyQueue + ".other-tenant";
        await fixture.Broker.PublishAsync(fixture.JobsQueue, $$"""{"id":"{{id}}","prompt":"Once upon a time","max_tokens":4,"temperature":0}""",
            p => p.ReplyTo = other);
        var received = await fixture.Results.WaitForIdAsync(id, Timeout);
        Assert.Equal(JobStatus.Completed, received.Result.Status);
        Assert.Equal($"reply_to '{other}' is not allowed (RabbitMq:ReplyToPattern); the result went to the results queue",
            Assert.Single(received.Result.Warnings!));
    }

    [Fact]
    public async Task Job_WithoutId_UsesAmqpMessageId()
    {
        var messageId = NewId();
        await fixture.Broker.PublishAsync(fixture.JobsQueue, """{"prompt":"Once upon a time","max_tokens":4}""", p => p.MessageId = messageId);
        var received = await fixture.Results.WaitForIdAsync(messageId, Timeout);
        Assert.Equal(messageId, received.MessageId);
    }

    [Fact]
    public async Task MalformedJson_GetsFailedResultAndIsAcked()
    {
        var messageId = NewId();
        await fixture.Broker.PublishAsync(fixture.JobsQueue, "{\"prompt\": \"Once upon", p => p.MessageId = messageId);
        var result = (await fixture.Results.WaitForIdAsync(messageId, Timeout)).Result;
        Assert.Equal(JobStatus.Failed, result.Status);
        Assert.Equal(ErrorCodes.InvalidJson, result.Error!.Code);
        Assert.NotNull(result.Worker);
        await AssertJobsQueueDrainsAsync();
    }

    [Fact]
    public async Task InvalidField_FailedResultNamesFieldAndRule()
    {
        var id = NewId();
        await fixture.Broker.PublishAsync(fixture.JobsQueue, $$"""{"id":"{{id}}","prompt":"x","temperature":7}""", p => p.ReplyTo = fixture.ReplyQueue);
        var result = (await fixture.Replies.WaitForIdAsync(id, Timeout)).Result;
        Assert.Equal(ErrorCodes.InvalidField, result.Error!.Code);
        Assert.Equal("temperature", result.Error.Field);
        Assert.Contains("from 0 to 2", result.Error.Message);
    }

    [Fact]
    public async Task StopString_EndsGenerationAndIsNotInText()
    {
        // Greedy continuation: ", there was a little girl named Lily. She loved ..."
        var id = NewId();
        await fixture.Broker.PublishAsync(fixture.JobsQueue,
            $$"""{"id":"{{id}}","prompt":"Once upon a time","max_tokens":60,"temperature":0,"stop":["Lily"]}""", p => p.ReplyTo = fixture.ReplyQueue);
        var result = (await fixture.Replies.WaitForIdAsync(id, Timeout)).Result;
        Assert.Equal(FinishReasons.StopSequence, result.FinishReason);
        Assert.Equal(", there was a little girl named ", result.Text);
    }

    [Fact]
    public async Task MaxTokens_IsHonouredExactly()
    {
        var id = NewId();
        await fixture.Broker.PublishAsync(fixture.JobsQueue,
            $$"""{"id":"{{id}}","prompt":"Once upon a time","max_tokens":3,"temperature":0}""", p => p.ReplyTo = fixture.ReplyQueue);
        var result = (await fixture.Replies.WaitForIdAsync(id, Timeout)).Result;
        Assert.Equal(FinishReasons.Length, result.FinishReason);
        Assert.Equal(3, result.Usage!.CompletionTokens);
        Assert.Equal(", there was", result.Text);
    }

    [Fact]
    public async Task GreedyJob_SameTextAloneAndBesideOthers()
    {
        const string Job = """{"id":"ID","prompt":"Once upon a time","max_tokens":24,"temperature":0}""";
        var alone = NewId();
        await fixture.Broker.PublishAsync(fixture.JobsQueue, Job.Replace("ID", alone), p => p.ReplyTo = fixture.ReplyQueue);
        var aloneText = (await fixture.Replies.WaitForIdAsync(alone, Timeout)).Result.Text;

        var ids = Enumerable.Range(0, 4).Select(_ => NewId()).ToArray();
        foreach (var id in ids)
            await fixture.Broker.PublishAsync(fixture.JobsQueue, Job.Replace("ID", id), p => p.ReplyTo = fixture.ReplyQueue);
        foreach (var id in ids)
            Assert.Equal(aloneText, (await fixture.Replies.WaitForIdAsync(id, Timeout)).Result.Text);
    }

    [Fact]
    public async Task Metrics_CountCompletedJobs()
    {
        var id = NewId();
        await fixture.Broker.PublishAsync(fixture.JobsQueue, $$"""{"id":"{{id}}","prompt":"Once","max_tokens":2}""", p => p.ReplyTo = fixture.ReplyQueue);
        await fixture.Replies.WaitForIdAsync(id, Timeout);
        var metrics = await fixture.Worker.GetAsync("/metrics");
        Assert.Contains("queueworker_jobs_total{status=\"completed\"", metrics);
        Assert.Contains("queueworker_slots_total 4", metrics);
        Assert.Contains("queueworker_broker_connected 1", metrics);
    }

    private async Task AssertJobsQueueDrainsAsync()
    {
        for (var i = 0; i < 50 && await fixture.Broker.MessageCountAsync(fixture.JobsQueue) > 0; i++) await Task.Delay(100);
        Assert.Equal(0u, await fixture.Broker.MessageCountAsync(fixture.JobsQueue));
    }
}
