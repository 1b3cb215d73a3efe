using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using QueueWorker.Inference;

namespace QueueWorker.Processing;

public static class ProcessingHostingExtensions
{
    /// <summary>
    /// Registers the <see cref="JobPipeline"/> over the engine <see cref="InferenceHostingExtensions.AddInference"/>
    /// registers (call that first: the pipeline reads its <see cref="InferenceOptions"/>), the worker's
    /// <see cref="WorkerIdentity"/> (<c>Worker:Id</c>), and a silent <see cref="IJobObserver"/> unless the host
    /// registers its own.
    /// </summary>
    public static IHostApplicationBuilder AddJobProcessing(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => WorkerIdentity.ForWorker(sp.GetRequiredService<IConfiguration>()));
        services.TryAddSingleton<IJobObserver>(NullJobObserver.Instance);
        // Hosts that hear cancel messages register their own with the memory they configure.
        services.TryAddSingleton(sp => new JobCancellations(sp.GetRequiredService<TimeProvider>(), TimeSpan.FromMinutes(60)));
        services.TryAddSingleton(sp => new JobPipeline(
            sp.GetRequiredService<IInferenceEngine>(),
            sp.GetRequiredService<IOptions<InferenceOptions>>().Value,
            sp.GetRequiredService<WorkerIdentity>(),
            sp.GetRequiredService<IJobObserver>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<JobPipeline>>(),
            sp.GetService<IOptions<ModelOptions>>()?.Value.Name, sp.GetRequiredService<JobCancellations>()));
        return builder;
    }
}
