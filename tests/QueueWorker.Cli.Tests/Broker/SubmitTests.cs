using QueueWorker.Contracts;

namespace QueueWorker.Cli.Tests.Broker;

[Collection(BrokerCollection.Name)]
[Trait("Category", "Integration")]
public sealed class SubmitTests(BrokerFixture broker)
{
    private string[] Args(FakeWorker worker, params string[] args) =>
        ["submit", .. args, "--uri", broker.Uri, "--set", $"RabbitMq:JobsQueue={worker.JobsQueue}"];

    [Fact]
    public async Task Submit_Prompt_PrintsTextAndTimingSummary()
    {
        await using var worker = await FakeWorker.StartAsync(broker);

        var run = await Qw.RunAsync(Args(worker, "Once upon a time", "--temperature", "0", "--max-tokens", "8", "--stop", ".", "--stop", "!", "--seed", "7"));

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal("echo: Once upon a time" + Environment.NewLine, run.Out);
        Assert.Contains("completed (length) · 4 prompt + 3 completion tokens", run.Error);
        Assert.Contains("generation 4 ms (500.0 tok/s)", run.Error);
        Assert.Contains("worker fake-worker (fake.gguf)", run.Error);

        // The job as the worker saw it: the contract's fields and the RPC properties.
        var job = Assert.Single(worker.Received);
        Assert.NotNull(job.Job);
        Assert.Equal(job.Job!.Id, job.MessageId);
        Assert.StartsWith("qw-", job.MessageId);
        Assert.False(string.IsNullOrEmpty(job.CorrelationId));
        Assert.StartsWith("amq.gen-", job.ReplyTo);
        Assert.Equal("application/json", job.ContentType);
        Assert.True(job.Persistent);
        Assert.InRange(job.Timestamp, DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 60, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 1);
        Assert.Equal(0f, job.Job.Temperature);
        Assert.Equal(8, job.Job.MaxTokens);
        Assert.Equal(7u, job.Job.Seed);
        Assert.Equal([".", "!"], job.Job.Stop);
        Assert.Equal(120_000, job.Job.TimeoutMs);
    }

    [Fact]
    public async Task Submit_Json_PrintsTheWholeResult()
    {
        await using var worker = await FakeWorker.StartAsync(broker);

        var run = await Qw.RunAsync(Args(worker, "Hello", "--json", "--id", "my-job-1", "--metadata", """{"doc":42}"""));

        Assert.True(run.ExitCode == 0, run.ToString());
        var result = JobSerializer.DeserializeResult(System.Text.Encoding.UTF8.GetBytes(run.Out.Trim()));
        Assert.Equal("my-job-1", result.Id);
        Assert.Equal("echo: Hello", result.Text);
        Assert.Equal(42, result.Metadata!.Value.GetProperty("doc").GetInt32());
        Assert.Equal("my-job-1", Assert.Single(worker.Received).MessageId);
    }

    [Fact]
    public async Task Submit_PromptOnStdin_TrailingNewlineDropped()
    {
        await using var worker = await FakeWorker.StartAsync(broker);

        var run = await Qw.RunAsync(Args(worker), stdin: "from stdin\n");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal("from stdin", Assert.Single(worker.Received).Job!.Prompt);
    }

    [Fact]
    public async Task Submit_MessagesFile_ChatJob()
    {
        await using var worker = await FakeWorker.StartAsync(broker);
        using var dir = new TempDir();
        await File.WriteAllTextAsync(dir.File("chat.json"), """[{"role":"system","content":"Be kind."},{"role":"user","content":"Tell a story"}]""");

        var run = await Qw.RunAsync(Args(worker, "--messages", dir.File("chat.json")));

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal("echo: Tell a story" + Environment.NewLine, run.Out);
        Assert.Equal(2, Assert.Single(worker.Received).Job!.Messages!.Count);
    }

    [Fact]
    public async Task Submit_JobFails_ExitCode1WithCodeAndMessage()
    {
        await using var worker = await FakeWorker.StartAsync(broker);
        worker.Reply = j => JobResult.Failed(j.Job!.Id!, new JobError(ErrorCodes.PromptTooLong, "The prompt needs 900 tokens; the context has 512.", "prompt"));

        var run = await Qw.RunAsync(Args(worker, "long"));

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("failed: prompt_too_long: The prompt needs 900 tokens; the context has 512.", run.Error);
        Assert.Equal("", run.Out);
    }

    [Fact]
    public async Task Submit_NoResultWithinTimeout_ExitCode4()
    {
        await using var worker = await FakeWorker.StartAsync(broker);
        worker.Answering = false;

        var run = await Qw.RunAsync(Args(worker, "never answered", "--timeout", "0.5"));

        Assert.Equal(4, run.ExitCode);
        Assert.Contains("no result for job", run.Error);
        Assert.Equal(500, Assert.Single(worker.Received).Job!.TimeoutMs);
    }

    [Fact]
    public async Task Submit_DuplicateResults_FirstOneWins()
    {
        await using var worker = await FakeWorker.StartAsync(broker, duplicateReplies: true);

        var run = await Qw.RunAsync(Args(worker, "twice"));

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal("echo: twice" + Environment.NewLine, run.Out);
    }

    [Fact]
    public async Task Submit_JobsQueueNotDeclared_ClearErrorExitCode3()
    {
        var queue = BrokerFixture.UniqueName("qw-test.absent");

        var run = await Qw.RunAsync(["submit", "x", "--uri", broker.Uri, "--set", $"RabbitMq:JobsQueue={queue}"]);

        Assert.Equal(3, run.ExitCode);
        Assert.StartsWith($"qw: no worker has declared {queue} yet; start the worker", run.Error);
    }

    [Fact]
    public async Task Submit_BrokerUnreachable_ClearErrorExitCode3()
    {
        var run = await Qw.RunAsync(["submit", "x", "--uri", "amqp://guest:secret@127.0.0.1:1/"]);

        Assert.Equal(3, run.ExitCode);
        Assert.Contains("cannot reach RabbitMQ at amqp://guest:***@127.0.0.1:1/", run.Error);
        Assert.DoesNotContain("secret", run.Error);
    }
}

/// <summary>Flag validation happens before any connection, with the worker's own rule text.</summary>
[Trait("Category", "Unit")]
public sealed class SubmitValidationTests
{
    [Theory]
    [InlineData("--temperature", "3", "temperature", "3")]
    [InlineData("--top-p", "0", "top_p", "0")]
    [InlineData("--max-tokens", "0", "max_tokens", "0")]
    [InlineData("--seed", "-1", "seed", "-1")]
    [InlineData("--repeat-penalty", "0", "repeat_penalty", "0")]
    public async Task Submit_FlagOutOfRange_WorkersMessageNamingTheFlag(string flag, string value, string field, string json)
    {
        var run = await Qw.RunAsync(["submit", "x", flag, value, "--uri", "amqp://guest:guest@127.0.0.1:1/"]);

        var expected = JobParser.Parse($$"""{"prompt":"x","{{field}}":{{json}}}""", JobLimits.Default).Error!.Message;
        Assert.Equal(2, run.ExitCode);
        Assert.Equal($"qw: {flag}: {expected}", run.Error.Trim());
    }

    [Fact]
    public async Task Submit_MaxTokensOverConfiguredCap_NamesTheCap()
    {
        var run = await Qw.RunAsync(["submit", "x", "--max-tokens", "100", "--set", "Inference:MaxTokens=64", "--set", "Inference:DefaultMaxTokens=32"]);

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--max-tokens: \"max_tokens\" must be an integer from 1 to 64 (the worker's cap Inference:MaxTokens), got 100.", run.Error);
    }

    [Fact]
    public async Task Submit_NoPromptNoStdin_Usage()
    {
        var run = await Qw.RunAsync(["submit"]);

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("give a prompt", run.Error);
    }

    [Fact]
    public async Task Submit_BadUri_NamesTheKey()
    {
        var run = await Qw.RunAsync(["submit", "x", "--uri", "http://example"]);

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("RabbitMq:Uri must be an amqp:// or amqps:// URI", run.Error);
    }

    [Fact]
    public async Task Submit_UnknownFlag_UsageExitCode()
    {
        var run = await Qw.RunAsync(["submit", "x", "--temprature", "0"]);

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("temprature", run.Error);
    }
}
