using System.Net;

namespace QueueWorker.IntegrationTests;

/// <summary>
/// The response contract of <c>/healthz</c> and <c>/readyz</c> that the Dockerfile health check, the Kubernetes probes and
/// the docs rely on, served by ASP.NET Core health checks.
/// </summary>
[Trait("Category", "Integration")]
public class HealthEndpointTests(WorkerFixture fixture) : IClassFixture<WorkerFixture>
{
    [Fact]
    public async Task Healthz_WorkerRunning_200OkText()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };

        using var response = await http.GetAsync($"http://127.0.0.1:{fixture.Worker.HttpPort}/healthz");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("ok", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Readyz_WorkerReady_200WithTheFourFields()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };

        using var response = await http.GetAsync($"http://127.0.0.1:{fixture.Worker.HttpPort}/readyz");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("""{"model_loaded":true,"broker_connected":true,"consumer_running":true,"ready":true}""",
            await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("/healthz")]
    [InlineData("/readyz")]
    public async Task HealthEndpoints_Post_405(string path)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };

        using var response = await http.PostAsync($"http://127.0.0.1:{fixture.Worker.HttpPort}{path}", content: null);

        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
    }

    [Fact]
    public async Task Readyz_BrokerUnreachable_503NotReadyWhileHealthzStays200()
    {
        await using var worker = WorkerProcess.Start(new Dictionary<string, string> { ["RabbitMq:Uri"] = "amqp://guest:guest@127.0.0.1:1/" });
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        HttpResponseMessage? ready = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                ready = await http.GetAsync($"http://127.0.0.1:{worker.HttpPort}/readyz");
                if ((await ready.Content.ReadAsStringAsync()).Contains("\"model_loaded\":true", StringComparison.Ordinal))
                    break;
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            await Task.Delay(250);
        }

        Assert.NotNull(ready);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Equal("""{"model_loaded":true,"broker_connected":false,"consumer_running":false,"ready":false}""",
            await ready.Content.ReadAsStringAsync());
        Assert.Equal("ok", await worker.GetAsync("/healthz"));
        // Each unready answer is state (in the body), not an error in the log: a waiting worker would log one per probe.
        Assert.DoesNotContain("Health check broker_connected with status Unhealthy", worker.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HttpPort_Zero_NothingListens()
    {
        // An unreachable broker: this worker must not consume anybody's queue on the shared broker.
        await using var worker = WorkerProcess.Start(new Dictionary<string, string>
        {
            ["Http:Port"] = "0",
            ["RabbitMq:Uri"] = "amqp://guest:guest@127.0.0.1:1/",
        });
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline && !worker.Output.Contains("Application started", StringComparison.Ordinal) && !worker.HasExited)
            await Task.Delay(250);

        Assert.Contains("Application started", worker.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Now listening on", worker.Output, StringComparison.Ordinal);
    }
}
