using Microsoft.Extensions.Time.Testing;
using QueueWorker.Contracts;

namespace QueueWorker.Processing.Tests;

[Trait("Category", "Unit")]
public sealed class JobCancellationsTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));

    private JobCancellations Create(int max = JobCancellations.MaxRemembered) => new(_time, TimeSpan.FromMinutes(10), max);

    [Fact]
    public void Cancel_JobId_RememberedUntilTheMemoryEnds()
    {
        var sut = Create();
        sut.Cancel(new CancelRequest(["j1"], null));

        Assert.True(sut.IsCancelled("j1", null));
        Assert.False(sut.IsCancelled("j2", null));
        _time.Advance(TimeSpan.FromMinutes(10) - TimeSpan.FromSeconds(1));
        Assert.True(sut.IsCancelled("j1", null));
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(sut.IsCancelled("j1", null));
    }

    [Fact]
    public void Cancel_BatchId_MatchesEveryJobOfTheBatchOnly()
    {
        var sut = Create();
        sut.Cancel(new CancelRequest([], "b1"));

        Assert.True(sut.IsCancelled("any", "b1"));
        Assert.False(sut.IsCancelled("any", "b2"));
        Assert.False(sut.IsCancelled("any", null));
    }

    [Fact]
    public void Cancel_RunningJob_TokenCancelledAndCounted()
    {
        var sut = Create();
        using var running = sut.Track("j1", "b1");
        using var other = sut.Track("j2", "b2");

        var stopped = sut.Cancel(new CancelRequest([], "b1"));

        Assert.Equal(1, stopped);
        Assert.True(running.Token.IsCancellationRequested);
        Assert.False(other.Token.IsCancellationRequested);
    }

    [Fact]
    public void Track_AfterACancel_StartsCancelled()
    {
        var sut = Create();
        sut.Cancel(new CancelRequest(["j1"], null));

        using var tracked = sut.Track("j1", null);

        Assert.True(tracked.IsCancelled);
    }

    [Fact]
    public void Track_Disposed_NoLongerRunning()
    {
        var sut = Create();
        var tracked = sut.Track("j1", null);
        Assert.Equal(1, sut.Running);

        tracked.Dispose();

        Assert.Equal(0, sut.Running);
        Assert.Equal(0, sut.Cancel(new CancelRequest(["j1"], null)));
    }

    [Fact]
    public void Cancel_MoreIdsThanTheBound_OldestForgotten()
    {
        var sut = Create(max: 3);
        foreach (var id in new[] { "a", "b", "c", "d" })
        {
            sut.Cancel(new CancelRequest([id], null));
            _time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.False(sut.IsCancelled("a", null));
        Assert.True(sut.IsCancelled("b", null));
        Assert.True(sut.IsCancelled("d", null));
    }

    [Fact]
    public void Cancel_SameIdAgain_MemoryRestartsFromTheLastCancel()
    {
        var sut = Create();
        sut.Cancel(new CancelRequest(["a"], null));
        _time.Advance(TimeSpan.FromMinutes(8));
        sut.Cancel(new CancelRequest(["a"], null));
        _time.Advance(TimeSpan.FromMinutes(8));

        Assert.True(sut.IsCancelled("a", null));
    }
}
