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
    /// <summary>Cells each slot owns when the KV cache is split per sequence; null when all slots share one pool.</summary>
    private readonly int? _cellsPerSlot;
    private readonly int _threads;
    private readonly int _batchThreads;
    private readonly PromptCache? _promptCache;

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
    private readonly TenantTurns _turns;
    private readonly LaneTurns _laneTurns = new();
    private int _queued;
    private long _step;
    private long _sequence;

    /// <param name="slots">Slots any job may take, then PrioritySlots more (see <see cref="MayTakePriority"/>); one llama sequence each.</param>
    public Scheduler(SafeLLamaContextHandle ctx, SafeLlamaModelHandle model, (int Slots, int PrioritySlots) slots, int contextSize, int batchSize, bool prefixReuse,
        (int Threads, int BatchThreads) threads, ILogger logger, TimeProvider time, EngineStats stats, string? crashOnPrompt = null, string? stallOnPrompt = null,
        string? killOnPrompt = null, PromptCache? promptCache = null, bool grammarFastPath = true, int? cellsPerSlot = null)
    {
        _cellsPerSlot = cellsPerSlot;
        _grammarFastPath = grammarFastPath;
        // The host-RAM cache extends prefix reuse; with reuse off every job prefills its whole prompt, as documented.
        _promptCache = prefixReuse ? promptCache : null;
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
        // A newcomer tenant may have two rounds of slots ahead of the busy ones (see TenantTurns).
        _turns = new TenantTurns(credit: 2 * slots.Slots);
        _slots = Enumerable.Range(0, slots.Slots + slots.PrioritySlots)
            .Select(i => new Slot(i, cells, prefixReuse, time, isPriority: i >= slots.Slots)).ToArray();
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
                    // Nothing to share: whatever a tenant had until now was had without contention (see TenantTurns).
                    _turns.Reset();
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
        // Most steps of a busy worker only generate: no ordering (and no LINQ allocations) when nothing prefills.
        foreach (var slot in Array.Exists(_slots, s => s.IsPrefilling) ? _slots.Where(s => s.IsPrefilling).OrderBy(s => s.AdmittedAt) : Enumerable.Empty<Slot>())
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
        if (_waiting.Count > 1 && AnySlotForWaiting()) SortWaiting();
        for (var i = 0; i < _waiting.Count;)
        {
            var job = _waiting[i];
            var plan = AdmissionPlanner.Plan(_slots, job.Prompt, job.KvNeed, _contextSize, _prefixReuse, MayTakePriority(job), _cellsPerSlot);
            switch (plan.Decision)
            {
                case AdmissionDecision.Admit:
                    // Out of the waiting list only once admitted: a crash inside Admit must leave the job where
                    // FailAll finds it, or its caller would wait forever.
                    Admit(job, plan);
                    // The lanes that had waiting jobs when this one was admitted (its own included): their credit moves.
                    if (job.Request.LaneWeight > 0) _laneTurns.Served(job.Request.LaneRank, WaitingLanes());
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

    /// <summary>
    /// A priority slot is for a job of a higher lane than work already running, when every other slot is busy: it starts
    /// at the next step instead of waiting for a lower lane's job to finish (issue 14's interactive wait). Lanes in strict
    /// order only; with lane weights the lanes share slots by weight, and a lane alone (or one lane) never uses them.
    /// </summary>
    private bool MayTakePriority(InferenceJob job)
    {
        if (job.Request.LaneWeight > 0 || _slots.Length == 0 || !_slots[^1].IsPriority) return false;
        var outranks = false;
        foreach (var s in _slots)
        {
            if (s.IsPriority) continue;
            if (!s.IsActive) return false;
            if (s.Job!.Request.LaneRank > job.Request.LaneRank) outranks = true;
        }
        return outranks;
    }

    /// <summary>
    /// A free slot some waiting job may take: a free regular slot, or a free priority slot a waiting job outranks the
    /// running work for. An idle priority slot alone must not re-sort the waiting list at every step.
    /// </summary>
    private bool AnySlotForWaiting()
    {
        var priorityFree = false;
        foreach (var s in _slots)
        {
            if (s.IsActive) continue;
            if (!s.IsPriority) return true;
            priorityFree = true;
        }
        return priorityFree && _waiting.Exists(MayTakePriority);
    }

    /// <summary>Each lane with a waiting job, with its weight.</summary>
    private Dictionary<int, int> WaitingLanes()
    {
        var lanes = new Dictionary<int, int>();
        foreach (var w in _waiting) lanes[w.Request.LaneRank] = w.Request.LaneWeight;
        return lanes;
    }

    /// <summary>Puts the waiting list in admission order (<see cref="WaitingOrder"/>): lane, priority, fair share between tenants.</summary>
    private void SortWaiting()
    {
        var entries = new WaitingOrder.Entry[_waiting.Count];
        for (var i = 0; i < entries.Length; i++)
        {
            var r = _waiting[i].Request;
            entries[i] = new WaitingOrder.Entry(r.LaneRank, r.Priority, r.Tenant, _waiting[i].Sequence, r.LaneWeight);
        }
        var order = WaitingOrder.Order(entries, _turns, _laneTurns);
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
        var admittedAt = _time.GetTimestamp();
        var sampler = Sampler(job);
        var (source, reuse) = (plan.Source, plan.Reuse);
        if (_promptCache is { } cache)
        {
            if (TryRestore(cache, job, plan) is { } restored) (source, reuse) = (slot, restored);
            // A failed load emptied the target and the evicted caches: a prefix planned from one of them is gone.
            else if (source is { State: SlotState.Empty }) (source, reuse) = (null, 0);
        }
        // The target's cells are arranged (and the source's copied) before evictions, which may include the source.
        slot.Assign(job, source, reuse, sampler, _step, admittedAt);
        foreach (var evicted in plan.Evict ?? [])
        {
            if (evicted.State == SlotState.Cached) evicted.Evict();
        }
        Log.JobAdmitted(_logger, job.Request.JobId, slot.Id, job.Prompt.Length, reuse, source?.Id ?? -1, slot.WaitMs);
    }

    /// <summary>
    /// Restores the host-RAM entry sharing the longest prefix with the job's prompt into the target slot, when it
    /// saves at least <see cref="PromptCache.MinTokens"/> more prefill than the slots' own caches. Returns the prompt
    /// tokens now in the target's cells, or null (nothing restored; a failed load leaves the target empty).
    /// </summary>
    private int? TryRestore(PromptCache cache, InferenceJob job, AdmissionPlan plan)
    {
        var match = cache.FindLongest(job.Prompt);
        // The last prompt token is always decoded again so that its logits exist for the first sample.
        var usable = match is { } m ? Math.Min(m.Length, job.Prompt.Length - 1) : 0;
        if (match is not { } hit || usable < plan.Reuse + PromptCache.MinTokens)
        {
            _stats.AddPromptCacheLookup(hit: false);
            return null;
        }
        var started = _time.GetTimestamp();
        // The idle caches the plan gives up go first: the restore needs their cells.
        foreach (var evicted in plan.Evict ?? []) evicted.Evict();
        var slot = plan.Target!;
        var loaded = slot.LoadCache(hit.Entry.Tokens, seq => LoadState(hit.Entry.State, seq));
        var ms = _time.GetElapsedTime(started).TotalMilliseconds;
        if (!loaded)
        {
            Log.PromptCacheRestoreFailed(_logger, job.Request.JobId, hit.Entry.Tokens.Length, slot.Id);
            _stats.AddPromptCacheLookup(hit: false);
            return null;
        }
        cache.Touch(hit.Entry);
        _stats.AddPromptCacheLookup(hit: true, restoredTokens: usable);
        Log.PromptCacheRestored(_logger, job.Request.JobId, usable, job.Prompt.Length, hit.Entry.State.LongLength, ms, slot.Id);
        return usable;
    }

    private unsafe bool LoadState(byte[] state, LLamaSeqId seq)
    {
        fixed (byte* p = state)
        {
            return _ctx.SetState(p, (nuint)state.Length, seq) > 0;
        }
    }

    /// <summary>
    /// Saves a finished job's cells (prompt and output) to the host-RAM cache before its slot is released, unless an
    /// entry already holds them. Runs between steps on this thread: a copy of the sequence's KV, no decode.
    /// </summary>
    private unsafe void Remember(Slot slot)
    {
        if (_promptCache is not { } cache) return;
        var tokens = slot.Cached;
        if (tokens.Length < PromptCache.MinTokens || cache.Covers(tokens)) return;
        var started = _time.GetTimestamp();
        var seq = (LLamaSeqId)slot.Id;
        var size = _ctx.GetStateSize(seq);
        if (size == 0 || size > int.MaxValue || (long)size + (long)tokens.Length * sizeof(int) > cache.CapacityBytes) return;
        var state = GC.AllocateUninitializedArray<byte>((int)size);
        nuint written;
        fixed (byte* p = state)
        {
            written = _ctx.GetState(p, size, seq);
        }
        if (written == 0) return;
        if (written < size) Array.Resize(ref state, (int)written);
        if (cache.Put(tokens, state))
            Log.PromptCacheSaved(_logger, slot.Job?.Request.JobId ?? "", tokens.Length, state.LongLength, _time.GetElapsedTime(started).TotalMilliseconds, cache.Count, cache.Bytes);
        _stats.SetPromptCache(cache.Bytes, cache.Count, cache.Evictions);
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
        Remember(slot);
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
