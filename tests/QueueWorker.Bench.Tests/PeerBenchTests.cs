namespace QueueWorker.Bench.Tests;

[Trait("Category", "Unit")]
public sealed class PeerBenchTests
{
    [Fact]
    public void Arguments_Plan_SameModelThreadsContextAndSlotsAsTheWorker()
    {
        var plan = new PeerBenchPlan("w.dll", "amqp://x", "/bin/llama-server", "/m.gguf", Threads: 2, Rounds: 1);

        var args = LlamaServerProcess.Arguments(plan, 8081);

        Assert.Equal(["-m", "/m.gguf", "-t", "2", "-tb", "2", "-c", "2048", "-np", "4", "--host", "127.0.0.1", "--port", "8081"], args);
    }

    [Fact]
    public void WorkerConfiguration_Plan_SameModelThreadsContextAndSlotsAsTheServer()
    {
        var plan = new PeerBenchPlan("w.dll", "amqp://x", "/bin/llama-server", "/m.gguf", Threads: 2, Rounds: 1);

        var config = plan.WorkerConfiguration("amqp://b", new WorkerQueues("jobs", "results"));

        Assert.Equal("/m.gguf", config["Model:Path"]);
        Assert.Equal(("2", "2", "2048", "4"), (config["Inference:Threads"], config["Inference:BatchThreads"], config["Inference:ContextSize"], config["Inference:Slots"]));
        Assert.Equal(("jobs", "results"), (config["RabbitMq:JobsQueue"], config["RabbitMq:ResultsQueue"]));
    }

    [Fact]
    public void WorkerConfiguration_ExtraSettings_OverrideTheBenchsAndAreAdded()
    {
        var plan = new PeerBenchPlan("w.dll", "amqp://x", "/bin/llama-server", "/m.gguf", Threads: 2, Rounds: 1,
            WorkerSettings: new Dictionary<string, string> { ["inference:slots"] = "8", ["Inference:KvUnified"] = "false" });

        var config = plan.WorkerConfiguration("amqp://b", new WorkerQueues("jobs", "results"));

        Assert.Equal(("8", "false"), (config["Inference:Slots"], config["Inference:KvUnified"]));
        Assert.Equal("8", plan.WorkerSlots);
        Assert.Contains("-np", LlamaServerProcess.Arguments(plan, 1));
        Assert.Equal("4", LlamaServerProcess.Arguments(plan, 1)[9]);
    }

    [Theory]
    [InlineData("RabbitMq:JobsQueue")]
    [InlineData("model:path")]
    public void WorkerConfiguration_BenchOwnedSetting_Throws(string key)
    {
        var plan = new PeerBenchPlan("w.dll", "amqp://x", "/bin/llama-server", "/m.gguf", Threads: 2, Rounds: 1,
            WorkerSettings: new Dictionary<string, string> { [key] = "x" });

        var e = Assert.Throws<ArgumentException>(() => plan.WorkerConfiguration("amqp://b", new WorkerQueues("jobs", "results")));
        Assert.Contains(key, e.Message, StringComparison.Ordinal);
    }
}
