using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Prometheus;
using QueueWorker.Inference;
using QueueWorker.Messaging;
using QueueWorker.Processing;

namespace QueueWorker.Hosting;

public static class WorkerHostingExtensions
{
    /// <summary>
    /// The host's own concern: the job pipeline (<see cref="ProcessingHostingExtensions.AddJobProcessing"/>) behind the
    /// adapter from Messaging's deliveries, metrics and the HTTP endpoint. Call after <c>AddInference()</c>.
    /// </summary>
    public static IHostApplicationBuilder AddQueueWorker(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<HttpOptions>().BindConfiguration(HttpOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<WorkerMetrics>();
        // Registered before AddJobProcessing, so the pipeline reports to the metrics instead of its silent default.
        builder.Services.AddSingleton<IJobObserver>(sp => sp.GetRequiredService<WorkerMetrics>());
        // Before AddJobProcessing, so the pipeline remembers cancels for RabbitMq:CancelMemoryMinutes.
        builder.Services.AddSingleton(sp => new JobCancellations(sp.GetRequiredService<TimeProvider>(),
            TimeSpan.FromMinutes(sp.GetRequiredService<IOptions<RabbitMqOptions>>().Value.CancelMemoryMinutes)));
        builder.Services.AddSingleton<IControlHandler, CancelForwarder>();
        builder.AddJobProcessing();
        builder.Services.AddHostedService<GaugeCollector>();
        builder.Services.AddSingleton<IJobHandler, JobHandler>();
        builder.Services.AddSingleton<WorkerWatchdog>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<WorkerWatchdog>());

        builder.Services.AddSingleton<IPostConfigureOptions<RabbitMqOptions>, RabbitMqFromWorker>();
        return builder;
    }

    /// <summary>Kestrel listens only where <c>Http:*</c> says; port 0 turns the endpoint off.</summary>
    public static WebApplicationBuilder ConfigureHttpEndpoint(this WebApplicationBuilder builder)
    {
        var http = builder.Configuration.GetSection(HttpOptions.Section).Get<HttpOptions>() ?? new HttpOptions();
        if (http.Port == 0)
        {
            // Kestrel given no endpoint would listen on http://localhost:5000: no server at all is what "off" means.
            builder.Services.AddSingleton<IServer, NoHttpServer>();
            return builder;
        }
        builder.WebHost.ConfigureKestrel(k =>
        {
            if (http.Port > 0 && IPAddress.TryParse(http.BindAddress, out var address))
                k.Listen(address, http.Port);
        });
        return builder;
    }

    /// <summary><c>/healthz</c> and <c>/readyz</c> (health checks, see <see cref="WorkerHealthChecks"/>) and <c>/metrics</c>.</summary>
    public static WebApplication MapWorkerEndpoints(this WebApplication app)
    {
        app.MapWorkerHealthChecks();
        app.MapMetrics("/metrics");
        return app;
    }

    /// <summary>What the broker side takes from the rest of the worker.</summary>
    private sealed class RabbitMqFromWorker(IOptions<InferenceOptions> inference, WorkerIdentity identity) : IPostConfigureOptions<RabbitMqOptions>
    {
        public void PostConfigure(string? name, RabbitMqOptions options)
        {
            // Hold no more jobs than there are slots to start them soon: the rest wait in the broker for other replicas.
            if (options.Prefetch == 0) options.Prefetch = inference.Value.Slots;
            // The broker lists the connection under the id that results carry.
            if (string.IsNullOrWhiteSpace(options.ClientName)) options.ClientName = "queueworker@" + identity.Id;
        }
    }
}

/// <summary>Control messages (Messaging) to the pipeline's cancellations (Processing): the host is where the two meet.</summary>
internal sealed class CancelForwarder(JobCancellations cancellations) : IControlHandler
{
    public int Cancel(QueueWorker.Contracts.CancelRequest request) => cancellations.Cancel(request);
}

/// <summary>The server when <c>Http:Port</c> is 0: the endpoints are mapped but nothing listens.</summary>
internal sealed class NoHttpServer : IServer
{
    public IFeatureCollection Features { get; } = new FeatureCollection();

    public Task StartAsync<TContext>(IHttpApplication<TContext> application, CancellationToken cancellationToken) where TContext : notnull =>
        Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        // Nothing was opened.
    }
}
