using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using QueueWorker.Inference;
using QueueWorker.Messaging;

namespace QueueWorker.Hosting;

/// <summary>
/// The worker's health, as ASP.NET Core health checks tagged the way probes ask: <see cref="LiveTag"/> checks answer
/// <c>/healthz</c> (liveness: restart me if this fails), <see cref="ReadyTag"/> checks answer <c>/readyz</c> (readiness:
/// send me no work until this passes). A new condition is one more tagged check, not a new endpoint.
/// <para>
/// The responses keep the contract the Dockerfile health check, the Kubernetes probes, the docs and the tests rely on:
/// <c>/healthz</c> is 200 <c>ok</c> (text); <c>/readyz</c> is 200 when ready, else 503, with the JSON body
/// <c>{"model_loaded":…,"broker_connected":…,"consumer_running":…,"ready":…}</c>.
/// </para>
/// </summary>
public static class WorkerHealthChecks
{
    public const string LiveTag = "live";
    public const string ReadyTag = "ready";

    /// <summary>Check names: the readiness ones are the fields of <c>/readyz</c>'s body.</summary>
    public const string ProcessCheck = "process";
    public const string EngineCheck = "engine";
    public const string WatchdogCheck = "watchdog";
    public const string ModelLoadedCheck = "model_loaded";
    public const string BrokerConnectedCheck = "broker_connected";
    public const string ConsumerRunningCheck = "consumer_running";

    /// <summary>
    /// Liveness: the process answers (a check that runs at all proves it; "engine not crashed" and "decode loop making
    /// progress" join it with the same tag). Readiness: the model is loaded, the broker connected, the consumer running.
    /// </summary>
    public static IHostApplicationBuilder AddWorkerHealthChecks(this IHostApplicationBuilder builder)
    {
        // ASP.NET Core logs every unhealthy probe answer as an error: a worker waiting for its broker would log one per
        // probe (thousands an hour). The state is in /readyz's body and the worker logs its own causes (connection lost,
        // consumer cancelled, engine failed) once each.
        builder.Logging.AddFilter("Microsoft.Extensions.Diagnostics.HealthChecks.DefaultHealthCheckService", LogLevel.Critical);
        builder.Services.AddHealthChecks()
            .AddCheck(ProcessCheck, () => HealthCheckResult.Healthy("the process answers"), [LiveTag])
            .Add(new HealthCheckRegistration(EngineCheck, sp => new EngineHealthCheck(sp.GetRequiredService<IInferenceEngine>()), HealthStatus.Unhealthy, [LiveTag]))
            .Add(new HealthCheckRegistration(WatchdogCheck, sp => new WatchdogHealthCheck(sp.GetRequiredService<WorkerWatchdog>()), HealthStatus.Unhealthy, [LiveTag]))
            .Add(Flag(ModelLoadedCheck, sp => sp.GetRequiredService<IInferenceEngine>().IsReady, "the model is not loaded"))
            .Add(Flag(BrokerConnectedCheck, sp => sp.GetRequiredService<IBrokerStatus>().IsConnected, "RabbitMQ is not connected"))
            .Add(Flag(ConsumerRunningCheck, sp => sp.GetRequiredService<IBrokerStatus>().IsConsuming, "the jobs consumer is not running"));
        return builder;
    }

    /// <summary>Maps <c>/healthz</c> and <c>/readyz</c> (GET only, as before) onto the tagged checks.</summary>
    public static WebApplication MapWorkerHealthChecks(this WebApplication app)
    {
        app.MapHealthChecks("/healthz", new HealthCheckOptions
        {
            Predicate = check => check.Tags.Contains(LiveTag),
            ResponseWriter = WriteLivenessAsync,
        }).WithMetadata(new HttpMethodMetadata([HttpMethods.Get]));
        app.MapHealthChecks("/readyz", new HealthCheckOptions
        {
            Predicate = check => check.Tags.Contains(ReadyTag),
            ResponseWriter = WriteReadinessAsync,
        }).WithMetadata(new HttpMethodMetadata([HttpMethods.Get]));
        return app;
    }

    /// <summary>The body of <c>/readyz</c> from a report of the readiness checks: a check missing from it counts as failed.</summary>
    public static ReadinessReport ToReadiness(HealthReport report)
    {
        bool Passed(string name) => report.Entries.TryGetValue(name, out var entry) && entry.Status == HealthStatus.Healthy;
        // Ready exactly when the status code is 200 (the middleware maps Healthy and Degraded to 200).
        return new ReadinessReport(Passed(ModelLoadedCheck), Passed(BrokerConnectedCheck), Passed(ConsumerRunningCheck),
            report.Status != HealthStatus.Unhealthy);
    }

    // The status code is set by the middleware from the report (Unhealthy: 503) before the writer runs.
    private static Task WriteLivenessAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "text/plain; charset=utf-8";
        if (report.Status != HealthStatus.Unhealthy)
            return context.Response.WriteAsync("ok");
        var failed = report.Entries.Where(e => e.Value.Status == HealthStatus.Unhealthy).Select(e => $"{e.Key}: {e.Value.Description}");
        return context.Response.WriteAsync("unhealthy: " + string.Join("; ", failed));
    }

    private static Task WriteReadinessAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        return JsonSerializer.SerializeAsync(context.Response.Body, ToReadiness(report), HostJsonContext.Default.ReadinessReport,
            context.RequestAborted);
    }

    private static HealthCheckRegistration Flag(string name, Func<IServiceProvider, bool> probe, string whenFalse) =>
        new(name, sp => new FlagCheck(() => probe(sp), whenFalse), HealthStatus.Unhealthy, [ReadyTag]);

    /// <summary>A readiness condition the worker already tracks as a flag.</summary>
    private sealed class FlagCheck(Func<bool> probe, string whenFalse) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(probe() ? HealthCheckResult.Healthy() : new HealthCheckResult(context.Registration.FailureStatus, whenFalse));
    }
}

/// <summary>The body of <c>/readyz</c>: the three conditions and their conjunction.</summary>
public sealed record ReadinessReport(bool ModelLoaded, bool BrokerConnected, bool ConsumerRunning, bool Ready);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.SnakeCaseLower)]
[System.Text.Json.Serialization.JsonSerializable(typeof(ReadinessReport))]
internal sealed partial class HostJsonContext : System.Text.Json.Serialization.JsonSerializerContext;

/// <summary>Liveness fails once the engine has crashed: it can take no more jobs, and only a restart brings it back.</summary>
internal sealed class EngineHealthCheck(IInferenceEngine engine) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(engine.Fault is { } fault
            ? HealthCheckResult.Unhealthy($"the inference engine crashed ({fault.GetType().Name}: {fault.Message})")
            : HealthCheckResult.Healthy("the inference engine has not crashed"));
}

/// <summary>Liveness fails once the watchdog has seen a condition only a restart cures (a hung engine, a broker lost too long).</summary>
internal sealed class WatchdogHealthCheck(WorkerWatchdog watchdog) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(watchdog.Verdict is { } verdict
            ? HealthCheckResult.Unhealthy(verdict)
            : HealthCheckResult.Healthy("no stall, no lost broker link"));
}
