using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace QueueWorker.Inference;

public static class InferenceHostingExtensions
{
    /// <summary>
    /// Registers the engine: <see cref="ModelOptions"/> (section <c>Model</c>) and <see cref="InferenceOptions"/>
    /// (section <c>Inference</c>) validated at start, <see cref="LlamaEngine"/> as the singleton
    /// <see cref="IInferenceEngine"/>, and a hosted service that loads the model when the host starts and stops
    /// the scheduler when it stops. Register it before services that call the engine, so it starts first and stops last.
    /// </summary>
    public static IHostApplicationBuilder AddInference(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<ModelOptions>().BindConfiguration(ModelOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<InferenceOptions>().BindConfiguration(InferenceOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ModelOptions>, ModelOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<InferenceOptions>, InferenceOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new LlamaEngine(
            sp.GetRequiredService<IOptions<ModelOptions>>().Value,
            sp.GetRequiredService<IOptions<InferenceOptions>>().Value,
            sp.GetRequiredService<ILogger<LlamaEngine>>(),
            sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton<IInferenceEngine>(sp => sp.GetRequiredService<LlamaEngine>());
        services.AddHostedService<InferenceHostedService>();
        return builder;
    }
}

/// <summary>Loads the model when the host starts (a failure stops the host) and stops the scheduler on shutdown.</summary>
internal sealed class InferenceHostedService(LlamaEngine engine) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => engine.StartAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => engine.StopAsync(cancellationToken);
}
