using System.Runtime.InteropServices;
using System.Text;
using LLama.Native;

namespace QueueWorker.Inference;

/// <summary>
/// One sequence of the shared llama context. <see cref="Cached"/> mirrors exactly what the sequence's KV cells
/// hold (token i at position i), whether a job is running or the slot is idle and keeps its last prompt and
/// output for prefix reuse.
/// </summary>
internal sealed class Slot(int id)
{
    public int Id { get; } = id;
    public LLamaSeqId Seq => (LLamaSeqId)Id;

    /// <summary>Tokens decoded into this sequence's KV cells, in position order.</summary>
    public List<LLamaToken> Cached { get; } = [];
    public ReadOnlySpan<LLamaToken> CachedSpan => CollectionsMarshal.AsSpan(Cached);

    public InferenceJob? Job { get; set; }
    public bool IsActive => Job is not null;
    /// <summary>Prompt tokens still to decode.</summary>
    public bool IsPrefilling => Job is not null && PromptCursor < Job.Prompt.Length;

    /// <summary>Prompt tokens [0, PromptCursor) are in <see cref="Cached"/>.</summary>
    public int PromptCursor { get; set; }
    /// <summary>Prompt tokens whose cells came from a cached prefix.</summary>
    public int Reused { get; set; }
    /// <summary>The last sampled token, to be decoded in the next step.</summary>
    public LLamaToken? Pending { get; set; }
    /// <summary>Index of this slot's logits in the current batch, or -1.</summary>
    public int LogitsIndex { get; set; } = -1;
    /// <summary>Prompt tokens placed in the current batch.</summary>
    public int ChunkCount { get; set; }

    public SafeLLamaSamplerChainHandle? Sampler { get; set; }
    public Utf8TextStreamer Streamer { get; set; } = new();
    public StopStringMatcher Stops { get; set; } = new([]);
    public StringBuilder Text { get; } = new();
    public int Generated { get; set; }

    public long AdmittedAt { get; set; }
    public long FirstTokenAt { get; set; }
    public long LastTokenAt { get; set; }
    public double WaitMs { get; set; }
    public double PromptMs { get; set; }
    /// <summary>Scheduler step at which the slot was last used (least recently used caches are evicted first).</summary>
    public long LastUsed { get; set; }

    /// <summary>KV cells this slot counts against the context: a job's whole need, or an idle slot's cache.</summary>
    public int ReservedCells => Job?.KvNeed ?? Cached.Count;
}
