using System.Text;
using QueueWorker.Contracts;
using QueueWorker.Inference;

namespace QueueWorker.Processing.Tests;

[Trait("Category", "Unit")]
public sealed class JobPipelineCancelTests
{
    private static readonly WorkerIdentity Identity = new("worker-7", "9.8.7");
    private readonly Microsoft.Extensions.Time.Testing.FakeTimeProvider _time = Clock.Create();
    private readonly FakeEngine _engine = new();
    private readonly RecordingObserver _observer = new();
    private readonly JobCancellations _cancellations;
    private readonly JobPipeline _sut;

    public JobPipelineCancelTests()
    {
        _cancellations = new JobCancellations(_time, TimeSpan.FromMinutes(5));
        _sut = new JobPipeline(_engine, new InferenceOptions(), Identity, _observer, _time, new RecordingLogger<JobPipeline>(), cancellations: _cancellations);
    }

    private Task<JobResult> RunAsync(string body, CancellationToken cancellationToken = default) =>
        _sut.RunAsync(new JobInput { Body = Encoding.UTF8.GetBytes(body), ReceivedAt = _time.GetUtcNow(), MessageId = "m" }, cancellationToken);

    private static void AssertCancelled(JobResult result, string id)
    {
        Assert.Equal(id, result.Id);
        Assert.Equal(JobStatus.Failed, result.Status);
        Assert.Equal(FinishReasons.Cancelled, result.FinishReason);
        Assert.Equal(ErrorCodes.Cancelled, result.Error!.Code);
    }

    [Fact]
    public async Task RunAsync_BatchCancelledBeforeArrival_CancelledWithoutTheEngine()
    {
        _cancellations.Cancel(new CancelRequest([], "b1"));

        var result = await RunAsync("""{"id":"j1","batch_id":"b1","prompt":"x","metadata":{"k":1}}""");

        AssertCancelled(result, "j1");
        Assert.Contains("batch b1", result.Error!.Message);
        Assert.Equal(1, result.Metadata!.Value.GetProperty("k").GetInt32());
        Assert.Empty(_engine.Requests);
        Assert.Equal([ErrorCodes.Cancelled], _observer.Failed);
    }

    [Fact]
    public async Task RunAsync_CancelledWhileInTheEngine_CancelledResultNotAnInterruption()
    {
        var started = new TaskCompletionSource();
        _engine.Answer = async (_, ct) =>
        {
            started.SetResult();
            await Task.Delay(Timeout.Infinite, ct);
            return FakeEngine.Completion();
        };
        var run = RunAsync("""{"id":"j2","prompt":"x"}""");
        await started.Task;

        Assert.Equal(1, _cancellations.Cancel(new CancelRequest(["j2"], null)));
        var result = await run;

        AssertCancelled(result, "j2");
        Assert.Contains("its id", result.Error!.Message);
        Assert.Equal(0, _cancellations.Running);
    }

    [Fact]
    public async Task RunAsync_OtherBatchCancelled_Completes()
    {
        _cancellations.Cancel(new CancelRequest(["other"], "b2"));

        var result = await RunAsync("""{"id":"j3","batch_id":"b1","prompt":"x"}""");

        Assert.Equal(JobStatus.Completed, result.Status);
    }

    [Fact]
    public async Task RunAsync_ShutdownWhileInTheEngine_StillAnInterruption()
    {
        using var shutdown = new CancellationTokenSource();
        _engine.Answer = async (_, ct) =>
        {
            await shutdown.CancelAsync();
            ct.ThrowIfCancellationRequested();
            return FakeEngine.Completion();
        };

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => RunAsync("""{"id":"j4","prompt":"x"}""", shutdown.Token));
    }

    [Fact]
    public async Task RunAsync_LaneAndPriorityAndTenant_ReachTheEngine()
    {
        await _sut.RunAsync(new JobInput
        {
            Body = Encoding.UTF8.GetBytes("""{"id":"j5","prompt":"x","priority":7,"metadata":{"tenant":"acme"}}"""),
            ReceivedAt = _time.GetUtcNow(),
            LaneRank = 2,
        }, CancellationToken.None);

        var request = Assert.Single(_engine.Requests);
        Assert.Equal(2, request.LaneRank);
        Assert.Equal(7, request.Priority);
        Assert.Equal("acme", request.Tenant);
    }
}
