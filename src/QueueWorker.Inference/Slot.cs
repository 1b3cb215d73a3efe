using System.Runtime.InteropServices;
using System.Text;
using LLama.Native;
using QueueWorker.Contracts;

namespace QueueWorker.Inference;

/// <summary>
/// Where a slot is in its life. Only <see cref="Slot"/>'s own methods move it:
/// <code>
/// Empty, Cached --Assign--> Prefilling --Decoded (last prompt chunk)--> Generating
/// Prefilling, Generating --Release--> Cached (cells kept for prefix reuse) or Empty
/// Prefilling, Generating --Fail--> Empty
/// Cached --Evict--> Empty
/// </code>
/// </summary>
internal enum SlotState
{
    /// <summary>No job, no KV cells.</summary>
    Empty,
    /// <summary>No job; the sequence keeps the last job's prompt and output as a prefix cache for the next one.</summary>
    Cached,
    /// <summary>A job is assigned and part of its prompt is still to be decoded.</summary>
    Prefilling,
    /// <summary>The prompt is decoded: each step samples one token, which the next step decodes.</summary>
    Generating,
}

/// <summary>
/// The KV-cell operations a slot performs on the shared context. Behind an interface so that a slot's lifecycle
/// is unit-tested without a model.
/// </summary>
internal interface IKvCells
{
    /// <summary>Drops the sequence's cells at positions <paramref name="from"/> and later.</summary>
    void Truncate(LLamaSeqId seq, int from);

    /// <summary>Gives <paramref name="target"/> the cells of positions [0, <paramref name="count"/>) of <paramref name="source"/> (shared, no data copied).</summary>
    void CopyPrefix(LLamaSeqId source, LLamaSeqId target, int count);
}

internal sealed class ContextKvCells(SafeLLamaContextHandle ctx) : IKvCells
{
    public void Truncate(LLamaSeqId seq, int from) => ctx.MemorySequenceRemove(seq, from, -1);

    public void CopyPrefix(LLamaSeqId source, LLamaSeqId target, int count) => ctx.MemorySequenceCopy(source, target, 0, count);
}

/// <summary>
/// One sequence of the shared llama context and the job it runs. <see cref="Cached"/> mirrors exactly what the
/// sequence's KV cells hold (token i at position i), whether a job is running or the slot keeps its last prompt and
/// output for prefix reuse. The scheduler decides which slot does what; the slot keeps its own state consistent:
/// every change goes through a method that checks the transition is legal (see <see cref="SlotState"/>).
/// </summary>
internal sealed class Slot
{
    private readonly IKvCells _cells;
    private readonly bool _keepCache;
    private readonly TimeProvider _time;
    private readonly List<LLamaToken> _cached = [];
    private readonly StringBuilder _text = new();

    // Per-job state, reset by Release and Fail.
    private JobSampler? _sampler;
    private Utf8TextStreamer _streamer = new();
    private StopStringMatcher _stops = new([]);
    /// <summary>Prompt tokens [0, _promptCursor) are in <see cref="_cached"/>.</summary>
    private int _promptCursor;
    /// <summary>The last sampled token, to be decoded in the next step.</summary>
    private LLamaToken? _pending;
    /// <summary>Prompt tokens placed in the current batch.</summary>
    private int _chunk;
    /// <summary>Index of this slot's logits in the decoded batch, or -1.</summary>
    private int _logitsIndex = -1;
    /// <summary><see cref="TimeProvider.GetTimestamp"/> of the first and the last sampled token, 0 before the first.</summary>
    private long _firstTokenAt;
    private long _lastTokenAt;
    /// <summary>The generated tokens' log probabilities, when the job asked for them; else null.</summary>
    private List<TokenLogprob>? _logprobs;

    /// <param name="id">The slot's number, which is also its llama sequence id.</param>
    /// <param name="cells">The shared context's KV cells.</param>
    /// <param name="keepCache">Prefix reuse: a finished job's cells stay as a cache instead of being freed.</param>
    /// <param name="time">Timestamps of the job's timings.</param>
    /// <param name="isPriority">One of <c>Inference:PrioritySlots</c>: only a job of a higher lane than a running one may take it.</param>
    public Slot(int id, IKvCells cells, bool keepCache, TimeProvider time, bool isPriority = false)
    {
        Id = id;
        IsPriority = isPriority;
        _cells = cells;
        _keepCache = keepCache;
        _time = time;
    }

    public int Id { get; }
    /// <summary>A priority slot (see <c>Inference:PrioritySlots</c>); the admission planner decides who may take it.</summary>
    public bool IsPriority { get; }
    private LLamaSeqId Seq => (LLamaSeqId)Id;
    public SlotState State { get; private set; }

    /// <summary>A job is assigned (prefilling or generating).</summary>
    public bool IsActive => State is SlotState.Prefilling or SlotState.Generating;
    public bool IsPrefilling => State == SlotState.Prefilling;

    /// <summary>Tokens decoded into this sequence's KV cells, in position order.</summary>
    public ReadOnlySpan<LLamaToken> Cached => CollectionsMarshal.AsSpan(_cached);

    /// <summary>KV cells this slot counts against the context: a job's whole need, or an idle slot's cache.</summary>
    public int ReservedCells => Job?.KvNeed ?? _cached.Count;

    /// <summary>Scheduler step at which the slot was last assigned or released (least recently used caches are evicted first).</summary>
    public long LastUsed { get; private set; }

    public InferenceJob? Job { get; private set; }
    /// <summary>Prompt tokens whose cells came from a cached prefix.</summary>
    public int Reused { get; private set; }
    public int Generated { get; private set; }
    /// <summary>The job's text so far: what has been released past the stop strings.</summary>
    public string Text => _text.ToString();
    public bool StopStringHit => _stops.Stopped;
    public double PromptMs { get; private set; }
    /// <summary>The job's share of the CPU time of every decode step it took part in (see <see cref="Decoded"/>).</summary>
    public double CpuMs { get; private set; }
    public long AdmittedAt { get; private set; }
    /// <summary>From the job's submission to its admission into this slot.</summary>
    public double WaitMs => Job is null ? 0 : _time.GetElapsedTime(Job.SubmittedAt, AdmittedAt).TotalMilliseconds;

    /// <summary>
    /// Starts <paramref name="job"/> in this idle slot. Its first <paramref name="reuse"/> prompt tokens come from
    /// <paramref name="source"/>'s cells: this slot's own cache is cut to them, or another slot's are shared into
    /// this sequence (after this slot's own cache is dropped). The slot owns <paramref name="sampler"/> from now on.
    /// </summary>
    /// <param name="admittedAt">When admission began (<see cref="TimeProvider.GetTimestamp"/>), e.g. before a restore from the host-RAM cache; default now.</param>
    public void Assign(InferenceJob job, Slot? source, int reuse, SafeLLamaSamplerChainHandle sampler, long step, long? admittedAt = null) =>
        Assign(job, source, reuse, new ChainSampler(sampler), step, admittedAt);

    /// <inheritdoc cref="Assign(InferenceJob, Slot?, int, SafeLLamaSamplerChainHandle, long, long?)"/>
    public void Assign(InferenceJob job, Slot? source, int reuse, JobSampler sampler, long step, long? admittedAt = null)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(sampler);
        Require(!IsActive, "take a job");
        // The last prompt token is always decoded so that its logits exist for the first sample.
        ArgumentOutOfRangeException.ThrowIfNegative(reuse);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(reuse, job.Prompt.Length);
        if (source is null != (reuse == 0))
            throw new ArgumentException("A reused prefix needs a source slot, and a source slot a reused prefix.", nameof(source));
        if (source is not null && (reuse > source._cached.Count || !job.Prompt.AsSpan(0, reuse).SequenceEqual(source.Cached[..reuse])))
            throw new ArgumentException($"The first {reuse} prompt tokens are not cached in slot {source.Id}.", nameof(reuse));

        if (source == this)
        {
            // The job takes over this slot's own cache: keep the common prefix, drop the rest.
            _cells.Truncate(Seq, reuse);
            _cached.RemoveRange(reuse, _cached.Count - reuse);
        }
        else
        {
            DropCells();
            if (source is not null)
            {
                // Shares the source's cells (no data copied): the prefix costs no prefill.
                _cells.CopyPrefix(source.Seq, Seq, reuse);
                _cached.AddRange(source.Cached[..reuse]);
            }
        }

        Job = job;
        _sampler = sampler;
        _stops = new StopStringMatcher(job.Request.Stop);
        _promptCursor = reuse;
        _logprobs = job.Request.TopLogprobs is null ? null : [];
        Reused = reuse;
        AdmittedAt = admittedAt ?? _time.GetTimestamp();
        LastUsed = step;
        MoveTo(SlotState.Prefilling);
    }

    /// <summary>Puts the token sampled in the last step in <paramref name="batch"/>, asking for its logits. False when there is none.</summary>
    public bool AddPendingToken(LLamaBatch batch)
    {
        if (_pending is not { } token) return false;
        _logitsIndex = batch.Add(token, _cached.Count, Seq, true);
        return true;
    }

    /// <summary>
    /// Puts up to <paramref name="budget"/> of the prompt tokens still to decode in <paramref name="batch"/>; the
    /// prompt's last token asks for logits. Returns how many were placed.
    /// </summary>
    public int AddPromptChunk(LLamaBatch batch, int budget)
    {
        Require(IsPrefilling && _chunk == 0, "add a prompt chunk");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(budget);
        var prompt = Job!.Prompt;
        var n = Math.Min(prompt.Length - _promptCursor, budget);
        for (var k = 0; k < n; k++)
        {
            var index = _promptCursor + k;
            var last = index == prompt.Length - 1;
            var at = batch.Add(prompt[index], _cached.Count + k, Seq, last);
            if (last) _logitsIndex = at;
        }
        _chunk = n;
        return n;
    }

    /// <summary>The slot placed tokens in the current batch (it has not been decoded yet).</summary>
    public bool InBatch => _pending is not null || _chunk > 0;

    /// <summary>The decoded batch holds logits of this slot, waiting for <see cref="Sample"/>.</summary>
    public bool HasLogits => _logitsIndex >= 0;

    /// <summary>Index of this slot's logits in the decoded batch (valid while <see cref="HasLogits"/>).</summary>
    public int LogitsIndex => _logitsIndex;

    /// <summary>The job asked for each generated token's log probability.</summary>
    public bool WantsLogprobs => _logprobs is not null;

    /// <summary>Records the log probability of the token just accepted (see <see cref="WantsLogprobs"/>).</summary>
    public void AddLogprob(TokenLogprob logprob)
    {
        Require(State == SlotState.Generating && _logprobs is not null, "record a log probability");
        _logprobs!.Add(logprob);
    }

    /// <summary>Tokens this slot placed in the current batch (its pending token and its prompt chunk).</summary>
    public int TokensInBatch => (_pending is null ? 0 : 1) + _chunk;

    /// <summary>
    /// What this slot placed in the batch is now decoded into its cells. <paramref name="cpuMsPerToken"/> is the step's
    /// CPU time divided by the batch's tokens: the job is charged for its own tokens.
    /// </summary>
    public void Decoded(double elapsedMs, double cpuMsPerToken = 0)
    {
        CpuMs += cpuMsPerToken * TokensInBatch;
        if (_pending is { } token)
        {
            _cached.Add(token);
            _pending = null;
        }
        if (_chunk > 0)
        {
            _cached.AddRange(Job!.Prompt.AsSpan(_promptCursor, _chunk));
            _promptCursor += _chunk;
            _chunk = 0;
            PromptMs += elapsedMs;
            if (_promptCursor == Job.Prompt.Length) MoveTo(SlotState.Generating);
        }
    }

    /// <summary>Samples the next token from this slot's logits in the decoded batch with the job's sampler.</summary>
    public LLamaToken Sample(SafeLLamaContextHandle ctx)
    {
        Require(State == SlotState.Generating && _logitsIndex >= 0, "sample");
        var token = _sampler!.Sample(ctx, _logitsIndex);
        _logitsIndex = -1;
        var now = _time.GetTimestamp();
        if (_firstTokenAt == 0) _firstTokenAt = now;
        _lastTokenAt = now;
        return token;
    }

    /// <summary>
    /// Takes a sampled token that is not end-of-generation and its text <paramref name="piece"/>. Returns the text
    /// now released (empty while held back as a possible stop string or an unfinished character). Unless
    /// <see cref="LimitReached"/>, the token is decoded in the next step.
    /// </summary>
    public string Accept(LLamaToken token, ReadOnlySpan<byte> piece)
    {
        Require(State == SlotState.Generating && _pending is null, "accept a token");
        Generated++;
        var text = Record(_stops.Append(_streamer.Append(piece)));
        if (LimitReached is null) _pending = token;
        return text;
    }

    /// <summary>Why the job must end now (a stop string appeared, or max_tokens were generated), or null.</summary>
    public string? LimitReached =>
        _stops.Stopped ? FinishReasons.StopSequence
        : Job is { } job && Generated >= job.Request.MaxTokens ? FinishReasons.Length
        : null;

    /// <summary>
    /// At the end of the job, text held back belongs to the output after all: first what the UTF-8 decoder held
    /// (an unfinished character), which may still complete a stop string, then a possible start of a stop string.
    /// Both are empty once a stop string was found.
    /// </summary>
    public (string Decoded, string Held) FlushText()
    {
        Require(IsActive, "flush text");
        var decoded = Record(_stops.Append(_streamer.Flush()));
        var held = Record(_stops.Flush());
        return (decoded, held);
    }

    /// <summary>The job's result so far, ended for <paramref name="finishReason"/>.</summary>
    public GenerationResult Result(string finishReason)
    {
        Require(IsActive, "give a result");
        return new GenerationResult
        {
            Text = Text,
            FinishReason = finishReason,
            PromptTokens = Job!.Prompt.Length,
            CompletionTokens = Generated,
            CachedTokens = Reused,
            WaitMs = WaitMs,
            PromptMs = PromptMs,
            FirstTokenMs = _firstTokenAt == 0 ? 0 : _time.GetElapsedTime(AdmittedAt, _firstTokenAt).TotalMilliseconds,
            GenerationMs = _firstTokenAt == 0 ? 0 : _time.GetElapsedTime(_firstTokenAt, _lastTokenAt).TotalMilliseconds,
            CpuMs = CpuMs,
            Logprobs = _logprobs?.ToArray(),
        };
    }

    /// <summary>
    /// The job is over (finished or cancelled; its task is completed by the caller). Its reservation is released at
    /// once; its decoded cells stay as an idle prefix cache (evicted as soon as admission needs the cells) or, with
    /// prefix reuse off, are freed now.
    /// </summary>
    public void Release(long step)
    {
        Require(IsActive, "release");
        ResetJob();
        LastUsed = step;
        if (!_keepCache) DropCells();
        MoveTo(_cached.Count > 0 ? SlotState.Cached : SlotState.Empty);
    }

    /// <summary>
    /// The job failed: its task gets <paramref name="error"/> (false when it was already completed, e.g. cancelled by
    /// its caller) and the slot is emptied. The sequence may hold part of a batch that failed to decode, so its
    /// cells are dropped whole rather than trusted as a prefix cache.
    /// </summary>
    public bool Fail(Exception error)
    {
        ArgumentNullException.ThrowIfNull(error);
        Require(IsActive, "fail");
        var job = Job!;
        ResetJob();
        _cells.Truncate(Seq, 0);
        _cached.Clear();
        MoveTo(SlotState.Empty);
        return job.Completion.TrySetException(error);
    }

    /// <summary>
    /// Replaces this idle slot's cache with cells saved earlier (the host-RAM prompt cache): its own cells are dropped,
    /// <paramref name="load"/> writes the saved cells into the sequence and says whether llama.cpp took them, and the
    /// slot then holds <paramref name="tokens"/> (Cached), or nothing (Empty) when the load failed.
    /// </summary>
    public bool LoadCache(ReadOnlySpan<LLamaToken> tokens, Func<LLamaSeqId, bool> load)
    {
        ArgumentNullException.ThrowIfNull(load);
        Require(!IsActive, "load a cache");
        if (tokens.IsEmpty) throw new ArgumentException("A cache needs tokens.", nameof(tokens));
        DropCells();
        if (!load(Seq))
        {
            // llama.cpp clears the sequence when it refuses a state; make sure of it.
            _cells.Truncate(Seq, 0);
            MoveTo(SlotState.Empty);
            return false;
        }
        _cached.AddRange(tokens);
        MoveTo(SlotState.Cached);
        return true;
    }

    /// <summary>Frees an idle slot's cached cells for other jobs.</summary>
    public void Evict()
    {
        Require(State == SlotState.Cached, "evict");
        DropCells();
        MoveTo(SlotState.Empty);
    }

    private string Record(string text)
    {
        _text.Append(text);
        return text;
    }

    private void DropCells()
    {
        if (_cached.Count > 0) _cells.Truncate(Seq, 0);
        _cached.Clear();
    }

    private void ResetJob()
    {
        _sampler?.Dispose();
        _sampler = null;
        Job = null;
        _streamer = new Utf8TextStreamer();
        _stops = new StopStringMatcher([]);
        _text.Clear();
        _promptCursor = 0;
        _pending = null;
        _chunk = 0;
        _logitsIndex = -1;
        Reused = 0;
        Generated = 0;
        PromptMs = 0;
        CpuMs = 0;
        AdmittedAt = 0;
        _firstTokenAt = 0;
        _lastTokenAt = 0;
        _logprobs = null;
    }

    private void Require(bool legal, string action)
    {
        if (!legal) throw new InvalidOperationException($"Slot {Id} cannot {action} while {State}.");
    }

    /// <summary>The one place a state is entered: what each state means of the slot's data is checked here.</summary>
    private void MoveTo(SlotState next)
    {
        var consistent = next switch
        {
            SlotState.Empty => Job is null && _cached.Count == 0,
            SlotState.Cached => Job is null && _cached.Count > 0,
            SlotState.Prefilling => Job is not null && _sampler is not null && _promptCursor < Job.Prompt.Length && _cached.Count == _promptCursor,
            SlotState.Generating => Job is not null && _sampler is not null && _promptCursor == Job.Prompt.Length && _cached.Count == _promptCursor,
            _ => false,
        };
        if (!consistent) throw new InvalidOperationException($"Slot {Id} cannot move from {State} to {next}: its data does not match.");
        State = next;
    }
}
