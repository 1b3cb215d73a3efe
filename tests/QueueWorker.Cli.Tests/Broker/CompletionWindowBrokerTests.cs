using System.Globalization;
using System.Text.Json;

namespace QueueWorker.Cli.Tests.Broker;

/// <summary><c>qw batch --completion-window</c> on the real broker: what every publish carries, and the lines whose turn comes too late.</summary>
[Collection(BrokerCollection.Name)]
[Trait("Category", "Integration")]
public sealed class CompletionWindowBrokerTests(BrokerFixture broker, Xunit.Abstractions.ITestOutputHelper log) : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string[] Args(FakeWorker worker, string input, string output, params string[] more) =>
        ["batch", input, "--out", output, "--uri", broker.Uri, "--set", $"RabbitMq:JobsQueue={worker.JobsQueue}", "--progress-interval", "0.2", .. more];

    /// <summary>
    /// One job in flight at a time and a worker that holds the first one past the window: the first went out with the time
    /// left as its AMQP expiration; the others' turn comes after the window, so qw answers them deadline_exceeded without
    /// publishing them, one error line each. A resumed run skips every line.
    /// </summary>
    [Fact]
    public async Task Batch_LinesWhoseTurnComesAfterTheWindow_AnsweredDeadlineExceededNotPublished_ResumeSkipsThem()
    {
        await using var worker = await FakeWorker.StartAsync(broker);
        worker.Answering = false;
        var input = _dir.File("in.jsonl");
        var output = _dir.File("out.jsonl");
        await File.WriteAllLinesAsync(input, Enumerable.Range(1, 4).Select(i => $$$"""{"custom_id":"w{{{i}}}","url":"/v1/completions","body":{"prompt":"p {{{i}}}"}}"""));

        // The window starts with qw: long enough for a loaded machine to start it and publish the first line in it.
        var windowSeconds = (int)Waits.Seconds(4).TotalSeconds;
        var batch = Qw.RunAsync(Args(worker, input, output, "--max-in-flight", "1", "--completion-window", $"{windowSeconds}s"));
        await WaitUntil(() => !worker.Received.IsEmpty, Waits.Seconds(30));
        var first = worker.Received.Single();
        var expirationMs = long.Parse(first.Expiration!, CultureInfo.InvariantCulture);
        Assert.InRange(expirationMs, 1, windowSeconds * 1000);
        await Task.Delay(TimeSpan.FromMilliseconds(expirationMs + 500));
        worker.Answering = true;
        await worker.ReleaseHeldAsync();

        var run = await batch.WaitAsync(Waits.Seconds(60));
        log.WriteLine(run.ToString());

        Assert.True(run.ExitCode == 1, run.ToString()); // finished with error lines
        Assert.Single(worker.Received); // nothing else was published
        var lines = File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
        Assert.Equal(4, lines.Count);
        var expired = lines.Where(l => l.GetProperty("error").ValueKind == JsonValueKind.Object).ToList();
        Assert.Equal(3, expired.Count);
        Assert.Equal(["w2", "w3", "w4"], expired.Select(l => l.GetProperty("custom_id").GetString()).Order());
        Assert.All(expired, l =>
        {
            Assert.Equal("deadline_exceeded", l.GetProperty("error").GetProperty("code").GetString());
            Assert.Contains($"--completion-window {windowSeconds}s", l.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        });
        Assert.Contains("3 lines were not published", run.Error, StringComparison.Ordinal);
        Assert.Contains("of which not published", run.Out, StringComparison.Ordinal);

        // Resumed with a new window: every line is answered already, nothing is published.
        var again = await Qw.RunAsync(Args(worker, input, output, "--completion-window", "1h"));
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Single(worker.Received);
        Assert.Equal(4, File.ReadAllLines(output).Length);
    }

    private static async Task WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (!condition())
            await Task.Delay(50, cts.Token);
    }
}
