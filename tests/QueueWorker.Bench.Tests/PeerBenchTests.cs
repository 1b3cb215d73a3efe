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
}
