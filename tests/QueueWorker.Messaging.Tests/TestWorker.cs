using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using QueueWorker.Contracts;

namespace QueueWorker.Messaging.Tests;

/// <summary>
/// A stand-in for the host's handler: records every job it is given and answers with <see cref="Behaviour"/>
/// (default: a completed result whose text is the body).
/// </summary>
public sealed class TestJobHandler : IJobHandler
{
    public ConcurrentQueue<IncomingJob> Received { get; } = new();

    public Func<IncomingJob, CancellationToken, Task<JobResult>> Behaviour { get; set; } = (job, _) => Task.FromResult(Complete(job));

    public async Task<JobResult> HandleAsync(IncomingJob job, CancellationToken cancellationToken)
    {
        Received.Enqueue(job);
        return await Behaviour(job, cancellationToken);
    }

    public static JobResult Complete(IncomingJob job) => new()
    {
        Id = job.MessageId ?? "no-id",
        Status = JobStatus.Completed,
        Text = Encoding.UTF8.GetString(job.Body.Span),
        FinishReason = FinishReasons.Stop,
    };
}

/// <summary>A real Generic Host running <see cref="MessagingExtensions.AddMessaging"/> with a <see cref="TestJobHandler"/>.</summary>
public sealed class TestWorker : IAsyncDisposable
{
    private readonly IHost _host;
    private bool _stopped;

    private TestWorker(IHost host, TestJobHandler handler)
    {
        _host = host;
        Handler = handler;
    }

    public TestJobHandler Handler { get; }

    public IBrokerStatus Status => _host.Services.GetRequiredService<IBrokerStatus>();

    public JobConsumerService Consumer => _host.Services.GetRequiredService<JobConsumerService>();

    public static IHost Build(RabbitMqOptions options, IJobHandler handler, ITestOutputHelper? output, ConcurrentQueue<(LogLevel Level, int EventId, string Message)>? logSink = null)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(ToConfiguration(options));
        builder.Logging.SetMinimumLevel(output is null ? LogLevel.Warning : LogLevel.Debug);
        if (output is not null)
            builder.Logging.AddProvider(new TestOutputLoggerProvider(output));
        if (logSink is not null)
            builder.Logging.AddProvider(new SinkLoggerProvider(logSink));
        builder.Services.AddSingleton(handler);
        builder.AddMessaging();
        return builder.Build();
    }

    /// <summary>Starts a worker and waits until it consumes (fails after 20 s).</summary>
    public static async Task<TestWorker> StartAsync(RabbitMqOptions options, ITestOutputHelper output, TestJobHandler? handler = null)
    {
        var worker = Create(options, output, handler);
        await worker.StartHostAsync();
        await worker.WaitUntilAsync(() => worker.Status.IsConsuming, "the worker consumes");
        return worker;
    }

    public static TestWorker Create(RabbitMqOptions options, ITestOutputHelper output, TestJobHandler? handler = null)
    {
        handler ??= new TestJobHandler();
        return new TestWorker(Build(options, handler, output), handler);
    }

    public Task StartHostAsync() => _host.StartAsync();

    public async Task WaitUntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        // Scaled on CI like every wait: a bound, not an expectation (the CI machine ran this project ~2.5× slower than here).
        var limit = Waits.Scale(timeout ?? TimeSpan.FromSeconds(20));
        var deadline = DateTime.UtcNow + limit;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"Waited {limit.TotalSeconds} s for: {what}.");
            await Task.Delay(20);
        }
    }

    public async Task StopAsync()
    {
        if (_stopped)
            return;
        _stopped = true;
        using var timeout = new CancellationTokenSource(Waits.Seconds(60));
        await _host.StopAsync(timeout.Token);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        if (_host is IAsyncDisposable asyncDisposable)
            await asyncDisposable.DisposeAsync();
        else
            _host.Dispose();
    }

    public static Dictionary<string, string?> ToConfiguration(RabbitMqOptions o) => new()
    {
        ["RabbitMq:Uri"] = o.Uri,
        ["RabbitMq:JobsQueue"] = o.JobsQueue,
        ["RabbitMq:ResultsQueue"] = o.ResultsQueue,
        ["RabbitMq:DeadLetterQueue"] = o.DeadLetterQueue,
        ["RabbitMq:DeliveryLimit"] = o.DeliveryLimit.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["RabbitMq:Prefetch"] = o.Prefetch.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["RabbitMq:DeclareTopology"] = o.DeclareTopology ? "true" : "false",
        ["RabbitMq:MaxJobBytes"] = o.MaxJobBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["RabbitMq:HeartbeatSeconds"] = o.HeartbeatSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["RabbitMq:PublishRetries"] = o.PublishRetries.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["RabbitMq:ShutdownGraceSeconds"] = o.ShutdownGraceSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["RabbitMq:ClientName"] = o.ClientName,
        ["RabbitMq:ReplyToPattern"] = o.ReplyToPattern,
        ["RabbitMq:AnswerDeadLetters"] = o.AnswerDeadLetters ? "true" : "false",
    };
}

/// <summary>Routes logs to the test's output, so a failing test shows what the worker did.</summary>
public sealed class TestOutputLoggerProvider(ITestOutputHelper output) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new TestOutputLogger(output, categoryName[(categoryName.LastIndexOf('.') + 1)..]);

    public void Dispose()
    {
    }

    private sealed class TestOutputLogger(ITestOutputHelper output, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Debug;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            try
            {
                output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {logLevel,-11} {category}[{eventId.Id}] {formatter(state, exception)}{(exception is null ? "" : " | " + exception.GetType().Name + ": " + exception.Message)}");
            }
            catch (InvalidOperationException)
            {
                // The test has finished: its output is closed.
            }
        }
    }
}

/// <summary>Keeps log entries for assertions.</summary>
public sealed class SinkLoggerProvider(ConcurrentQueue<(LogLevel Level, int EventId, string Message)> sink) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new SinkLogger(sink);

    public void Dispose()
    {
    }

    private sealed class SinkLogger(ConcurrentQueue<(LogLevel Level, int EventId, string Message)> sink) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            sink.Enqueue((logLevel, eventId.Id, formatter(state, exception)));
    }
}
