using System.Diagnostics;
using System.Text.Json;

namespace QueueWorker.IntegrationTests;

/// <summary>qw against the real worker and model: qw submit and qw batch as users run them.</summary>
[Trait("Category", "Integration")]
public class QwAgainstWorkerTests(WorkerFixture fixture) : IClassFixture<WorkerFixture>
{
    private async Task<(int ExitCode, string Stdout, string Stderr)> QwAsync(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet", [TestSettings.QwDll, .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = TestSettings.RepositoryRoot,
        };
        psi.Environment["RabbitMq__Uri"] = TestSettings.RabbitMqUri;
        psi.Environment["RabbitMq__JobsQueue"] = fixture.JobsQueue;
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        // CI-aware: a loaded 2-core machine has taken over 2 minutes for the sample batch (8 jobs and qw's start).
        var limit = Waits.Seconds(120);
        using var cts = new CancellationTokenSource(limit);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"qw {string.Join(' ', args)} did not exit within {limit.TotalSeconds:F0} s\nstdout:\n{await stdout}\nstderr:\n{await stderr}");
        }
        return (process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Jobs the worker has finished (completed or failed), from its /metrics.</summary>
    private async Task<double> JobsDoneAsync()
    {
        var metrics = await fixture.Worker.GetAsync("/metrics");
        return metrics.Split('\n').Where(l => l.StartsWith("queueworker_jobs_total{", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task Submit_Greedy_PrintsStoryAndTimingLine()
    {
        var (code, stdout, stderr) = await QwAsync("submit", "Once upon a time", "--max-tokens", "24", "--temperature", "0");
        Assert.True(code == 0, stderr);
        Assert.Contains("little girl named Lily", stdout);
        Assert.Contains("completed (length)", stdout + stderr);
        Assert.Contains("prompt", stdout + stderr);
    }

    [Fact]
    public async Task Submit_Json_PrintsWholeResult()
    {
        var (code, stdout, stderr) = await QwAsync("submit", "Once upon a time", "--max-tokens", "4", "--temperature", "0", "--json");
        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal("completed", doc.RootElement.GetProperty("status").GetString());
        Assert.Equal(4, doc.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.True(doc.RootElement.GetProperty("timings").GetProperty("queued_ms").GetDouble() >= 0);
    }

    [Fact]
    public async Task Submit_InvalidFlag_FailsBeforePublishingNamingTheRule()
    {
        var (code, _, stderr) = await QwAsync("submit", "x", "--temperature", "7");
        Assert.Equal(2, code);
        Assert.Contains("temperature", stderr);
        Assert.Contains("from 0 to 2", stderr);
    }

    [Fact]
    public async Task Batch_SampleFile_OneLinePerRequestAndResumeRedoesNothing()
    {
        var dir = Directory.CreateTempSubdirectory("qw-batch-").FullName;
        try
        {
            var output = Path.Combine(dir, "results.jsonl");
            var sample = Path.Combine(TestSettings.RepositoryRoot, "samples", "batch.jsonl");
            var inputLines = File.ReadAllLines(sample).Count(l => l.Trim().Length > 0);

            var (code, _, stderr) = await QwAsync("batch", sample, "--out", output);
            Assert.True(code is 0 or 1, stderr); // 1: the sample's broken line is an error line
            var lines = File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
            Assert.Equal(inputLines, lines.Count);

            var story = lines.Single(l => l.GetProperty("custom_id").GetString() == "story-1");
            var body = story.GetProperty("response").GetProperty("body");
            Assert.Contains("Lily", body.GetProperty("choices")[0].GetProperty("text").GetString());
            Assert.True(body.GetProperty("usage").GetProperty("completion_tokens").GetInt32() > 0);
            Assert.True(body.TryGetProperty("timings", out _));

            var chat = lines.Single(l => l.GetProperty("custom_id").GetString() == "chat-1");
            Assert.False(string.IsNullOrEmpty(chat.GetProperty("response").GetProperty("body").GetProperty("choices")[0]
                .GetProperty("message").GetProperty("content").GetString()));

            var errors = lines.Where(l => l.GetProperty("error").ValueKind == JsonValueKind.Object).ToList();
            Assert.Single(errors);
            Assert.Contains("line 6", errors[0].GetProperty("error").GetProperty("message").GetString());

            // Interrupted run: drop two completed lines; the rerun does exactly those two again.
            var kept = File.ReadAllLines(output).Where(l => !l.Contains("\"story-2\"") && !l.Contains("\"chat-2\"")).ToArray();
            File.WriteAllLines(output, kept);
            var jobsBefore = await JobsDoneAsync();
            (code, _, stderr) = await QwAsync("batch", sample, "--out", output);
            Assert.Equal(jobsBefore + 2, await JobsDoneAsync()); // only the two missing ones ran again
            Assert.True(code is 0 or 1, stderr);
            var after = File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("custom_id").ToString()).ToList();
            Assert.Equal(inputLines, after.Count);
            Assert.Equal(after.Count, after.Distinct().Count());
            Assert.Contains("story-2", after);
            Assert.Contains("chat-2", after);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
