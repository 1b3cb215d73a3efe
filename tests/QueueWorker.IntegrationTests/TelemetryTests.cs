using System.Net;
using System.Text.Json;

namespace QueueWorker.IntegrationTests;

/// <summary>JSON logs that carry the job id, and traces exported by OTLP when an endpoint is configured.</summary>
[Trait("Category", "Integration")]
public sealed class TelemetryTests : IAsyncLifetime
{
    private readonly HttpListener _collector = new();
    private readonly List<(string Path, byte[] Body)> _exports = [];
    private int _port;
    private TestBroker _broker = null!;
    private WorkerProcess _worker = null!;
    private readonly string _jobs = TestBroker.UniqueName("llm.jobs");
    private readonly string _results = TestBroker.UniqueName("llm.results");

    public async Task InitializeAsync()
    {
        // A stand-in OTLP/HTTP collector on loopback: it records what the worker exports.
        _port = FreePort.Next();
        _collector.Prefixes.Add($"http://127.0.0.1:{_port}/");
        _collector.Start();
        _ = Task.Run(async () =>
        {
            while (_collector.IsListening)
            {
                HttpListenerContext ctx;
                try { ctx = await _collector.GetContextAsync(); } catch { return; }
                using var ms = new MemoryStream();
                await ctx.Request.InputStream.CopyToAsync(ms);
                lock (_exports) _exports.Add((ctx.Request.Url!.AbsolutePath, ms.ToArray()));
                ctx.Response.StatusCode = 200;
                ctx.Response.Close();
            }
        });

        _broker = await TestBroker.ConnectAsync();
        _broker.Own(_jobs);
        _broker.Own(_jobs + ".dlq");
        _broker.Own(_jobs + ".parked");
        _broker.Own(_results);
        _worker = WorkerProcess.Start(new Dictionary<string, string>
        {
            ["RabbitMq:JobsQueue"] = _jobs,
            ["RabbitMq:ResultsQueue"] = _results,
            ["Logging:Console:FormatterName"] = "json",
            ["Telemetry:OtlpEndpoint"] = $"http://127.0.0.1:{_port}",
            ["Telemetry:OtlpProtocol"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
        });
        await _worker.WaitReadyAsync(Waits.WorkerReady);
    }

    [Fact]
    public async Task Job_JsonLogLinesCarryJobIdAndTraceIsExported()
    {
        await using var results = await _broker.CollectAsync(_results);
        var id = "tele-" + Guid.NewGuid().ToString("N")[..8];
        await _broker.PublishAsync(_jobs, $$"""{"id":"{{id}}","prompt":"Once upon a time","max_tokens":4}""");
        await results.WaitForIdAsync(id, TimeSpan.FromSeconds(60));

        // Every console line is one JSON object; the line about this job has its id in a scope.
        var lines = _worker.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith('{')).ToList();
        Assert.NotEmpty(lines);
        Assert.All(lines, l => JsonDocument.Parse(l).Dispose());
        Assert.Contains(lines, l => l.Contains(id, StringComparison.Ordinal) && l.Contains("\"JobId\"", StringComparison.Ordinal));

        // The span batch reaches the collector within a few export intervals, with the job's id among its attributes.
        var until = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < until)
        {
            lock (_exports)
                if (_exports.Any(e => e.Path == "/v1/traces" && System.Text.Encoding.UTF8.GetString(e.Body).Contains(id, StringComparison.Ordinal)))
                    return;
            await Task.Delay(200);
        }
        lock (_exports) Assert.Fail($"No OTLP trace export with job {id}; exports seen: {string.Join(", ", _exports.Select(e => e.Path))}\n{_worker.Output}");
    }

    public async Task DisposeAsync()
    {
        if (_worker is not null) await _worker.DisposeAsync();
        if (_broker is not null) await _broker.DisposeAsync();
        _collector.Close();
    }
}
