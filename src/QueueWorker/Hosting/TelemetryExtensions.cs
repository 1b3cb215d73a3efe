using Microsoft.Extensions.Logging.Console;
using OpenTelemetry.Exporter;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using QueueWorker.Messaging;
using QueueWorker.Processing;

namespace QueueWorker.Hosting;

public static class TelemetryExtensions
{
    /// <summary>
    /// Logs and traces. Console logs are plain text, or one JSON object a line with
    /// <c>Logging:Console:FormatterName = json</c>; scopes are on, so every line logged while a job runs
    /// carries its <c>JobId</c>. Traces (the RabbitMQ client's own publish/deliver activities, the job
    /// and its inference step) are exported by OTLP when <c>Telemetry:OtlpEndpoint</c> (or the standard
    /// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>) is set; without one no tracer is registered at all.
    /// </summary>
    public static IHostApplicationBuilder AddWorkerTelemetry(this IHostApplicationBuilder builder)
    {
        // Chosen explicitly: the slim web builder registers the simple formatter itself, so the
        // configuration key alone would not switch it.
        if (string.Equals(builder.Configuration["Logging:Console:FormatterName"], ConsoleFormatterNames.Json, StringComparison.OrdinalIgnoreCase))
            builder.Logging.AddJsonConsole(o => { o.IncludeScopes = true; o.UseUtcTimestamp = true; o.TimestampFormat = "O"; });
        else
            builder.Logging.AddSimpleConsole(o => o.IncludeScopes = true);

        var endpoint = builder.Configuration["Telemetry:OtlpEndpoint"];
        if (string.IsNullOrWhiteSpace(endpoint)) endpoint = builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"];
        if (string.IsNullOrWhiteSpace(endpoint)) return builder;
        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri))
            throw new InvalidOperationException($"Telemetry:OtlpEndpoint = '{SecretMasker.MaskUri(endpoint)}' is not an absolute URI (e.g. http://collector:4317).");

        var protocol = builder.Configuration["Telemetry:OtlpProtocol"] is "http/protobuf" ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("queueworker", serviceVersion: typeof(TelemetryExtensions).Assembly.GetName().Version?.ToString(),
                serviceInstanceId: builder.Configuration["Worker:Id"]))
            .WithTracing(t => t
                // The job and inference spans are the pipeline's (QueueWorker.Processing).
                .AddSource(JobTelemetry.SourceName, "RabbitMQ.Client.Publisher", "RabbitMQ.Client.Subscriber")
                .AddOtlpExporter(o =>
                {
                    o.Protocol = protocol;
                    // With HTTP the signal path is part of the URL; with gRPC it is not.
                    o.Endpoint = protocol == OtlpExportProtocol.HttpProtobuf && uri.AbsolutePath is "/" or ""
                        ? new Uri(uri, "v1/traces") : uri;
                }));
        return builder;
    }
}
