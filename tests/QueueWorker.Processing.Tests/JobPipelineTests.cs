using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using QueueWorker.Contracts;
using QueueWorker.Inference;

namespace QueueWorker.Processing.Tests;

[Trait("Category", "Unit")]
public sealed class JobPipelineTests
{
    private const string Valid = """{"id":"j1","prompt":"Once upon a time","max_tokens":4,"metadata":{"k":"v"}}""";
    private static readonly WorkerIdentity Identity = new("worker-7", "9.8.7");

    private readonly FakeTimeProvider _time = Clock.Create();
    private readonly FakeEngine _engine = new();
    private readonly RecordingObserver _observer = new();
    private readonly RecordingLogger<JobPipeline> _logger = new();

    private JobPipeline CreateSut(InferenceOptions? options = null) =>
        new(_engine, options ?? new InferenceOptions(), Identity, _observer, _time, _logger);

    private JobInput Input(string body, Func<JobInput, JobInput>? with = null)
    {
        var input = new JobInput { Body = Encoding.UTF8.GetBytes(body), ReceivedAt = _time.GetUtcNow(), MessageId = "msg-1" };
        return with is null ? input : with(input);
    }

    private Task<JobResult> RunAsync(string body, Func<JobInput, JobInput>? with = null, InferenceOptions? options = null) =>
        CreateSut(options).RunAsync(Input(body, with), CancellationToken.None);

    // ---- completed ----

    [Fact]
    public async Task RunAsync_ValidJob_CompletedWithEngineOutputUsageAndTimings()
    {
        _engine.Answer = (_, _) => { _time.Advance(TimeSpan.FromMilliseconds(250)); return Task.FromResult(FakeEngine.Completion()); };

        var result = await RunAsync(Valid);

        Assert.Equal("j1", result.Id);
        Assert.Equal(JobStatus.Completed, result.Status);
        Assert.Equal(" there was a cat", result.Text);
        Assert.Equal(FinishReasons.Length, result.FinishReason);
        Assert.Null(result.Error);
        Assert.Equal(new Usage(5, 4, 1), result.Usage);
        Assert.Equal(250, result.Timings!.TotalMs);
        Assert.Equal(10, result.Timings.PromptMs);
        // (4 - 1) decode tokens in 30 ms; (5 - 1 cached) prompt tokens in 10 ms.
        Assert.Equal(100, result.Timings.TokensPerS);
        Assert.Equal(400, result.Timings.PromptTokensPerS);
        var sent = Assert.Single(_engine.Requests);
        Assert.Equal("j1", sent.JobId);
        Assert.Equal("Once upon a time", sent.Prompt);
        Assert.Equal(4, sent.MaxTokens);
    }

    [Fact]
    public async Task RunAsync_Completed_CpuMsInTimingsAndJsonAndTenantToObserver()
    {
        var result = await RunAsync("""{"id":"j1","prompt":"x","max_tokens":4,"metadata":{"tenant":"acme"},"user":"u1"}""");

        Assert.Equal(42.123, result.Timings!.CpuMs);
        var json = System.Text.Json.JsonDocument.Parse(JobSerializer.Serialize(result)).RootElement;
        Assert.Equal(42.123, json.GetProperty("timings").GetProperty("cpu_ms").GetDouble());
        Assert.Equal("acme", Assert.Single(_observer.Tenants));
    }

    [Fact]
    public async Task RunAsync_Completed_WorkerInfoAndMetadataEchoed()
    {
        var result = await RunAsync(Valid);

        Assert.Equal(new WorkerInfo("worker-7", "fake.gguf", 3, 1024, 4, "9.8.7"), result.Worker);
        Assert.Equal("""{"k":"v"}""", result.Metadata!.Value.GetRawText());
    }

    [Fact]
    public async Task RunAsync_EngineNotLoaded_WorkerInfoWithEmptyEnginePart()
    {
        _engine.Info = null;

        var result = await RunAsync(Valid);

        Assert.Equal(new WorkerInfo("worker-7", "", 0, 0, 0, "9.8.7"), result.Worker);
    }

    [Fact]
    public async Task RunAsync_NoIdInBody_MessageIdIsTheJobId()
    {
        var result = await RunAsync("""{"prompt":"x"}""");

        Assert.Equal("msg-1", result.Id);
        Assert.Equal("msg-1", Assert.Single(_engine.Requests).JobId);
    }

    [Fact]
    public async Task RunAsync_NoIdAnywhere_GeneratedJobId()
    {
        var result = await RunAsync("""{"prompt":"x"}""", i => i with { MessageId = null });

        Assert.StartsWith("job-", result.Id, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_NoMaxTokens_DefaultMaxTokensOfOptions()
    {
        await RunAsync("""{"prompt":"x"}""", options: new InferenceOptions { MaxTokens = 100, DefaultMaxTokens = 7 });

        Assert.Equal(7, Assert.Single(_engine.Requests).MaxTokens);
    }

    // ---- envelope ----

    [Fact]
    public async Task RunAsync_BodyOverLimit_FailedBodyTooLargeNamingTheSetting()
    {
        var result = await RunAsync(Valid, i => i with { BodyLimit = new BodyLimit(10, "RabbitMq:MaxJobBytes") });

        AssertFailed(result, ErrorCodes.BodyTooLarge, "body", "the limit RabbitMq:MaxJobBytes is 10");
        Assert.Equal("msg-1", result.Id);
        Assert.Empty(_engine.Requests);
    }

    [Fact]
    public async Task RunAsync_BodyExactlyAtLimit_Completed()
    {
        var result = await RunAsync(Valid, i => i with { BodyLimit = new BodyLimit(Encoding.UTF8.GetByteCount(Valid), "X") });

        Assert.Equal(JobStatus.Completed, result.Status);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("application/json")]
    [InlineData("Application/JSON; charset=utf-8")]
    [InlineData("text/json")]
    [InlineData("application/vnd.acme.job+json")]
    public async Task RunAsync_JsonContentType_Completed(string? contentType)
    {
        var result = await RunAsync(Valid, i => i with { ContentType = contentType });

        Assert.Equal(JobStatus.Completed, result.Status);
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/xml")]
    [InlineData("application/octet-stream")]
    public async Task RunAsync_OtherContentType_FailedUnsupportedContentType(string contentType)
    {
        var result = await RunAsync(Valid, i => i with { ContentType = contentType });

        AssertFailed(result, ErrorCodes.UnsupportedContentType, "content_type", "must be application/json");
        Assert.Empty(_engine.Requests);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("utf-8")]
    [InlineData("UTF-8")]
    [InlineData("identity")]
    public async Task RunAsync_PlainContentEncoding_Completed(string? encoding)
    {
        var result = await RunAsync(Valid, i => i with { ContentEncoding = encoding });

        Assert.Equal(JobStatus.Completed, result.Status);
    }

    [Theory]
    [InlineData("gzip")]
    [InlineData("utf-16")]
    public async Task RunAsync_OtherContentEncoding_FailedUnsupportedContentType(string encoding)
    {
        var result = await RunAsync(Valid, i => i with { ContentEncoding = encoding });

        AssertFailed(result, ErrorCodes.UnsupportedContentType, "content_encoding", "utf-8 or identity");
    }

    [Fact]
    public async Task RunAsync_EnvelopeRejected_BodyNotParsedSoNoBodyIdOrMetadata()
    {
        var result = await RunAsync(Valid, i => i with { ContentType = "text/plain" });

        Assert.Equal("msg-1", result.Id);
        Assert.Null(result.Metadata);
    }

    // ---- parse ----

    [Theory]
    [InlineData("", ErrorCodes.EmptyBody, null)]
    [InlineData("{not json", ErrorCodes.InvalidJson, null)]
    [InlineData("[1,2]", ErrorCodes.NotAnObject, null)]
    [InlineData("""{"max_tokens":4}""", ErrorCodes.MissingPrompt, null)]
    [InlineData("""{"prompt":"x","temperature":9}""", ErrorCodes.InvalidField, "temperature")]
    [InlineData("""{"prompt":"x","max_tokens":513}""", ErrorCodes.InvalidField, "max_tokens")]
    [InlineData("""{"prompt":"x","timeout_ms":0}""", ErrorCodes.InvalidField, "timeout_ms")]
    public async Task RunAsync_InvalidBody_FailedWithParserCodeAndField(string body, string code, string? field)
    {
        var result = await RunAsync(body);

        Assert.Equal(JobStatus.Failed, result.Status);
        Assert.Equal(code, result.Error!.Code);
        if (field is not null) Assert.Equal(field, result.Error.Field);
        Assert.Null(result.Text);
        Assert.Null(result.Usage);
        Assert.Empty(_engine.Requests);
    }

    [Fact]
    public async Task RunAsync_InvalidFieldWithIdAndMetadata_FailedResultKeepsBothAndWorker()
    {
        var result = await RunAsync("""{"id":"mine","prompt":"x","temperature":9,"metadata":{"a":1}}""");

        Assert.Equal("mine", result.Id);
        Assert.Equal("""{"a":1}""", result.Metadata!.Value.GetRawText());
        Assert.Equal(Identity.Id, result.Worker!.Id);
        Assert.Equal("fake.gguf", result.Worker.Model);
    }

    [Fact]
    public async Task RunAsync_Failed_TotalMsMeasured()
    {
        var result = await RunAsync("{bad");

        Assert.Equal(0, result.Timings!.TotalMs);
        Assert.Null(result.Timings.QueuedMs);
    }

    // ---- deadline ----

    [Fact]
    public async Task RunAsync_TimeoutMsAndPublishTime_DeadlineFromPublishTime()
    {
        var published = _time.GetUtcNow().AddSeconds(-2);

        await RunAsync("""{"prompt":"x","timeout_ms":5000}""", i => i with { PublishedAt = published });

        Assert.Equal(published.AddSeconds(5), Assert.Single(_engine.Requests).Deadline);
    }

    [Fact]
    public async Task RunAsync_TimeoutMsWithoutPublishTime_DeadlineFromReceipt()
    {
        var received = _time.GetUtcNow().AddSeconds(-1);

        await RunAsync("""{"prompt":"x","timeout_ms":5000}""", i => i with { ReceivedAt = received });

        Assert.Equal(received.AddSeconds(5), Assert.Single(_engine.Requests).Deadline);
    }

    [Fact]
    public async Task RunAsync_ExpirationAndPublishTime_DeadlineFromPublishTime()
    {
        var published = _time.GetUtcNow().AddSeconds(-3);

        await RunAsync("""{"prompt":"x"}""", i => i with { PublishedAt = published, Expiration = TimeSpan.FromSeconds(10) });

        Assert.Equal(published.AddSeconds(10), Assert.Single(_engine.Requests).Deadline);
    }

    [Fact]
    public async Task RunAsync_ExpirationEarlierThanTimeout_ExpirationWins()
    {
        var now = _time.GetUtcNow();

        await RunAsync("""{"prompt":"x","timeout_ms":10000}""", i => i with { Expiration = TimeSpan.FromSeconds(4) });

        Assert.Equal(now.AddSeconds(4), Assert.Single(_engine.Requests).Deadline);
    }

    [Fact]
    public async Task RunAsync_NoTimeoutNoExpiration_MaxJobSecondsFromReceiptNotPublish()
    {
        var now = _time.GetUtcNow();

        await RunAsync("""{"prompt":"x"}""", i => i with { PublishedAt = now.AddMinutes(-5) }, new InferenceOptions { MaxJobSeconds = 60 });

        Assert.Equal(now.AddSeconds(60), Assert.Single(_engine.Requests).Deadline);
    }

    [Fact]
    public async Task RunAsync_TimeoutLongerThanMaxJobSeconds_MaxJobSecondsWins()
    {
        var now = _time.GetUtcNow();

        await RunAsync("""{"prompt":"x","timeout_ms":600000}""", options: new InferenceOptions { MaxJobSeconds = 30 });

        Assert.Equal(now.AddSeconds(30), Assert.Single(_engine.Requests).Deadline);
    }

    [Fact]
    public async Task RunAsync_TimeoutPassedBeforeWork_DeadlineExceededNamingTimeoutMs()
    {
        var result = await RunAsync("""{"prompt":"x","timeout_ms":1000,"metadata":{"m":true}}""", i => i with { PublishedAt = _time.GetUtcNow().AddHours(-1) });

        AssertFailed(result, ErrorCodes.DeadlineExceeded, "timeout_ms", "passed before work began");
        Assert.Equal("""{"m":true}""", result.Metadata!.Value.GetRawText());
        Assert.Empty(_engine.Requests);
    }

    [Fact]
    public async Task RunAsync_ExpirationPassedBeforeWork_DeadlineExceededNamingExpiration()
    {
        var result = await RunAsync("""{"prompt":"x"}""", i => i with { PublishedAt = _time.GetUtcNow().AddHours(-1), Expiration = TimeSpan.FromMinutes(1) });

        AssertFailed(result, ErrorCodes.DeadlineExceeded, "expiration", "passed before work began");
    }

    [Fact]
    public async Task RunAsync_DeadlineExactlyNow_DeadlineExceeded()
    {
        var result = await RunAsync("""{"prompt":"x","timeout_ms":1000}""", i => i with { PublishedAt = _time.GetUtcNow().AddSeconds(-1) });

        AssertFailed(result, ErrorCodes.DeadlineExceeded, "timeout_ms", "passed before work began");
    }

    [Fact]
    public async Task RunAsync_MaxJobSecondsPassedSinceReceipt_DeadlineExceededWithoutField()
    {
        var result = await RunAsync("""{"prompt":"x"}""", i => i with { ReceivedAt = _time.GetUtcNow().AddMinutes(-2) }, new InferenceOptions { MaxJobSeconds = 60 });

        Assert.Equal(ErrorCodes.DeadlineExceeded, result.Error!.Code);
        Assert.Null(result.Error.Field);
    }

    [Fact]
    public async Task RunAsync_PublishTimeInYear9999AndHugeTimeouts_CompletedWithoutOverflow()
    {
        var result = await RunAsync("""{"prompt":"x","timeout_ms":604800000}""",
            i => i with { PublishedAt = DateTimeOffset.MaxValue.AddSeconds(-1), Expiration = TimeSpan.MaxValue });

        Assert.Equal(JobStatus.Completed, result.Status);
        // Clamped by Inference:MaxJobSeconds from receipt; a publish time in the future never makes queued_ms negative.
        Assert.Equal(_time.GetUtcNow().AddSeconds(new InferenceOptions().MaxJobSeconds), Assert.Single(_engine.Requests).Deadline);
        Assert.Equal(0, result.Timings!.QueuedMs);
    }

    [Fact]
    public async Task RunAsync_ReceivedAtMaxValue_CompletedWithoutOverflow()
    {
        _time.SetUtcNow(DateTimeOffset.MaxValue.AddDays(-1));

        var result = await RunAsync("""{"prompt":"x","timeout_ms":604800000}""",
            i => i with { ReceivedAt = DateTimeOffset.MaxValue, Expiration = TimeSpan.MaxValue });

        Assert.Equal(JobStatus.Completed, result.Status);
        Assert.Equal(DateTimeOffset.MaxValue, Assert.Single(_engine.Requests).Deadline);
    }

    [Fact]
    public async Task RunAsync_PublishTimeInYearOne_DeadlineExceededWithoutOverflow()
    {
        var result = await RunAsync("""{"prompt":"x"}""", i => i with { PublishedAt = DateTimeOffset.MinValue, Expiration = TimeSpan.FromSeconds(1) });

        AssertFailed(result, ErrorCodes.DeadlineExceeded, "expiration", "passed before work began");
    }

    // ---- engine ----

    [Theory]
    [InlineData(ErrorCodes.PromptTooLong, "prompt")]
    [InlineData(ErrorCodes.EngineError, null)]
    [InlineData(ErrorCodes.DeadlineExceeded, null)]
    public async Task RunAsync_EngineRefusesJob_FailedWithItsCode(string code, string? field)
    {
        _engine.Answer = (_, _) => throw new InferenceException(code, "the engine says no");

        var result = await RunAsync(Valid);

        AssertFailed(result, code, field, "the engine says no");
        Assert.Equal("j1", result.Id);
        Assert.Equal("""{"k":"v"}""", result.Metadata!.Value.GetRawText());
        Assert.Equal("fake.gguf", result.Worker!.Model);
    }

    [Fact]
    public async Task RunAsync_EngineCancelled_OperationCanceledPropagatesAndNothingObserved()
    {
        using var cts = new CancellationTokenSource();
        _engine.Answer = (_, token) => { cts.Cancel(); token.ThrowIfCancellationRequested(); return Task.FromResult(FakeEngine.Completion()); };

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => CreateSut().RunAsync(Input(Valid), cts.Token));

        Assert.Equal(0, _observer.Calls);
    }

    [Fact]
    public async Task RunAsync_CancellationTokenPassedToEngine()
    {
        // The engine gets the caller's token linked with the job's own cancellation (control messages): cancelling the
        // caller's cancels the engine's.
        using var cts = new CancellationTokenSource();
        var cancelledWithCaller = false;
        _engine.Answer = (_, token) =>
        {
            cts.Cancel();
            cancelledWithCaller = token.IsCancellationRequested;
            return Task.FromResult(FakeEngine.Completion());
        };

        await CreateSut().RunAsync(Input(Valid), cts.Token);

        Assert.True(cancelledWithCaller);
    }

    [Fact]
    public async Task RunAsync_UnexpectedEngineFault_FailedInternalErrorNamingTheType()
    {
        _engine.Answer = (_, _) => throw new InvalidOperationException("bug with the prompt text in it");

        var result = await RunAsync(Valid);

        Assert.Equal("j1", result.Id);
        Assert.Equal(JobStatus.Failed, result.Status);
        Assert.Equal(ErrorCodes.InternalError, result.Error!.Code);
        Assert.Contains(nameof(InvalidOperationException), result.Error.Message);
        Assert.DoesNotContain("prompt text", result.Error.Message);
        Assert.Equal("v", result.Metadata!.Value.GetProperty("k").GetString());
        Assert.Equal([ErrorCodes.InternalError], _observer.Failed);
        var logged = Assert.Single(_logger.Entries, e => e.Id.Id == 3004);
        Assert.Equal(LogLevel.Error, logged.Level);
        Assert.Contains("j1", logged.Message);
    }

    [Theory]
    [InlineData(JobStage.Admission, "msg-1")]
    [InlineData(JobStage.Deadline, "j1")]
    [InlineData(JobStage.Engine, "j1")]
    [InlineData(JobStage.Result, "j1")]
    [InlineData(JobStage.Observe, "j1")]
    public async Task RunAsync_ThrowAtAnyStage_ExactlyOneFailedResult(JobStage stage, string expectedId)
    {
        var sut = CreateSut();
        sut.StageHook = s => { if (s == stage) throw new FormatException("injected at " + s); };

        var result = await sut.RunAsync(Input(Valid), CancellationToken.None);

        Assert.Equal(expectedId, result.Id);
        Assert.Equal(JobStatus.Failed, result.Status);
        Assert.Equal(ErrorCodes.InternalError, result.Error!.Code);
        Assert.Contains(nameof(FormatException), result.Error.Message);
        Assert.Equal(ErrorCodes.InternalError, Assert.Single(_observer.Failed));
        Assert.Empty(_observer.Completed);
    }

    [Theory]
    [InlineData(JobStage.Admission)]
    [InlineData(JobStage.Engine)]
    [InlineData(JobStage.Observe)]
    public async Task RunAsync_ThrowAtAnyStageOfAParsedJob_ExactlyOneFailedResult(JobStage stage)
    {
        var sut = CreateSut();
        sut.StageHook = s => { if (s == stage) throw new NullReferenceException(); };
        var job = JobParser.Parse(Encoding.UTF8.GetBytes(Valid), new JobLimits(), "fallback").Job!;

        var result = await sut.RunAsync(job, JobArrival.InProcess(_time.GetUtcNow()), CancellationToken.None);

        Assert.Equal("j1", result.Id);
        Assert.Equal(ErrorCodes.InternalError, result.Error!.Code);
    }

    [Fact]
    public async Task RunAsync_ObserverThrowsEvenOnTheFailurePath_ResultStillReturned()
    {
        var throwing = new ThrowingObserver();
        var sut = new JobPipeline(_engine, new InferenceOptions(), Identity, throwing, _time, _logger);

        var result = await sut.RunAsync(Input(Valid), CancellationToken.None);

        Assert.Equal("j1", result.Id);
        Assert.Equal(ErrorCodes.InternalError, result.Error!.Code);
        Assert.Equal(2, throwing.Calls);
    }

    [Fact]
    public async Task RunAsync_EngineStoppedWithoutCallerCancellation_PropagatesForRequeue()
    {
        _engine.Answer = (_, _) => throw new OperationCanceledException("engine stopping");

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => RunAsync(Valid));

        Assert.Equal(0, _observer.Calls);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public async Task RunAsync_NoUsableMessageIdAndNoBodyId_NewJobId(string? messageId)
    {
        var result = await RunAsync("""{"prompt":"x","max_tokens":1}""", i => i with { MessageId = messageId });

        Assert.StartsWith("job-", result.Id);
    }

    [Fact]
    public async Task RunAsync_MessageIdLongerThanAShortString_NotEchoedAsTheId()
    {
        var result = await RunAsync("not json", i => i with { MessageId = new string('é', 200) });

        Assert.StartsWith("job-", result.Id);
        Assert.Equal(ErrorCodes.InvalidJson, result.Error!.Code);
    }

    private sealed class ThrowingObserver : IJobObserver
    {
        public int Calls { get; private set; }

        public void JobCompleted(JobResult result, string tenant)
        {
            Calls++;
            throw new InvalidOperationException("metrics down");
        }

        public void JobFailed(string code)
        {
            Calls++;
            throw new InvalidOperationException("metrics down");
        }
    }

    // ---- queued_ms ----

    [Fact]
    public async Task RunAsync_PublishTimeKnown_QueuedMsIsBrokerWaitPlusEngineWait()
    {
        _engine.Answer = (_, _) => Task.FromResult(FakeEngine.Completion(waitMs: 150));

        var result = await RunAsync(Valid, i => i with { PublishedAt = i.ReceivedAt.AddSeconds(-2) });

        Assert.Equal(2150, result.Timings!.QueuedMs);
    }

    [Fact]
    public async Task RunAsync_PublishTimeAfterReceipt_QueuedMsZeroNotNegative()
    {
        _engine.Answer = (_, _) => Task.FromResult(FakeEngine.Completion(waitMs: 150));

        var result = await RunAsync(Valid, i => i with { PublishedAt = i.ReceivedAt.AddSeconds(1) });

        Assert.Equal(0, result.Timings!.QueuedMs);
    }

    [Fact]
    public async Task RunAsync_NoPublishTime_QueuedMsNull()
    {
        _engine.Answer = (_, _) => Task.FromResult(FakeEngine.Completion(waitMs: 150));

        var result = await RunAsync(Valid);

        Assert.Null(result.Timings!.QueuedMs);
    }

    // ---- observer, logs, spans ----

    [Fact]
    public async Task RunAsync_Completed_ObserverToldOnceWithTheResult()
    {
        var result = await RunAsync(Valid);

        Assert.Same(result, Assert.Single(_observer.Completed));
        Assert.Empty(_observer.Failed);
    }

    [Theory]
    [InlineData("{bad", null, ErrorCodes.InvalidJson)]
    [InlineData(Valid, "text/plain", ErrorCodes.UnsupportedContentType)]
    [InlineData("""{"prompt":"x","timeout_ms":1}""", null, ErrorCodes.DeadlineExceeded)]
    public async Task RunAsync_Failed_ObserverToldOnceWithTheCode(string body, string? contentType, string code)
    {
        await RunAsync(body, i => i with { ContentType = contentType, ReceivedAt = i.ReceivedAt.AddSeconds(-1) });

        Assert.Equal(code, Assert.Single(_observer.Failed));
        Assert.Empty(_observer.Completed);
    }

    [Fact]
    public async Task RunAsync_EngineRefuses_ObserverToldOnce()
    {
        _engine.Answer = (_, _) => throw new InferenceException(ErrorCodes.PromptTooLong, "too long");

        await RunAsync(Valid);

        Assert.Equal(ErrorCodes.PromptTooLong, Assert.Single(_observer.Failed));
        Assert.Empty(_observer.Completed);
    }

    [Fact]
    public async Task RunAsync_Completed_StartedAndCompletedLoggedWithOwnEventIdsInJobScope()
    {
        await RunAsync(Valid, i => i with { DeliveryCount = 2 });

        var entries = _logger.Entries.ToList();
        Assert.Equal(new[] { 3001, 3002 }, entries.Select(e => e.Id.Id));
        Assert.Equal("Job j1 started (delivery 2)", entries[0].Message);
        Assert.StartsWith("Job j1 completed: length, 5 prompt + 4 completion tokens in", entries[1].Message, StringComparison.Ordinal);
        Assert.All(entries, e => Assert.Contains(e.Scopes, s => s is IEnumerable<KeyValuePair<string, object>> kv && kv.Contains(new("JobId", "j1"))));
    }

    [Fact]
    public async Task RunAsync_Failed_WarningWithCodeReasonAndDelivery()
    {
        await RunAsync("""{"id":"j2","prompt":"x","temperature":9}""", i => i with { DeliveryCount = 3 });

        var entry = Assert.Single(_logger.Entries);
        Assert.Equal(3003, entry.Id.Id);
        Assert.Equal(LogLevel.Warning, entry.Level);
        Assert.StartsWith("Job j2 failed: invalid_field: ", entry.Message, StringComparison.Ordinal);
        Assert.EndsWith("(delivery 3)", entry.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_Completed_JobAndInferenceSpansWithTags()
    {
        var id = "span-" + Guid.NewGuid().ToString("N");
        var stopped = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == JobTelemetry.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { lock (stopped) stopped.Add(a); },
        };
        ActivitySource.AddActivityListener(listener);

        await RunAsync($$"""{"id":"{{id}}","prompt":"x"}""", i => i with { DeliveryCount = 1 });

        List<Activity> mine;
        lock (stopped) mine = stopped.Where(a => a.OperationName == "job" && Equals(a.GetTagItem("queueworker.job.id"), id)).ToList();
        var job = Assert.Single(mine);
        Assert.Equal("QueueWorker", job.Source.Name);
        Assert.Equal(1L, job.GetTagItem("queueworker.job.delivery_count"));
        Activity inference;
        lock (stopped) inference = Assert.Single(stopped, a => a.OperationName == "inference" && a.ParentSpanId == job.SpanId);
        Assert.Equal(5, inference.GetTagItem("gen_ai.usage.input_tokens"));
        Assert.Equal(4, inference.GetTagItem("gen_ai.usage.output_tokens"));
        Assert.Equal(1, inference.GetTagItem("queueworker.cached_tokens"));
        Assert.Equal(FinishReasons.Length, inference.GetTagItem("queueworker.finish_reason"));
    }

    [Fact]
    public async Task RunAsync_EngineRefuses_InferenceSpanErrorWithCode()
    {
        var id = "span-" + Guid.NewGuid().ToString("N");
        var stopped = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == JobTelemetry.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { lock (stopped) stopped.Add(a); },
        };
        ActivitySource.AddActivityListener(listener);
        _engine.Answer = (_, _) => throw new InferenceException(ErrorCodes.PromptTooLong, "too long");

        await RunAsync($$"""{"id":"{{id}}","prompt":"x"}""");

        Activity inference;
        lock (stopped)
        {
            var job = Assert.Single(stopped, a => a.OperationName == "job" && Equals(a.GetTagItem("queueworker.job.id"), id));
            inference = Assert.Single(stopped, a => a.OperationName == "inference" && a.ParentSpanId == job.SpanId);
        }
        Assert.Equal(ActivityStatusCode.Error, inference.Status);
        Assert.Equal(ErrorCodes.PromptTooLong, inference.StatusDescription);
        Assert.Equal(ErrorCodes.PromptTooLong, inference.GetTagItem("queueworker.error.code"));
    }

    // ---- a job parsed already (qw --local) ----

    [Fact]
    public async Task RunAsyncParsed_InProcessArrival_QueuedMsIsEngineWaitAndDeadlineFromNow()
    {
        _engine.Answer = (_, _) => Task.FromResult(FakeEngine.Completion(waitMs: 42));
        var job = Assert.IsType<JobRequest>(JobParser.Parse("""{"id":"p1","prompt":"x","timeout_ms":3000,"metadata":{"n":1}}""", JobLimits.Default).Job);
        var now = _time.GetUtcNow();

        var result = await CreateSut().RunAsync(job, JobArrival.InProcess(now), CancellationToken.None);

        Assert.Equal("p1", result.Id);
        Assert.Equal(JobStatus.Completed, result.Status);
        Assert.Equal(42, result.Timings!.QueuedMs);
        Assert.Equal("""{"n":1}""", result.Metadata!.Value.GetRawText());
        Assert.Equal(now.AddSeconds(3), Assert.Single(_engine.Requests).Deadline);
        Assert.Single(_observer.Completed);
    }

    [Fact]
    public async Task RunAsyncParsed_EngineRefuses_FailedWithCode()
    {
        _engine.Answer = (_, _) => throw new InferenceException(ErrorCodes.PromptTooLong, "too long");
        var job = Assert.IsType<JobRequest>(JobParser.Parse("""{"id":"p2","prompt":"x"}""", JobLimits.Default).Job);

        var result = await CreateSut().RunAsync(job, JobArrival.InProcess(_time.GetUtcNow()), CancellationToken.None);

        AssertFailed(result, ErrorCodes.PromptTooLong, "prompt", "too long");
        Assert.Equal("p2", result.Id);
    }

    private static void AssertFailed(JobResult result, string code, string? field, string says)
    {
        Assert.Equal(JobStatus.Failed, result.Status);
        Assert.Equal(code, result.Error!.Code);
        Assert.Equal(field, result.Error.Field);
        Assert.Contains(says, result.Error.Message, StringComparison.Ordinal);
        Assert.Null(result.Text);
        Assert.Null(result.FinishReason);
        Assert.NotNull(result.Worker);
    }
}
