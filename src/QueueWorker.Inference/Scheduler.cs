using System.Threading.Channels;
using LLama.Native;
using Microsoft.Extensions.Logging;
using QueueWorker.Contracts;

namespace QueueWorker.Inference;

/// <summary>
/// Continuous batching over one llama context. A single dedicated thread owns the context; each step it
/// admits waiting jobs into free slots, builds ONE batch (one sampled token per generating slot plus chunks of
/// pending prompt tokens within the batch size), decodes it once, then samples and streams text per slot.
/// Jobs join and leave between steps. When there is nothing to do the thread sleeps on the job channel.
/// The scheduler only decides what each slot does; a <see cref="Slot"/> keeps its own state (see <see cref="SlotState"/>).
/// </summary>
internal sealed class Scheduler
{
    private readonly SafeLLamaContextHandle _ctx;
    private readonly SafeLlamaModelHandle _model;
    private readonly SafeLlamaModelHandle.Vocabulary _vocab;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly EngineStats _stats;
    private readonly int _contextSize;
    private readonly int _batchSize;
    private readonly bool _prefixReuse;
    private readonly int _threads;
    private readonly int _batchThreads;

    private readonly Channel<InferenceJob> _incoming = Channel.CreateUnbounded<InferenceJob>(new UnboundedChannelOptions { SingleReader = true });
    private readonly List<InferenceJob> _waiting = [];
    private readonly Slot[] _slots;
    private readonly LLamaBatch _batch = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Thread _thread;
    private readonly string? _crashOnPrompt;
    private readonly string? _stallOnPrompt;
    private readonly string? _killOnPrompt;
    private byte[] _pieceBuffer = new byte[64];
    private Grammar.GrammarVocab? _grammarVocab;
    private readonly bool _grammarFastPath;
    private volatile Exception? _fault;
    private readonly TenantTurns _turns = new();
    private int _queued;
    private long _step;
    private long _sequence;

    public Scheduler(SafeLLamaContextHandle ctx, SafeLlamaModelHandle model, int slots, int contextSize, int batchSize, bool prefixReuse,
        (int Threads, int BatchThreads) threads, ILogger logger, TimeProvider time, EngineStats stats, string? crashOnPrompt = null, string? stallOnPrompt = null,
        string? killOnPrompt = null, bool grammarFastPath = true)
    {
        _grammarFastPath = grammarFastPath;
        _threads = threads.Threads;
        _batchThreads = threads.BatchThreads;
        _stallOnPrompt = string.IsNullOrEmpty(stallOnPrompt) ? null : stallOnPrompt;
        _crashOnPrompt = string.IsNullOrEmpty(crashOnPrompt) ? null : crashOnPrompt;
        _killOnPrompt = string.IsNullOrEmpty(killOnPrompt) ? null : killOnPrompt;
        _ctx = ctx;
        _model = model;
        _vocab = model.Vocab;
        _contextSize = contextSize;
        _batchSize = batchSize;
        _prefixReuse = prefixReuse;
        _logger = logger;
        _time = time;
        _stats = stats;
        var cells = new ContextKvCells(ctx);
        _slots = Enumerable.Range(0, slots).Select(i => new Slot(i, cells, prefixReuse, time)).ToArray();
        _thread = new Thread(Run) { IsBackground = true, Name = "llama-scheduler" };
    }

    /// <summary>False once the loop has ended (stopped or crashed).</summary>
    public bool IsRunning => !_exited.Task.IsCompleted;

    /// <summary>Why the loop crashed; null while it runs and after a clean stop.</summary>
    public Exception? Fault => _fault;

    public void Start() => _thread.Start();

    public bool TryEnqueue(InferenceJob job)
    {
        Interlocked.Increment(ref _queued);
        if (_incoming.Writer.TryWrite(job))
        {
            PublishWaiting();
            return true;
        }
        Interlocked.Decrement(ref _queued);
        return false;
    }

    /// <summary>Stops taking jobs, cancels the unfinished ones and waits for the thread to leave the context.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _incoming.Writer.TryComplete();
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _exited.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private void Run()
    {
        Exception? crash = null;
        Log.SchedulerStarted(_logger);
        try
        {
            while (!_stopping.IsCancellationRequested)
            {
                DrainIncoming();
                if (_waiting.Count == 0 && !_slots.Any(s => s.IsActive))
                {
                    PublishStats();
                    if (!WaitForJob()) break;
                    continue;
                }
                Step();
            }
        }
        catch (Exception ex)
        {
            crash = ex;
            _fault = ex;
            Log.SchedulerCrashed(_logger, ex);
        }
        finally
        {
            // Refuse new jobs first, so none can slip in after the last drain and wait forever.
            _incoming.Writer.TryComplete();
            var unfinished = FailAll(crash);
            PublishStats();
            Log.SchedulerStopped(_logger, unfinished);
            _exited.TrySetResult();
        }
    }

    // This thread exists only to own the context, so blocking it while idle costs nothing (no pool thread is held).
    private bool WaitForJob()
    {
        try
        {
            return _incoming.Reader.WaitToReadAsync(_stopping.Token).AsTask().GetAwaiter().GetResult();
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private void DrainIncoming()
    {
        while (_incoming.Reader.TryRead(out var job))
        {
            Interlocked.Decrement(ref _queued);
            job.Sequence = _sequence++;
            _waiting.Add(job);
        }
    }

    /// <summary>One scheduling step: expire, admit, batch, decode, sample.</summary>
    private void Step()
    {
        _step++;
        _stats.SetSteps(_step);
        ExpireAndCancel();
        AdmitWaiting();

        _batch.Clear();
        foreach (var slot in _slots) slot.AddPendingToken(_batch);
        // Prompt chunks fill what is left of the batch, oldest job first, so a long prompt never stalls generation.
        var budget = _batchSize - _batch.TokenCount;
        foreach (var slot in _slots.Where(s => s.IsPrefilling).OrderBy(s => s.AdmittedAt))
        {
            if (budget <= 0) break;
            budget -= slot.AddPromptChunk(_batch, budget);
        }
        if (_batch.TokenCount == 0)
        {
            PublishStats();
            return;
        }

        var started = _time.GetTimestamp();
        var cpuStarted = ProcessCpuClock.NowMs();
        var result = _ctx.Decode(_batch);
        if (result == DecodeResult.NoKvSlot && EvictIdleCaches() is var evicted and > 0)
        {
            // Accounting keeps the total under the context, but cells can fragment: idle caches go first.
            Log.EvictedForRetry(_logger, evicted);
            result = _ctx.Decode(_batch);
        }
        var elapsedMs = _time.GetElapsedTime(started).TotalMilliseconds;
        if (result != DecodeResult.Ok)
        {
            FailBatch(result);
            PublishStats();
            return;
        }

        // The CPU the process really used during the step, not wall × threads: on a shared machine a llama.cpp thread
        // waiting for a core adds wall time but no CPU (measured: wall × threads was 3–6× the CPU at load 30 on 2
        // cores). Threads spinning at llama.cpp's barriers do burn CPU and are counted. Without the clock, wall ×
        // threads: llama.cpp runs a one-token micro-batch with its generation threads and a larger one with its batch
        // threads (llama_context::graph_compute); UBatchSize = BatchSize makes every step one micro-batch.
        var occupancyMs = elapsedMs * (_batch.TokenCount > 1 ? _batchThreads : _threads);
        var cpuMs = cpuStarted is { } c0 && ProcessCpuClock.NowMs() is { } c1 ? Math.Max(0, c1 - c0) : occupancyMs;
        _stats.AddCpuMs(cpuMs, occupancyMs);
        var cpuMsPerToken = cpuMs / _batch.TokenCount;
        // Every slot takes in what it put in the batch before any job ends and frees its cells.
        foreach (var slot in _slots) slot.Decoded(elapsedMs, cpuMsPerToken);
        foreach (var slot in _slots)
        {
            if (slot.HasLogits) Sample(slot);
        }
        PublishStats();
    }

    private void ExpireAndCancel()
    {
        var now = _time.GetUtcNow();
        for (var i = _waiting.Count - 1; i >= 0; i--)
        {
            var job = _waiting[i];
            if (job.CancellationToken.IsCancellationRequested)
            {
                _waiting.RemoveAt(i);
                job.OnCancelled();
            }
            else if (now >= job.Deadline)
            {
                _waiting.RemoveAt(i);
                var waited = _time.GetElapsedTime(job.SubmittedAt).TotalMilliseconds;
                job.Completion.TrySetException(new InferenceException(ErrorCodes.DeadlineExceeded,
                    $"The job's deadline passed after {waited:F0} ms waiting for a free slot, before work began."));
            }
        }
        foreach (var slot in _slots)
        {
            if (slot.Job is not { } job) continue;
            if (job.CancellationToken.IsCancellationRequested)
            {
                job.OnCancelled();
                slot.Release(_step);
            }
            else if (now >= job.Deadline)
            {
                Finish(slot, FinishReasons.Timeout);
            }
        }
    }

    private void AdmitWaiting()
    {
        if (_waiting.Count > 1 && _slots.Any(s => !s.IsActive)) SortWaiting();
        for (var i = 0; i < _waiting.Count;)
        {
            var job = _waiting[i];
            var plan = AdmissionPlanner.Plan(_slots, job.Prompt, job.KvNeed, _contextSize, _prefixReuse);
            switch (plan.Decision)
            {
                case AdmissionDecision.Admit:
                    // Out of the waiting list only once admitted: a crash inside Admit must leave the job where
                    // FailAll finds it, or its caller would wait forever.
                    Admit(job, plan);
                    _waiting.RemoveAt(i);
                    _turns.Served(job.Request.Tenant);
                    continue;
                case AdmissionDecision.Defer:
                    i++;
                    continue;
                default:
                    // No slot, or not enough cells: later jobs wait too, so a big job is not starved by small ones.
                    return;
            }
        }
    }

    /// <summary>Puts the waiting list in admission order (<see cref="WaitingOrder"/>): lane, priority, tenants round-robin.</summary>
    private void SortWaiting()
    {
        var entries = new WaitingOrder.Entry[_waiting.Count];
        for (var i = 0; i < entries.Length; i++)
        {
            var r = _waiting[i].Request;
            entries[i] = new WaitingOrder.Entry(r.LaneRank, r.Priority, r.Tenant, _waiting[i].Sequence);
        }
        var order = WaitingOrder.Order(entries, _turns);
        var sorted = order.Select(i => _waiting[i]).ToList();
        _waiting.Clear();
        _waiting.AddRange(sorted);
    }

    private void Admit(InferenceJob job, AdmissionPlan plan)
    {
        if (_killOnPrompt is { } kill && job.Request.Prompt?.Contains(kill, StringComparison.Ordinal) == true)
            Environment.FailFast($"Fault injection (Inference:KillProcessOnPrompt): job {job.Request.JobId} kills the worker process.");
        if (_crashOnPrompt is { } marker && job.Request.Prompt?.Contains(marker, StringComparison.Ordinal) == true)
            throw new InvalidOperationException($"Fault injection (Inference:CrashSchedulerOnPrompt): job {job.Request.JobId} crashes the scheduler.");
        if (_stallOnPrompt is { } stall && job.Request.Prompt?.Contains(stall, StringComparison.Ordinal) == true)
        {
            // A hung decode, as far as anyone outside can tell: no step completes until the engine is stopped.
            Log.FaultInjectionStall(_logger, job.Request.JobId);
            _stopping.Token.WaitHandle.WaitOne();
        }
        var slot = plan.Target!;
        // The target's cells are arranged (and the source's copied) before evictions, which may include the source.
        slot.Assign(job, plan.Source, plan.Reuse, Sampler(job), _step);
        foreach (var evicted in plan.Evict ?? []) evicted.Evict();
        Log.JobAdmitted(_logger, job.Request.JobId, slot.Id, job.Prompt.Length, plan.Reuse, plan.Source?.Id ?? -1, slot.WaitMs);
    }

    /// <summary>The vocabulary's prefix tree for grammar masks, built when the first constrained job arrives.</summary>
    private Grammar.GrammarVocab GrammarVocab() => _grammarVocab ??= Grammar.GrammarVocab.Build(_model);

    private JobSampler Sampler(InferenceJob job) => _grammarFastPath || job.Grammar is null
        ? SamplerFactory.CreateJobSampler(job.Request.Sampling, job.Prompt, _vocab.Count, job.Grammar, GrammarVocab)
        : new ChainSampler(SamplerFactory.Create(job.Request.Sampling, job.Prompt, _vocab.Count, job.Grammar));

    private void Sample(Slot slot)
    {
        // Read before sampling moves the slot on; the sampler copies the logits and never writes them back. A job that
        // did not ask for log probabilities pays this one test.
        var logits = slot.WantsLogprobs ? _ctx.GetLogitsIth(slot.LogitsIndex) : default;
        var token = slot.Sample(_ctx);
        if (token.IsEndOfGeneration(_vocab))
        {
            Finish(slot, FinishReasons.Stop);
            return;
        }
        if (slot.WantsLogprobs) slot.AddLogprob(TokenLogprobs.Of(logits, token, slot.Job!.Request.TopLogprobs ?? 0, Piece));
        Emit(slot, slot.Accept(token, Piece(token)));
        if (slot.LimitReached is { } reason) Finish(slot, reason);
    }

    private ReadOnlySpan<byte> Piece(LLamaToken token)
    {
        var n = (int)_model.TokenToSpan(token, _pieceBuffer, 0, special: false);
        if (n > _pieceBuffer.Length)
        {
            _pieceBuffer = new byte[n * 2];
            n = (int)_model.TokenToSpan(token, _pieceBuffer, 0, special: false);
        }
        return _pieceBuffer.AsSpan(0, n);
    }

    /// <summary>Passes text the slot released to the job's <see cref="GenerationRequest.OnText"/>.</summary>
    private void Emit(Slot slot, string text)
    {
        if (text.Length == 0) return;
        if (slot.Job!.Request.OnText is not { } onText) return;
        try
        {
            onText(text);
        }
        catch (Exception ex)
        {
            Log.OnTextFailed(_logger, slot.Job.Request.JobId, ex);
        }
    }

    private void Finish(Slot slot, string reason)
    {
        var job = slot.Job!;
        var (decoded, held) = slot.FlushText();
        Emit(slot, decoded);
        Emit(slot, held);
        if (slot.StopStringHit) reason = FinishReasons.StopSequence;

        var result = slot.Result(reason);
        Log.JobFinished(_logger, job.Request.JobId, slot.Id, reason, result.CompletionTokens, result.PromptMs, result.GenerationMs);
        slot.Release(_step);
        // Stats before the result: the result's continuation runs at once on another thread, and a caller that has
        // its result must not still see its slot busy (the step's own PublishStats comes later).
        PublishStats();
        job.Completion.TrySetResult(result);
    }

    private int EvictIdleCaches()
    {
        var n = 0;
        foreach (var slot in _slots)
        {
            if (slot.State != SlotState.Cached) continue;
            slot.Evict();
            n++;
        }
        return n;
    }

    private void FailBatch(DecodeResult result)
    {
        var inBatch = _slots.Where(s => s.InBatch).ToList();
        Log.DecodeFailed(_logger, result.ToString(), _batch.TokenCount, inBatch.Count);
        foreach (var slot in inBatch)
        {
            slot.Fail(new InferenceException(ErrorCodes.EngineError, $"llama_decode failed with {result} on a batch of {_batch.TokenCount} tokens."));
        }
    }

    private int FailAll(Exception? crash)
    {
        DrainIncoming();
        var n = 0;
        // Both are interruptions, not the jobs' fault: the caller requeues them for a healthy worker. A job that really
        // is the cause crashes every worker it reaches, and the queue's delivery limit stops it.
        Exception Error() => crash is null
            ? new OperationCanceledException("The inference engine is stopping.")
            : new OperationCanceledException($"The inference scheduler failed ({crash.GetType().Name}: {crash.Message}); the job was interrupted.");
        foreach (var job in _waiting)
        {
            if (job.Completion.TrySetException(Error())) n++;
        }
        _waiting.Clear();
        foreach (var slot in _slots)
        {
            if (slot.IsActive && slot.Fail(Error())) n++;
        }
        return n;
    }

    private void PublishWaiting() => _stats.SetWaitingJobs(Volatile.Read(ref _queued) + _waitingCount);

    private volatile int _waitingCount;

    private void PublishStats()
    {
        var busy = 0;
        var cells = 0;
        foreach (var s in _slots)
        {
            if (s.IsActive) busy++;
            cells += s.ReservedCells;
        }
        _waitingCount = _waiting.Count;
        _stats.SetBusySlots(busy);
        _stats.SetKvCellsInUse(cells);
        PublishWaiting();
    }
}
