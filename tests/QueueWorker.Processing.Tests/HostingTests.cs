using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using QueueWorker.Contracts;
using QueueWorker.Inference;

namespace QueueWorker.Processing.Tests;

[Trait("Category", "Unit")]
public sealed class HostingTests
{
    private static HostApplicationBuilder Builder(string? workerId = "w-1")
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Worker:Id"] = workerId, ["Inference:MaxTokens"] = "9" });
        // What AddInference would register, without a model.
        builder.Services.AddOptions<InferenceOptions>().BindConfiguration(InferenceOptions.Section);
        builder.Services.AddSingleton<IInferenceEngine, FakeEngine>();
        return builder;
    }

    [Fact]
    public async Task AddJobProcessing_Registered_PipelineWithWorkerIdAndInferenceLimits()
    {
        var builder = Builder();
        builder.AddJobProcessing();
        using var host = builder.Build();

        var pipeline = host.Services.GetRequiredService<JobPipeline>();
        var ok = await pipeline.RunAsync(new JobInput { Body = """{"prompt":"x"}"""u8.ToArray(), ReceivedAt = DateTimeOffset.UtcNow }, CancellationToken.None);
        var tooMany = await pipeline.RunAsync(new JobInput { Body = """{"prompt":"x","max_tokens":10}"""u8.ToArray(), ReceivedAt = DateTimeOffset.UtcNow }, CancellationToken.None);

        Assert.Equal("w-1", ok.Worker!.Id);
        Assert.Equal(JobStatus.Completed, ok.Status);
        Assert.Equal(ErrorCodes.InvalidField, tooMany.Error!.Code);
        Assert.IsType<NullJobObserver>(host.Services.GetRequiredService<IJobObserver>());
    }

    [Fact]
    public async Task AddJobProcessing_HostObserverRegisteredFirst_PipelineReportsToIt()
    {
        var builder = Builder();
        var observer = new RecordingObserver();
        builder.Services.AddSingleton<IJobObserver>(observer);
        builder.AddJobProcessing();
        using var host = builder.Build();

        await host.Services.GetRequiredService<JobPipeline>().RunAsync(new JobInput { Body = "{"u8.ToArray(), ReceivedAt = DateTimeOffset.UtcNow }, CancellationToken.None);

        Assert.Equal(ErrorCodes.InvalidJson, Assert.Single(observer.Failed));
    }

    [Fact]
    public async Task InProcessEngineHost_InvalidSetting_ThrowsOptionsValidationAndLeavesNothingRunning()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Inference:Slots"] = "0" }).Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => InProcessEngineHost.StartAsync(configuration, EngineHostLogging.None, CancellationToken.None));

        Assert.Contains(ex.Failures, f => f.Contains("Inference:Slots", StringComparison.Ordinal));
    }
}
