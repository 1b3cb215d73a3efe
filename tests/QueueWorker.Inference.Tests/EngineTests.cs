using Microsoft.Extensions.Time.Testing;
using QueueWorker.Contracts;

namespace QueueWorker.Inference.Tests;

/// <summary>The scheduler end to end on stories260K (a real trained model: greedy text is stable).</summary>
[Trait("Category", "Integration")]
public sealed class EngineTests : IAsyncLifetime
{
    private const string Once = "Once upon a time";
    private LlamaEngine _engine = null!;

    public async Task InitializeAsync() => _engine = await TestModels.StartAsync(TestModels.Options(slots: 4));

    public async Task DisposeAsync() => await _engine.DisposeAsync();

    [Fact]
    public async Task GenerateAsync_GreedyOnceUponATime_WritesAboutLily()
    {
        var result = await _engine.GenerateAsync(TestModels.Greedy(Once, 24), CancellationToken.None);

        Assert.Contains("little girl", result.Text);
        Assert.Contains("Lily", result.Text);
        Assert.StartsWith(", there was", result.Text);
        Assert.Equal(FinishReasons.Length, result.FinishReason);
        Assert.Equal(24, result.CompletionTokens);
        Assert.True(result.PromptTokens > 3);
        Assert.True(_engine.IsReady);
        Assert.Equal("stories260K.gguf", _engine.Info!.Model);
    }

    [Fact]
    public async Task GenerateAsync_SameGreedyJobAloneAndBesideThreeOthers_SameText()
    {
        var alone = await _engine.GenerateAsync(TestModels.Greedy(Once, 40), CancellationToken.None);

        var others = new[] { "The cat sat", "Tom and his dog", "One day, a bird" }
            .Select(p => _engine.GenerateAsync(TestModels.Greedy(p, 40), CancellationToken.None)).ToList();
        var together = _engine.GenerateAsync(TestModels.Greedy(Once, 40), CancellationToken.None);
        await Task.WhenAll([.. others, together]);

        Assert.Equal(alone.Text, (await together).Text);
        Assert.All(others, t => Assert.Equal(40, t.Result.CompletionTokens));
    }

    [Fact]
    public async Task GenerateAsync_JobJoinsWhileAnotherGenerates_BothCorrect()
    {
        var soloA = await _engine.GenerateAsync(TestModels.Greedy(Once, 60), CancellationToken.None);
        var soloB = await _engine.GenerateAsync(TestModels.Greedy("The little dog", 20), CancellationToken.None);

        var bStarted = new TaskCompletionSource<Task<GenerationResult>>(TaskCreationOptions.RunContinuationsAsynchronously);
        var aChunksBeforeB = -1;
        var aChunks = 0;
        var a = _engine.GenerateAsync(TestModels.Greedy(Once, 60) with
        {
            OnText = _ =>
            {
                // Submit B from inside A's stream: A is certainly mid-generation when B arrives.
                if (Interlocked.Increment(ref aChunks) == 5)
                    bStarted.TrySetResult(_engine.GenerateAsync(TestModels.Greedy("The little dog", 20) with
                    {
                        OnText = _ => Interlocked.CompareExchange(ref aChunksBeforeB, Volatile.Read(ref aChunks), -1),
                    }, CancellationToken.None));
            },
        }, CancellationToken.None);
        var b = await bStarted.Task;
        var (ra, rb) = (await a, await b);

        Assert.Equal(soloA.Text, ra.Text);
        Assert.Equal(soloB.Text, rb.Text);
        // B produced text while A still had tokens to go: they ran in the same batches.
        Assert.InRange(aChunksBeforeB, 5, 58);
    }

    [Fact]
    public async Task GenerateAsync_PromptSharesPrefixWithEarlierJob_ReusesCellsAndSameText()
    {
        const string instruction = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day,";
        await using var fresh = await TestModels.StartAsync(TestModels.Options(slots: 2, prefixReuse: false));
        var expected = await fresh.GenerateAsync(TestModels.Greedy(instruction + " she saw", 30), CancellationToken.None);
        Assert.Equal(0, expected.CachedTokens);

        await _engine.GenerateAsync(TestModels.Greedy(instruction + " a big dog", 5), CancellationToken.None);
        var reused = await _engine.GenerateAsync(TestModels.Greedy(instruction + " she saw", 30), CancellationToken.None);

        Assert.True(reused.CachedTokens > 20, $"cached {reused.CachedTokens} of {reused.PromptTokens}");
        Assert.True(reused.CachedTokens < reused.PromptTokens);
        Assert.Equal(expected.Text, reused.Text);
    }

    [Fact]
    public async Task GenerateAsync_IdenticalPrompt_ReusesAllButLastToken()
    {
        var first = await _engine.GenerateAsync(TestModels.Greedy("Lily and Ben went to the park", 12), CancellationToken.None);
        var second = await _engine.GenerateAsync(TestModels.Greedy("Lily and Ben went to the park", 12), CancellationToken.None);

        Assert.Equal(second.PromptTokens - 1, second.CachedTokens);
        Assert.Equal(first.Text, second.Text);
    }

    [Fact]
    public async Task GenerateAsync_ConcurrentJobsSharingLongPrefix_LaterOnesReuseIt()
    {
        var instruction = string.Concat(Enumerable.Repeat("Once upon a time, there was a girl. ", 6));
        var jobs = Enumerable.Range(0, 4)
            .Select(i => _engine.GenerateAsync(TestModels.Greedy(instruction + new[] { "She", "He", "They", "It" }[i], 8), CancellationToken.None))
            .ToList();
        var results = await Task.WhenAll(jobs);

        // All four arrive together: the first prefills the instruction, the others wait one step and copy it.
        Assert.Equal(3, results.Count(r => r.CachedTokens >= r.PromptTokens - 3));
    }

    [Fact]
    public async Task GenerateAsync_PromptPlusMaxTokensOverContext_FailsPromptTooLongNamingBothNumbers()
    {
        var prompt = string.Concat(Enumerable.Repeat("Once upon a time there was a cat. ", 150));
        var ex = await Assert.ThrowsAsync<InferenceException>(() => _engine.GenerateAsync(TestModels.Greedy(prompt, 200), CancellationToken.None));

        Assert.Equal(ErrorCodes.PromptTooLong, ex.Code);
        var m = System.Text.RegularExpressions.Regex.Match(ex.Message, @"^prompt is (\d+) tokens \+ max_tokens 200 = (\d+) KV cells, but Inference:ContextSize is 1024\.$");
        Assert.True(m.Success, ex.Message);
        Assert.Equal(int.Parse(m.Groups[1].Value) + 200, int.Parse(m.Groups[2].Value));
        Assert.Equal(0, _engine.Stats.BusySlots);
    }

    [Fact]
    public async Task GenerateAsync_StopStringInOutput_TextEndsBeforeItWithStopSequence()
    {
        var result = await _engine.GenerateAsync(TestModels.Greedy(Once, 40) with { Stop = ["named Lily"] }, CancellationToken.None);

        Assert.Equal(", there was a little girl ", result.Text);
        Assert.Equal(FinishReasons.StopSequence, result.FinishReason);
    }

    [Fact]
    public async Task GenerateAsync_StopStringNeverAppears_NoTextHeldBack()
    {
        var plain = await _engine.GenerateAsync(TestModels.Greedy(Once, 20), CancellationToken.None);
        // "Lilac" shares "Lil" with the output: held back while undecided, then released.
        var result = await _engine.GenerateAsync(TestModels.Greedy(Once, 20) with { Stop = ["Lilac", "zzz"] }, CancellationToken.None);

        Assert.Equal(plain.Text, result.Text);
        Assert.Equal(FinishReasons.Length, result.FinishReason);
    }

    [Fact]
    public async Task GenerateAsync_MaxTokensN_LengthWithExactlyNTokens()
    {
        var result = await _engine.GenerateAsync(TestModels.Greedy(Once, 7), CancellationToken.None);

        Assert.Equal(FinishReasons.Length, result.FinishReason);
        Assert.Equal(7, result.CompletionTokens);
    }

    [Fact]
    public async Task GenerateAsync_OnTextPieces_ConcatenateToTheText()
    {
        var pieces = new List<string>();
        var result = await _engine.GenerateAsync(TestModels.Greedy(Once, 30) with { OnText = pieces.Add, Stop = ["park"] }, CancellationToken.None);

        Assert.Equal(result.Text, string.Concat(pieces));
        Assert.DoesNotContain("park", result.Text);
    }

    [Fact]
    public async Task GenerateAsync_TimingsAndStats_Reported()
    {
        var result = await _engine.GenerateAsync(TestModels.Greedy(Once, 16), CancellationToken.None);

        Assert.True(result.PromptMs > 0);
        Assert.True(result.FirstTokenMs >= result.PromptMs);
        Assert.True(result.GenerationMs > 0);
        Assert.True(result.WaitMs >= 0);
        Assert.Equal(0, _engine.Stats.BusySlots);
        Assert.Equal(0, _engine.Stats.WaitingJobs);
    }

    [Fact]
    public async Task GenerateAsync_SampledWithSeed_SameSeedSameText()
    {
        var sampling = new SamplingParams { Temperature = 1.0f, TopK = 40, TopP = 0.95f, MinP = 0.05f, Seed = 42 };
        var a = await _engine.GenerateAsync(TestModels.Greedy(Once, 30) with { Sampling = sampling }, CancellationToken.None);
        var b = await _engine.GenerateAsync(TestModels.Greedy(Once, 30) with { Sampling = sampling }, CancellationToken.None);
        var others = await Task.WhenAll(Enumerable.Range(1, 4).Select(seed =>
            _engine.GenerateAsync(TestModels.Greedy(Once, 30) with { Sampling = sampling with { Seed = (uint)seed } }, CancellationToken.None)));

        Assert.Equal(a.Text, b.Text);
        Assert.Contains(others, o => o.Text != a.Text);
    }

    [Fact]
    public async Task GenerateAsync_MessagesWithoutTemplate_UsesPlainTranscript()
    {
        var chat = await _engine.GenerateAsync(new GenerationRequest
        {
            JobId = "chat",
            Messages = [new ChatMessage("user", "Tell me a story.")],
            MaxTokens = 5,
            Sampling = SamplingParams.Greedy,
        }, CancellationToken.None);
        var raw = await _engine.GenerateAsync(TestModels.Greedy("User: Tell me a story.\nAssistant:", 5), CancellationToken.None);

        Assert.Equal(ChatFormatKind.PlainTranscript, _engine.ChatFormat!.Kind);
        Assert.Equal(raw.PromptTokens, chat.PromptTokens);
        Assert.Equal(raw.Text, chat.Text);
    }
}

/// <summary>Cancellation and deadlines, on a one-slot engine so a stuck slot would block the next job.</summary>
[Trait("Category", "Integration")]
public sealed class EngineLifecycleTests
{
    private const string Once = "Once upon a time";

    [Fact]
    public async Task GenerateAsync_CancelledMidGeneration_ThrowsAndFreesTheSlot()
    {
        await using var engine = await TestModels.StartAsync(TestModels.Options(slots: 1, contextSize: 512, maxTokens: 400));
        using var cts = new CancellationTokenSource();
        var pieces = 0;
        var job = engine.GenerateAsync(TestModels.Greedy(Once, 400) with
        {
            OnText = _ => { if (++pieces == 3) cts.Cancel(); },
        }, cts.Token);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => job);
        var next = await engine.GenerateAsync(TestModels.Greedy(Once, 10), CancellationToken.None);

        Assert.Contains("little girl", next.Text);
        Assert.Equal(0, engine.Stats.BusySlots);
    }

    [Fact]
    public async Task GenerateAsync_CancelledWhileWaitingForSlot_ThrowsAndNeverRuns()
    {
        await using var engine = await TestModels.StartAsync(TestModels.Options(slots: 1, contextSize: 512, maxTokens: 400));
        using var cts = new CancellationTokenSource();
        var waiterStarted = false;
        Task<GenerationResult>? waiter = null;
        var first = engine.GenerateAsync(TestModels.Greedy(Once, 60) with
        {
            OnText = _ =>
            {
                if (waiter is not null) return;
                waiter = engine.GenerateAsync(TestModels.Greedy("The dog", 10) with { OnText = _ => waiterStarted = true }, cts.Token);
                cts.Cancel();
            },
        }, CancellationToken.None);

        var done = await first;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiter!);
        Assert.Equal(60, done.CompletionTokens);
        Assert.False(waiterStarted);
    }

    [Fact]
    public async Task GenerateAsync_DeadlinePassesMidGeneration_TimeoutWithPartialText()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        await using var engine = await TestModels.StartAsync(TestModels.Options(slots: 1, contextSize: 512, maxTokens: 400), time: time);
        var pieces = 0;
        var result = await engine.GenerateAsync(TestModels.Greedy(Once, 400) with
        {
            Deadline = time.GetUtcNow().AddSeconds(10),
            OnText = _ => { if (++pieces == 4) time.Advance(TimeSpan.FromSeconds(11)); },
        }, CancellationToken.None);

        Assert.Equal(FinishReasons.Timeout, result.FinishReason);
        Assert.StartsWith(", there", result.Text);
        Assert.InRange(result.CompletionTokens, 4, 6);
        Assert.Equal(0, engine.Stats.BusySlots);
    }

    [Fact]
    public async Task GenerateAsync_DeadlineAlreadyPassed_DeadlineExceeded()
    {
        await using var engine = await TestModels.StartAsync(TestModels.Options(slots: 1, contextSize: 512));
        var ex = await Assert.ThrowsAsync<InferenceException>(() =>
            engine.GenerateAsync(TestModels.Greedy(Once, 10) with { Deadline = DateTimeOffset.UtcNow.AddSeconds(-1) }, CancellationToken.None));

        Assert.Equal(ErrorCodes.DeadlineExceeded, ex.Code);
    }

    [Fact]
    public async Task GenerateAsync_IdleCacheInTheWay_EvictedAndJobCorrect()
    {
        await using var engine = await TestModels.StartAsync(TestModels.Options(slots: 2, contextSize: 256, maxTokens: 200, batchSize: 256));
        await using var reference = await TestModels.StartAsync(TestModels.Options(slots: 1, contextSize: 256, maxTokens: 200, prefixReuse: false, batchSize: 256));
        var expected = await reference.GenerateAsync(TestModels.Greedy("The dog ran", 200), CancellationToken.None);

        // ~105 cells stay cached in a slot; the next job needs 204 of 256, so the cache must go.
        await engine.GenerateAsync(TestModels.Greedy(Once, 100), CancellationToken.None);
        Assert.True(engine.Stats.KvCellsInUse > 100);
        var result = await engine.GenerateAsync(TestModels.Greedy("The dog ran", 200), CancellationToken.None);

        Assert.Equal(expected.Text, result.Text);
        Assert.Equal(200, result.CompletionTokens);
    }

    [Fact]
    public async Task GenerateAsync_NotEnoughFreeCells_WaitsForRunningJobThenRuns()
    {
        await using var engine = await TestModels.StartAsync(TestModels.Options(slots: 2, contextSize: 256, maxTokens: 200, batchSize: 256));
        // Both callbacks run on the scheduler thread, in order: no synchronisation needed.
        var aPieces = 0;
        var aPiecesWhenBStarted = -1;
        Task<GenerationResult>? b = null;
        var a = engine.GenerateAsync(TestModels.Greedy(Once, 150) with
        {
            OnText = _ =>
            {
                aPieces++;
                // A reserves 155 cells; B needs 105 of the 256: it must wait although slot 1 is free.
                b ??= engine.GenerateAsync(TestModels.Greedy("The cat", 100) with
                {
                    OnText = _ => { if (aPiecesWhenBStarted < 0) aPiecesWhenBStarted = aPieces; },
                }, CancellationToken.None);
            },
        }, CancellationToken.None);
        var ra = await a;
        var rb = await b!;

        Assert.Equal(150, ra.CompletionTokens);
        Assert.Equal(100, rb.CompletionTokens);
        Assert.Equal(aPieces, aPiecesWhenBStarted);
    }

    [Fact]
    public async Task StopAsync_JobsInFlight_CancelledAndEngineNotReady()
    {
        var engine = await TestModels.StartAsync(TestModels.Options(slots: 1, contextSize: 512, maxTokens: 400));
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var job = engine.GenerateAsync(TestModels.Greedy(Once, 400) with { OnText = _ => started.TrySetResult() }, CancellationToken.None);
        await started.Task;

        await engine.StopAsync(CancellationToken.None);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => job);
        Assert.False(engine.IsReady);
        await Assert.ThrowsAsync<InvalidOperationException>(() => engine.GenerateAsync(TestModels.Greedy(Once, 5), CancellationToken.None));
        await engine.DisposeAsync();
    }
}
