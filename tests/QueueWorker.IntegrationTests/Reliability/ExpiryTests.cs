using System.Diagnostics;
using System.Text.Json;
using Xunit.Abstractions;

namespace QueueWorker.IntegrationTests.Reliability;

/// <summary>
/// <c>qw batch --completion-window</c> against the real worker: jobs that outlive the window in the queue are dead-lettered by
/// the broker and answered <c>deadline_exceeded</c> by the worker (never run), one output line each; a resumed run skips them.
/// </summary>
[Collection(ReliabilityCollection.Name)]
[Trait("Category", "Integration")]
public sealed class ExpiryTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Batch_CompletionWindowPassesWithNoWorker_EveryLineOneDeadlineExceededNothingRuns_ResumeSkipsThem()
    {
        await using var h = await ReliabilityHarness.CreateAsync(output);
        // The pipeline's "Job … started" line (Debug) is how the test sees that nothing ran.
        h.Settings["Logging:LogLevel:QueueWorker.Processing"] = "Debug";
        var first = await h.StartWorkerAsync(); // declares the queues; qw never does
        first.Terminate();
        await first.WaitForExitAsync(TimeSpan.FromSeconds(60));

        var dir = Directory.CreateTempSubdirectory("qw-expiry-").FullName;
        try
        {
            const int Lines = 5;
            var input = Path.Combine(dir, "in.jsonl");
            var results = Path.Combine(dir, "out.jsonl");
            var ids = Enumerable.Range(1, Lines).Select(i => $"exp-{i}-{Guid.NewGuid():N}"[..16]).ToList();
            await File.WriteAllLinesAsync(input, ids.Select(id =>
                $$$"""{"custom_id":"{{{id}}}","method":"POST","url":"/v1/completions","body":{"prompt":"Once upon a time","max_tokens":8}}"""));
            // The window starts with qw: long enough for a loaded machine to start it and publish every line within it.
            var window = Waits.Seconds(2);
            string[] args = ["batch", input, "--out", results, "--completion-window", $"{(int)window.TotalSeconds}s", "--max-in-flight", "8", "--progress-interval", "1"];

            var batch = StartQw(h, args);
            // Every line published (the window started when qw did), then the window over with no worker consuming.
            await ReliabilityHarness.WaitUntilAsync(async () => await h.Broker.MessageCountAsync(h.JobsQueue) + await h.Broker.MessageCountAsync(h.DeadLetterQueue) == Lines,
                "every line published", Waits.Seconds(60), TimeSpan.FromMilliseconds(100));
            await Task.Delay(window + TimeSpan.FromSeconds(1));
            var worker = await h.StartWorkerAsync();

            var (code, stdout, stderr) = await batch.WaitAsync(Waits.Seconds(180));
            h.Log($"qw exit {code}\n{stdout}\n{stderr}");
            Assert.True(code == 1, stderr); // finished with error lines
            var lines = File.ReadAllLines(results).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
            Assert.Equal(Lines, lines.Count);
            Assert.Equal(ids.Order(), lines.Select(l => l.GetProperty("custom_id").GetString()).Order());
            Assert.All(lines, l =>
            {
                var error = l.GetProperty("error");
                Assert.Equal("deadline_exceeded", error.GetProperty("code").GetString());
                Assert.Equal("expiration", error.GetProperty("param").GetString());
                Assert.Contains("expired in the queue", error.GetProperty("message").GetString(), StringComparison.Ordinal);
            });
            // Nothing ran: answered from the dead-letter queue and parked.
            foreach (var id in ids)
                Assert.DoesNotContain($"Job {id} started", worker.Output, StringComparison.Ordinal);
            await ReliabilityHarness.WaitUntilAsync(async () => await h.Broker.MessageCountAsync(h.ParkedQueue) == Lines
                    && await h.Broker.MessageCountAsync(h.DeadLetterQueue) == 0 && await h.Broker.MessageCountAsync(h.JobsQueue) == 0,
                "every expired job parked, the DLQ and jobs queue empty", Waits.Seconds(60), TimeSpan.FromMilliseconds(250));

            // Resumed with the worker running: every line has its answer, nothing is published or run.
            var (again, againOut, againErr) = await StartQw(h, args).WaitAsync(Waits.Seconds(120));
            Assert.True(again == 0, againErr);
            Assert.Contains("Already in the output (skipped)", againOut, StringComparison.Ordinal);
            Assert.Equal(Lines, File.ReadAllLines(results).Length);
            await Task.Delay(TimeSpan.FromSeconds(1));
            foreach (var id in ids)
                Assert.DoesNotContain($"Job {id} received", worker.Output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static Task<(int Code, string Stdout, string Stderr)> StartQw(ReliabilityHarness h, string[] args)
    {
        var psi = new ProcessStartInfo("dotnet", [TestSettings.QwDll, .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = TestSettings.RepositoryRoot,
        };
        psi.Environment["RabbitMq__Uri"] = h.Uri;
        psi.Environment["RabbitMq__JobsQueue"] = h.JobsQueue;
        var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        async Task<(int, string, string)> WaitAsync()
        {
            using var cts = new CancellationTokenSource(Waits.Scale(TimeSpan.FromSeconds(240)));
            await process.WaitForExitAsync(cts.Token);
            var result = (process.ExitCode, await stdout, await stderr);
            process.Dispose();
            return result;
        }
        return WaitAsync();
    }
}
