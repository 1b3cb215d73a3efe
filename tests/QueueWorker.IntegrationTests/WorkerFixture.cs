using System.Text.RegularExpressions;

namespace QueueWorker.IntegrationTests;

/// <summary>
/// One worker on the real model, with its own temporary jobs/results/dead-letter queues, shared by
/// the tests of a class. The broker connection plays the producer.
/// </summary>
public class WorkerFixture : IAsyncLifetime
{
    public TestBroker Broker { get; private set; } = null!;
    public WorkerProcess Worker { get; private set; } = null!;
    public string JobsQueue { get; } = TestBroker.UniqueName("llm.jobs");
    public string ResultsQueue { get; } = TestBroker.UniqueName("llm.results");
    public string ReplyQueue { get; } = TestBroker.UniqueName("reply");
    public ResultCollector Results { get; private set; } = null!;
    public ResultCollector Replies { get; private set; } = null!;

    /// <summary>Extra worker settings of a derived fixture.</summary>
    protected virtual IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>();

    public async Task InitializeAsync()
    {
        Broker = await TestBroker.ConnectAsync();
        Broker.Own(JobsQueue);
        Broker.Own(JobsQueue + ".dlq");
        Broker.Own(JobsQueue + ".parked");
        Broker.Own(ResultsQueue);
        await Broker.DeclareQueueAsync(ReplyQueue);

        var settings = new Dictionary<string, string>
        {
            ["RabbitMq:JobsQueue"] = JobsQueue,
            ["RabbitMq:ResultsQueue"] = ResultsQueue,
            ["Inference:ContextSize"] = "1024",
            ["Inference:Slots"] = "4",
            // The tests' named reply queue is allowed; any other named reply_to gets its result on the results queue.
            ["RabbitMq:ReplyToPattern"] = Regex.Escape(ReplyQueue),
        };
        foreach (var (k, v) in Settings) settings[k] = v;
        Worker = WorkerProcess.Start(settings);
        await Worker.WaitReadyAsync(Waits.WorkerReady);

        Results = await Broker.CollectAsync(ResultsQueue);
        Replies = await Broker.CollectAsync(ReplyQueue);
    }

    public async Task DisposeAsync()
    {
        if (Results is not null) await Results.DisposeAsync();
        if (Replies is not null) await Replies.DisposeAsync();
        if (Worker is not null) await Worker.DisposeAsync();
        if (Broker is not null) await Broker.DisposeAsync();
    }
}
