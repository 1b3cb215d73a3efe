using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Polly;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace QueueWorker.Messaging.Tests;

/// <summary>
/// The retry schedule of every <see cref="ResiliencePipelines"/> factory, made exact by a fixed randomizer and a fake clock
/// that reports each delay the pipeline asks for: the test reads the delay, then advances the clock by exactly that much.
/// </summary>
[Trait("Category", "Unit")]
public sealed class RetryScheduleTests
{
    // With Polly's decorrelated jitter a fixed randomizer gives a fixed, if irregular, series; the supervisor's ±20% is 0 at 0.5.
    private static readonly Func<double> Half = () => 0.5;
    private static readonly TimeSpan PublishAttemptTimeout = TimeSpan.FromDays(1);

    private readonly ScheduleClock _time = new(ignored: PublishAttemptTimeout);
    private readonly ListLogger _logger = new();

    private ResiliencePipeline CreateSut(string pipeline, Func<double>? randomizer = null) => pipeline switch
    {
        "connect" => ResiliencePipelines.CreateConnect(_time, _logger, "amqp://guest:***@localhost:5672/", randomizer ?? Half),
        "publish" => ResiliencePipelines.CreatePublish(6, _time, _logger, attemptTimeout: PublishAttemptTimeout, randomizer: randomizer ?? Half),
        "topology" => ResiliencePipelines.CreateTopology(_time, _logger, randomizer ?? Half),
        "subscribe" => ResiliencePipelines.CreateSubscribe(_time, _logger, "llm.jobs", randomizer ?? Half),
        _ => throw new ArgumentOutOfRangeException(nameof(pipeline), pipeline, null),
    };

    private static AlreadyClosedException ConnectionGone() =>
        new(new ShutdownEventArgs(ShutdownInitiator.Peer, 320, "CONNECTION_FORCED - broker forced connection closure"));

    /// <summary>
    /// Fails every try and reads the first <paramref name="retries"/> delays, advancing the fake clock through each but the
    /// last (unless <paramref name="advanceLast"/>), so the pipeline is left waiting in a known delay: cancelling it then
    /// is not a race with a try.
    /// </summary>
    private async Task<(List<TimeSpan> Delays, Task Run, Func<int> Calls)> FollowAsync(ResiliencePipeline pipeline, int retries,
        CancellationToken cancellationToken, bool advanceLast = false)
    {
        var calls = 0;
        var run = pipeline.ExecuteAsync(_ =>
        {
            Interlocked.Increment(ref calls);
            throw ConnectionGone();
        }, cancellationToken).AsTask();
        var delays = new List<TimeSpan>();
        for (var i = 0; i < retries; i++)
        {
            var delay = await _time.NextDelayAsync();
            delays.Add(delay);
            if (i < retries - 1 || advanceLast)
                _time.Advance(delay);
        }
        return (delays, run, () => Volatile.Read(ref calls));
    }

    private static TimeSpan[] Ms(params double[] values) => values.Select(TimeSpan.FromMilliseconds).ToArray();

    [Theory]
    [InlineData("topology")]
    [InlineData("subscribe")]
    public async Task CreateSupervisor_MiddleRandom_DoublesFrom1sTo30s(string pipeline)
    {
        using var cts = new CancellationTokenSource();

        var (delays, run, _) = await FollowAsync(CreateSut(pipeline), 8, cts.Token);

        Assert.Equal(Ms(1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000), delays);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    [Theory]
    [InlineData("topology", 0.0, new double[] { 800, 1600, 3200, 6400, 12_800, 24_000, 24_000 })]
    [InlineData("subscribe", 0.0, new double[] { 800, 1600, 3200, 6400, 12_800, 24_000, 24_000 })]
    [InlineData("topology", 0.75, new double[] { 1100, 2200, 4400, 8800, 17_600, 33_000, 33_000 })]
    public async Task CreateSupervisor_FixedRandom_JitterIsPlusMinus20Percent(string pipeline, double random, double[] expectedMs)
    {
        using var cts = new CancellationTokenSource();

        var (delays, run, _) = await FollowAsync(CreateSut(pipeline, () => random), expectedMs.Length, cts.Token);

        Assert.Equal(Ms(expectedMs), delays);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    [Fact]
    public async Task CreateConnect_FixedRandom_DecorrelatedJitterCappedAt30s()
    {
        using var cts = new CancellationTokenSource();

        var (delays, run, _) = await FollowAsync(CreateSut("connect"), 8, cts.Token);

        // Polly's decorrelated jitter (median ≈ 1, 2, 4, 8 s) evaluated at 0.5, then the 30 s cap.
        Assert.Equal(ExpectedDecorrelated(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), 8, 0.5), delays);
        Assert.Equal(TimeSpan.FromSeconds(30), delays[^1]);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    [Fact]
    public async Task CreatePublish_FixedRandom_FiveDelaysThenGivesUp()
    {
        var (delays, run, calls) = await FollowAsync(CreateSut("publish"), 5, CancellationToken.None, advanceLast: true);

        await Assert.ThrowsAsync<AlreadyClosedException>(() => run);
        Assert.Equal(ExpectedDecorrelated(TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(15), 5, 0.5), delays);
        Assert.Equal(6, calls());
        Assert.False(_time.HasPendingDelay);
    }

    [Fact]
    public async Task CreateReconnect_AlwaysFails_1_2_4_8_Then10s()
    {
        using var cts = new CancellationTokenSource();
        var attempts = new List<int>();
        var pipeline = ResiliencePipelines.CreateReconnect<string>(_time, args =>
        {
            attempts.Add(args.AttemptNumber + 1);
            return default;
        }, Half);
        var calls = 0;

        var run = pipeline.ExecuteAsync<string>(_ =>
        {
            calls++;
            throw new BrokerUnreachableException(new IOException("connection refused"));
        }, cts.Token).AsTask();
        var delays = new List<TimeSpan>();
        for (var i = 0; i < 7; i++)
        {
            delays.Add(await _time.NextDelayAsync());
            if (i < 6)
                _time.Advance(delays[^1]);
        }

        Assert.Equal(Ms(1000, 2000, 4000, 8000, 10_000, 10_000, 10_000), delays);
        Assert.Equal([1, 2, 3, 4, 5, 6, 7], attempts);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        Assert.Equal(7, calls);
    }

    [Theory]
    [InlineData("connect")]
    [InlineData("publish")]
    [InlineData("topology")]
    [InlineData("subscribe")]
    public async Task Create_CancelledDuringDelay_StopsRetrying(string pipeline)
    {
        using var cts = new CancellationTokenSource();
        var (_, run, calls) = await FollowAsync(CreateSut(pipeline), 1, cts.Token);

        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        _time.Advance(TimeSpan.FromMinutes(10));
        Assert.Equal(1, calls());
        Assert.False(_time.HasPendingDelay);
    }

    [Fact]
    public async Task CreateReconnect_Cancelled_NotRetried()
    {
        var pipeline = ResiliencePipelines.CreateReconnect<string>(_time, _ => default, Half);
        var calls = 0;

        var error = await Record.ExceptionAsync(() => pipeline.ExecuteAsync<string>(_ =>
        {
            calls++;
            throw new TaskCanceledException("the handshake timed out");
        }, CancellationToken.None).AsTask());

        Assert.IsType<TaskCanceledException>(error);
        Assert.Equal(1, calls);
    }

    [Fact]
    public async Task CreateTopology_Mismatch_NotRetried()
    {
        var calls = 0;

        var error = await Record.ExceptionAsync(() => CreateSut("topology").ExecuteAsync(_ =>
        {
            calls++;
            throw new TopologyMismatchException("llm.jobs", "exists as a classic queue");
        }, CancellationToken.None).AsTask());

        Assert.IsType<TopologyMismatchException>(error);
        Assert.Equal(1, calls);
    }

    [Theory]
    [InlineData("connect")]
    [InlineData("topology")]
    [InlineData("subscribe")]
    public async Task Create_ClientTimeoutWhileRunning_Retried(string pipeline)
    {
        // The client's own handshake or RPC timeout is a TaskCanceledException on a token nobody cancelled.
        var calls = 0;
        var run = CreateSut(pipeline).ExecuteAsync(_ =>
        {
            if (++calls == 1)
                throw new TaskCanceledException("the RPC timed out");
            return ValueTask.CompletedTask;
        }, CancellationToken.None).AsTask();

        _time.Advance(await _time.NextDelayAsync());
        await run;

        Assert.Equal(2, calls);
    }

    [Theory]
    [InlineData("topology", 0.0, 2013, "Declaring queues failed: AlreadyClosedException: ")]
    [InlineData("subscribe", 0.0, 2023, "Cannot consume 'llm.jobs': AlreadyClosedException: ")]
    [InlineData("connect", 0.5, 2003, "Cannot connect to RabbitMQ amqp://guest:***@localhost:5672/ (attempt 1): AlreadyClosedException: ")]
    public async Task Create_Retry_LogsTheDelayItWaits(string pipeline, double random, int eventId, string start)
    {
        using var cts = new CancellationTokenSource();
        var (delays, run, _) = await FollowAsync(CreateSut(pipeline, () => random), 1, cts.Token);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);

        var (id, message) = _logger.Entries.First();
        Assert.Equal(eventId, id);
        Assert.StartsWith(start, message, StringComparison.Ordinal);
        Assert.EndsWith($"Retrying in {delays[0].TotalMilliseconds:F0} ms", message, StringComparison.Ordinal);
    }

    /// <summary>
    /// Polly's decorrelated jitter V2 (RetryHelper.DecorrelatedJitterBackoffV2) at a fixed random value, as the timer waits
    /// it: <c>Task.Delay</c> on a <see cref="TimeProvider"/> waits whole milliseconds. Written out here so that a change of
    /// formula in a Polly upgrade shows up as a failing test, not a silent new schedule.
    /// </summary>
    private static TimeSpan[] ExpectedDecorrelated(TimeSpan baseDelay, TimeSpan maxDelay, int count, double random)
    {
        var result = new TimeSpan[count];
        double prev = 0;
        for (var attempt = 0; attempt < count; attempt++)
        {
            var t = attempt + random;
            var next = Math.Pow(2, t) * Math.Tanh(Math.Sqrt(4.0 * t));
            var ticks = (next - prev) * (1 / 1.4d) * baseDelay.Ticks;
            prev = next;
            var delay = TimeSpan.FromTicks((long)Math.Min(ticks, TimeSpan.MaxValue.Ticks - 1000d));
            delay = delay > maxDelay ? maxDelay : delay;
            result[attempt] = TimeSpan.FromMilliseconds(Math.Floor(delay.TotalMilliseconds));
        }
        return result;
    }

    /// <summary>A fake clock that reports the due time of every timer created on it (each retry delay is one), once the timer exists.</summary>
    private sealed class ScheduleClock(TimeSpan ignored) : FakeTimeProvider
    {
        private readonly Channel<TimeSpan> _delays = Channel.CreateUnbounded<TimeSpan>();

        public bool HasPendingDelay => _delays.Reader.TryPeek(out _);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            // Registered first: the test advances the clock as soon as it reads the delay.
            var timer = base.CreateTimer(callback, state, dueTime, period);
            if (dueTime != ignored && dueTime != Timeout.InfiniteTimeSpan)
                _delays.Writer.TryWrite(dueTime);
            return timer;
        }

        public async Task<TimeSpan> NextDelayAsync() =>
            await _delays.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30), TimeProvider.System);
    }

    private sealed class ListLogger : ILogger
    {
        public ConcurrentQueue<(int EventId, string Message)> Entries { get; } = new();

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Enqueue((eventId.Id, formatter(state, exception)));
    }
}
