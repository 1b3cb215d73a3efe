using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using QueueWorker.Contracts;
using QueueWorker.Inference;

namespace QueueWorker.Processing.Tests;

/// <summary>An engine that records each request and answers with <see cref="Answer"/> (by default a fixed completion).</summary>
internal sealed class FakeEngine : IInferenceEngine
{
    public EngineInfo? Info { get; set; } = new("fake.gguf", "/models/fake.gguf", 3, 3, 1024, 4, 512, "test");
    public bool IsReady => true;
    public EngineStats Stats { get; } = new();
    public ConcurrentQueue<GenerationRequest> Requests { get; } = new();

    /// <summary>The engine's work; may advance the fake clock or throw.</summary>
    public Func<GenerationRequest, CancellationToken, Task<GenerationResult>> Answer { get; set; } = (_, _) => Task.FromResult(Completion());

    public Task<GenerationResult> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken)
    {
        Requests.Enqueue(request);
        return Answer(request, cancellationToken);
    }

    /// <summary>
    /// An embedding job takes the same <see cref="Answer"/> (so every engine outcome applies to it too), recorded in
    /// <see cref="Requests"/> as a request without a prompt; each input gets a one-number vector.
    /// </summary>
    public async Task<EmbeddingResult> EmbedAsync(IReadOnlyList<string> inputs, CancellationToken cancellationToken)
    {
        var request = new GenerationRequest { JobId = "embedding", MaxTokens = 1 };
        Requests.Enqueue(request);
        var answer = await Answer(request, cancellationToken).ConfigureAwait(false);
        return new EmbeddingResult(inputs.Select(_ => new[] { 1f }).ToArray(), answer.PromptTokens, answer.PromptMs);
    }

    public static GenerationResult Completion(double waitMs = 0) => new()
    {
        Text = " there was a cat",
        FinishReason = FinishReasons.Length,
        PromptTokens = 5,
        CompletionTokens = 4,
        CachedTokens = 1,
        WaitMs = waitMs,
        PromptMs = 10,
        FirstTokenMs = 12,
        GenerationMs = 30,
        CpuMs = 42.1234,
    };
}

/// <summary>Records every outcome the pipeline reports.</summary>
internal sealed class RecordingObserver : IJobObserver
{
    public ConcurrentQueue<JobResult> Completed { get; } = new();
    public ConcurrentQueue<string> Failed { get; } = new();
    public int Calls => Completed.Count + Failed.Count;

    public ConcurrentQueue<string> Tenants { get; } = new();

    public void JobCompleted(JobResult result, string tenant)
    {
        Tenants.Enqueue(tenant);
        Completed.Enqueue(result);
    }

    public void JobFailed(string code) => Failed.Enqueue(code);
}

/// <summary>A logger that keeps each entry's event id, level, message and the scopes open when it was written.</summary>
internal sealed class RecordingLogger<T> : ILogger<T>
{
    private readonly AsyncLocal<Stack<object>> _scopes = new();

    public ConcurrentQueue<(EventId Id, LogLevel Level, string Message, object[] Scopes)> Entries { get; } = new();

    public IDisposable BeginScope<TState>(TState state) where TState : notnull
    {
        var stack = _scopes.Value ??= new Stack<object>();
        stack.Push(state);
        return new Pop(stack);
    }

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Entries.Enqueue((eventId, logLevel, formatter(state, exception), _scopes.Value?.ToArray() ?? []));

    private sealed class Pop(Stack<object> stack) : IDisposable
    {
        public void Dispose() => stack.Pop();
    }
}

/// <summary>A clock for deadline tests: a fixed start far from the edges of <see cref="DateTimeOffset"/>.</summary>
internal static class Clock
{
    public static readonly DateTimeOffset Start = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    public static FakeTimeProvider Create() => new(Start);
}
