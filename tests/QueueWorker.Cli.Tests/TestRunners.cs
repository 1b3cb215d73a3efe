using System.Collections.Concurrent;
using QueueWorker.Cli.Running;
using QueueWorker.Contracts;
using QueueWorker.Inference;

namespace QueueWorker.Cli.Tests;

/// <summary>
/// A job runner for testing the batch pipeline itself (reading, skipping, writing, bounding); it
/// answers like the fake worker. The broker and the engine are tested against the real things.
/// </summary>
internal sealed class EchoRunner : IJobRunner
{
    private int _inFlight;
    private int _maxInFlight;

    public ConcurrentQueue<string> Ran { get; } = new();
    public int MaxObservedInFlight => Volatile.Read(ref _maxInFlight);
    public TimeSpan Delay { get; init; } = TimeSpan.FromMilliseconds(5);
    /// <summary>Called after each job with the number run so far.</summary>
    public Action<int>? AfterRun { get; init; }
    public string Description => "echo";
    public RunnerCounters Counters { get; } = new();

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task<JobResult> RunAsync(JobSubmission submission, CancellationToken cancellationToken)
    {
        var now = Interlocked.Increment(ref _inFlight);
        int seen;
        while (now > (seen = Volatile.Read(ref _maxInFlight)) && Interlocked.CompareExchange(ref _maxInFlight, now, seen) != seen) { }
        try
        {
            await Task.Delay(Delay, cancellationToken);
            Ran.Enqueue(submission.Id);
            AfterRun?.Invoke(Ran.Count);
            return Broker.FakeWorker.Echo(new Broker.ReceivedJob(submission.Id, null, null, null, true, 0, submission.Body.ToArray(), submission.Job));
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>
/// An <see cref="IInferenceEngine"/> with fixed answers, to test how the local runner maps engine
/// results to the worker's result (the real engine is tested with the real model once merged).
/// </summary>
internal sealed class ScriptedEngine : IInferenceEngine
{
    public EngineInfo? Info { get; } = new("fake.gguf", "/models/fake.gguf", 2, 2, 512, 4, 512, "test");
    public bool IsReady => true;
    public EngineStats Stats { get; } = new();
    public ConcurrentQueue<GenerationRequest> Requests { get; } = new();

    public Task<GenerationResult> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken)
    {
        Requests.Enqueue(request);
        var input = request.Prompt ?? request.Messages![^1].Content;
        if (input.Contains("too long", StringComparison.Ordinal))
            throw new InferenceException(ErrorCodes.PromptTooLong, "The prompt has 600 tokens; with max_tokens 16 it needs 616 of the context's 512.");
        return Task.FromResult(new GenerationResult
        {
            Text = "echo: " + input,
            FinishReason = FinishReasons.Length,
            PromptTokens = input.Split(' ').Length,
            CompletionTokens = 3,
            CachedTokens = 0,
            WaitMs = 1,
            PromptMs = 2,
            FirstTokenMs = 3,
            GenerationMs = 4,
        });
    }
}
