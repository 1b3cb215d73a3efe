using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace QueueWorker.Messaging;

public static class MessagingExtensions
{
    /// <summary>
    /// The RabbitMQ side of the worker: options (section <c>RabbitMq</c>, validated at start), the connection, the result
    /// publisher and the hosted <see cref="JobConsumerService"/> that feeds the app's <see cref="IJobHandler"/> (which the
    /// host registers). <see cref="IBrokerStatus"/> tells readiness and metrics about the link. Returns the options builder
    /// so the host can fill in what it knows, e.g. <c>RabbitMq:Prefetch</c> 0 = <c>Inference:Slots</c>:
    /// <code>
    /// builder.AddMessaging().PostConfigure&lt;IOptions&lt;InferenceOptions&gt;&gt;((o, inf) =&gt; { if (o.Prefetch == 0) o.Prefetch = inf.Value.Slots; });
    /// </code>
    /// </summary>
    public static OptionsBuilder<RabbitMqOptions> AddMessaging(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        var options = services.AddOptions<RabbitMqOptions>()
            .BindConfiguration(RabbitMqOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RabbitMqOptions>, RabbitMqOptionsValidator>());

        // Shutdown waits RabbitMq:ShutdownGraceSeconds for jobs in flight, then requeues the rest: the host must allow that long.
        services.AddOptions<HostOptions>().Configure<IOptions<RabbitMqOptions>>((host, rabbit) =>
        {
            int grace;
            try
            {
                grace = rabbit.Value.ShutdownGraceSeconds;
            }
            catch (OptionsValidationException)
            {
                return; // invalid options are reported by ValidateOnStart, with the key and value, not here
            }
            var needed = TimeSpan.FromSeconds(grace + 15);
            if (host.ShutdownTimeout < needed)
                host.ShutdownTimeout = needed;
        });

        // The clock and the jitter of every retry pipeline (ResiliencePipelines): one of each, replaceable by tests.
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(RetryRandomizer.Shared);
        services.TryAddSingleton<RabbitMqConnection>();
        services.TryAddSingleton<ResultPublisher>();
        services.TryAddSingleton<JobConsumerService>();
        services.AddHostedService(sp => sp.GetRequiredService<JobConsumerService>());
        services.TryAddSingleton<IControlHandler, NullControlHandler>();
        services.AddHostedService<ControlConsumerService>();
        services.TryAddSingleton<IBrokerStatus>(sp => sp.GetRequiredService<JobConsumerService>());
        return options;
    }
}
