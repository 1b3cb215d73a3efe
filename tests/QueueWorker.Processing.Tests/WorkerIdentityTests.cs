using Microsoft.Extensions.Configuration;
using QueueWorker.Contracts;
using QueueWorker.Inference;

namespace QueueWorker.Processing.Tests;

[Trait("Category", "Unit")]
public sealed class WorkerIdentityTests
{
    private static IConfiguration Config(string? workerId) =>
        new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Worker:Id"] = workerId }).Build();

    [Fact]
    public void ForWorker_WorkerIdSet_ThatIdAndProductVersion()
    {
        var identity = WorkerIdentity.ForWorker(Config("pod-3"));

        Assert.Equal("pod-3", identity.Id);
        Assert.Equal(WorkerIdentity.ProductVersion, identity.Version);
        Assert.False(string.IsNullOrEmpty(identity.Version));
        Assert.DoesNotContain('+', identity.Version);
    }

    [Theory]
    [InlineData(null)]
    [InlineData(" ")]
    public void ForWorker_NoWorkerId_MachineNameAndProcessId(string? configured)
    {
        var identity = WorkerIdentity.ForWorker(Config(configured));

        Assert.Equal($"{Environment.MachineName}-{Environment.ProcessId}", identity.Id);
    }

    [Fact]
    public void ForLocal_QwLocalAndLowerCaseMachine()
    {
        Assert.Equal("qw-local-" + Environment.MachineName.ToLowerInvariant(), WorkerIdentity.ForLocal().Id);
        Assert.Equal(WorkerIdentity.ProductVersion, WorkerIdentity.ForLocal().Version);
    }

    [Fact]
    public void Describe_EngineInfo_WorkerBlock()
    {
        var info = new EngineInfo("m.gguf", "/x/m.gguf", 2, 4, 2048, 6, 512, "why");

        Assert.Equal(new WorkerInfo("w", "m.gguf", 2, 2048, 6, "1.2.3"), new WorkerIdentity("w", "1.2.3").Describe(info));
        Assert.Equal(new WorkerInfo("w", "", 0, 0, 0, "1.2.3"), new WorkerIdentity("w", "1.2.3").Describe(null));
    }
}
