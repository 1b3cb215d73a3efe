using System.Text.Json;
using QueueWorker.Cli.Batch;
using QueueWorker.Cli.Local;
using QueueWorker.Contracts;
using QueueWorker.Inference;

namespace QueueWorker.Cli.Tests.Broker;

[Collection(BrokerCollection.Name)]
[Trait("Category", "Integration")]
public sealed class BatchTests(BrokerFixture broker, Xunit.Abstractions.ITestOutputHelper log) : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string Sample => Path.Combine(AppContext.BaseDirectory, "samples", "batch.jsonl");

    private string[] Args(FakeWorker worker, string input, string output, params string[] more) =>
        ["batch", input, "--out", output, "--uri", broker.Uri, "--set", $"RabbitMq:JobsQueue={worker.JobsQueue}", "--progress-interval", "0.2", .. more];

    private static List<JsonElement> Lines(string path) =>
        File.ReadAllLines(path).Select(l => JsonDocument.Parse(l).RootElement).ToList();

    private static Dictionary<string, JsonElement> ByCustomId(IEnumerable<JsonElement> lines) =>
        lines.Where(l => l.GetProperty("custom_id").ValueKind == JsonValueKind.String)
             .ToDictionary(l => l.GetProperty("custom_id").GetString()!);

    [Fact]
    public async Task Batch_SampleWithBrokenLine_OneLinePerRequestAndAnErrorLine()
    {
        await using var worker = await FakeWorker.StartAsync(broker);
        var output = _dir.File("out.jsonl");

        var run = await Qw.RunAsync(Args(worker, Sample, output));
        log.WriteLine(run.ToString());
        log.WriteLine(File.ReadAllText(output));

        // The broken line makes the run "finished with failures".
        Assert.True(run.ExitCode == 1, run.ToString());
        var lines = Lines(output);
        Assert.Equal(8, lines.Count);
        var byId = ByCustomId(lines);
        Assert.Equal(["bare-1", "chat-1", "chat-2", "extract-1", "story-1", "story-2", "story-3"], byId.Keys.Order());

        var story = byId["story-1"].GetProperty("response");
        Assert.Equal(200, story.GetProperty("status_code").GetInt32());
        Assert.Equal("text_completion", story.GetProperty("body").GetProperty("object").GetString());
        Assert.Equal("echo: Once upon a time", story.GetProperty("body").GetProperty("choices")[0].GetProperty("text").GetString());
        var chat = byId["chat-2"].GetProperty("response").GetProperty("body");
        Assert.Equal("chat.completion", chat.GetProperty("object").GetString());
        Assert.Equal("echo: A story about a red ball.", chat.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("bare job body", byId["bare-1"].GetProperty("response").GetProperty("body").GetProperty("metadata").GetProperty("source").GetString());

        var broken = Assert.Single(lines, l => l.GetProperty("custom_id").ValueKind == JsonValueKind.Null);
        Assert.Equal("invalid_json", broken.GetProperty("error").GetProperty("code").GetString());
        Assert.StartsWith("line 6: not valid JSON", broken.GetProperty("error").GetProperty("message").GetString());

        // Each job reached the worker once, keyed by its custom_id.
        Assert.Equal(byId.Keys.Order(), worker.Received.Select(r => r.MessageId!).Order());
        Assert.Contains("Completed", run.Out);
        Assert.Contains("Latency p50 / p95", run.Out);
        Assert.Contains("qw batch: ", run.Error);
    }

    [Fact]
    public async Task Batch_ResumeAfterDeletingPartOfOutput_NothingRedoneNothingMissing()
    {
        await using var worker = await FakeWorker.StartAsync(broker);
        var input = _dir.File("in.jsonl");
        var output = _dir.File("out.jsonl");
        var requests = Enumerable.Range(1, 20).Select(i => i % 2 == 0
            ? $$$"""{"custom_id":"r{{{i}}}","method":"POST","url":"/v1/completions","body":{"prompt":"story {{{i}}}","max_tokens":8}}"""
            : $$$"""{"custom_id":"r{{{i}}}","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"chat {{{i}}}"}]}}""").ToList();
        requests.Insert(7, "{\"custom_id\": \"broken\", \"body\": ");
        await File.WriteAllLinesAsync(input, requests);

        var first = await Qw.RunAsync(Args(worker, input, output));
        Assert.True(first.ExitCode == 1, first.ToString());
        var firstLines = File.ReadAllLines(output);
        Assert.Equal(21, firstLines.Length);

        // A crash: the last 8 lines are gone and the one before is half written.
        var kept = firstLines.Take(12).ToList();
        await File.WriteAllTextAsync(output, string.Join("\n", kept) + "\n" + firstLines[12][..30]);
        var keptIds = ByCustomId(kept.Select(l => JsonDocument.Parse(l).RootElement)).Keys.ToHashSet();
        var receivedBefore = worker.Received.Count;

        var second = await Qw.RunAsync(Args(worker, input, output));

        Assert.True(second.ExitCode is 0 or 1, second.ToString());
        Assert.Contains("repaired", second.Error);
        var secondJobs = worker.Received.Skip(receivedBefore).Select(r => r.MessageId!).ToList();
        Assert.Empty(secondJobs.Intersect(keptIds));
        Assert.Equal(secondJobs.Count, secondJobs.Distinct().Count());

        var lines = Lines(output);
        Assert.Equal(21, lines.Count);
        var byId = ByCustomId(lines);
        Assert.Equal(20, byId.Count);
        Assert.Equal(Enumerable.Range(1, 20).Select(i => $"r{i}").Order(), byId.Keys.Order());
        Assert.Single(lines, l => l.GetProperty("custom_id").ValueKind == JsonValueKind.Null);
        Assert.Equal(20 - keptIds.Count, secondJobs.Count);
    }

    [Fact]
    public async Task Batch_DuplicateResults_DroppedOneLinePerCustomId()
    {
        await using var worker = await FakeWorker.StartAsync(broker, duplicateReplies: true);
        var input = _dir.File("in.jsonl");
        var output = _dir.File("out.jsonl");
        await File.WriteAllLinesAsync(input, Enumerable.Range(1, 10).Select(i => $$"""{"id":"d{{i}}","prompt":"p {{i}}"}"""));

        var run = await Qw.RunAsync(Args(worker, input, output, "--max-in-flight", "3"));

        Assert.True(run.ExitCode == 0, run.ToString());
        var lines = Lines(output);
        Assert.Equal(10, lines.Count);
        Assert.Equal(10, ByCustomId(lines).Count);
        Assert.Contains("Duplicate results dropped", run.Out);
    }

    [Fact]
    public async Task Batch_ConnectionDroppedMidBatch_ReconnectsAndResubmitsUnanswered()
    {
        await using var worker = await FakeWorker.StartAsync(broker);
        worker.Answering = false;
        var input = _dir.File("in.jsonl");
        var output = _dir.File("out.jsonl");
        await File.WriteAllLinesAsync(input, Enumerable.Range(1, 6).Select(i => $$"""{"id":"k{{i}}","prompt":"p {{i}}"}"""));

        var batch = Qw.RunAsync(Args(worker, input, output, "--max-in-flight", "6"));
        await WaitUntil(() => worker.Received.Count >= 6, TimeSpan.FromSeconds(30));
        // What a broker restart looks like to qw: its connection (and with it the reply queue) is gone.
        Assert.Equal(1, await Rabbitmqctl.Shared.CloseConnectionsAsync(worker.JobsQueue, "qw test: simulated broker restart"));
        worker.Answering = true;
        await worker.ReleaseHeldAsync();

        var run = await batch.WaitAsync(TimeSpan.FromSeconds(60));
        log.WriteLine(run.ToString());

        Assert.True(run.ExitCode == 0, run.ToString());
        var lines = Lines(output);
        Assert.Equal(6, lines.Count);
        Assert.Equal(Enumerable.Range(1, 6).Select(i => $"k{i}").Order(), ByCustomId(lines).Keys.Order());
        // Every job was published again on the new connection.
        Assert.All(Enumerable.Range(1, 6), i => Assert.True(worker.Received.Count(r => r.MessageId == $"k{i}") >= 2));
        Assert.Contains("Reconnects / jobs published again", run.Out);
    }

    [Fact]
    public async Task Batch_LocalAndBroker_SameOutputShape()
    {
        await using var worker = await FakeWorker.StartAsync(broker);
        var viaBroker = _dir.File("broker.jsonl");
        var viaLocal = _dir.File("local.jsonl");
        await Qw.RunAsync(Args(worker, Sample, viaBroker));
        // The local runner on an engine with fixed answers: the mapping is what is compared here.
        await using var local = new LocalJobRunner(new ScriptedEngine(), new InferenceOptions(), TimeProvider.System);
        await new BatchProcessor(local, new BatchOptions(Sample, viaLocal, 4, JobLimits.Default, 1 << 20), TimeProvider.System).RunAsync(CancellationToken.None);

        var brokerLines = Lines(viaBroker);
        var localLines = Lines(viaLocal);
        Assert.Equal(8, localLines.Count);
        // extract-1 asks for JSON: the fake worker answers plain text without the JSON warning a real one adds.
        foreach (var (id, line) in ByCustomId(brokerLines).Where(p => p.Key != "extract-1"))
            AssertSameShape(line, ByCustomId(localLines)[id], id);
        Assert.Equal(
            Shape(Assert.Single(brokerLines, l => l.GetProperty("custom_id").ValueKind == JsonValueKind.Null)),
            Shape(Assert.Single(localLines, l => l.GetProperty("custom_id").ValueKind == JsonValueKind.Null)));
    }

    /// <summary>Every property path with its JSON kind, e.g. <c>response.body.choices[].text:String</c>.</summary>
    /// <summary>Equal shapes, or a failure that names the paths only one side has.</summary>
    internal static void AssertSameShape(JsonElement expected, JsonElement actual, string what)
    {
        var e = Shape(expected);
        var a = Shape(actual);
        Assert.True(e.SetEquals(a), $"{what}: only expected {string.Join(", ", e.Except(a))}; only actual {string.Join(", ", a.Except(e))}");
    }

    internal static SortedSet<string> Shape(JsonElement element)
    {
        var paths = new SortedSet<string>(StringComparer.Ordinal);
        void Walk(JsonElement e, string path)
        {
            paths.Add($"{path}:{e.ValueKind}");
            if (e.ValueKind == JsonValueKind.Object)
                foreach (var p in e.EnumerateObject()) Walk(p.Value, path + "." + p.Name);
            else if (e.ValueKind == JsonValueKind.Array)
                foreach (var item in e.EnumerateArray()) Walk(item, path + "[]");
        }
        Walk(element, "");
        return paths;
    }

    private static async Task WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > until) throw new TimeoutException("condition not met in time");
            await Task.Delay(50);
        }
    }
}
