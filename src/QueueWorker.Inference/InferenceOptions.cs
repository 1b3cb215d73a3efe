using QueueWorker.Contracts;
namespace QueueWorker.Inference;

/// <summary>Configuration section <c>Model</c>.</summary>
public sealed class ModelOptions
{
    public const string Section = "Model";

    /// <summary>GGUF file. Empty: <c>stories260K.gguf</c> is looked for in <c>../shared/models/</c> and <c>./models/</c>.</summary>
    public string? Path { get; set; }

    /// <summary>
    /// The model name this worker serves. Set: a job whose <c>model</c> names another is refused (<c>model_mismatch</c>), so
    /// one queue per model is safe. Empty (the default): a job's <c>model</c> is informational.
    /// </summary>
    public string? Name { get; set; }

    /// <summary>
    /// Serve embedding jobs (<c>input</c>) too, on a second context over the same weights (mean pooling, L2-normalized).
    /// Off (the default): embedding jobs are refused with <c>embeddings_disabled</c> and no memory is spent on them.
    /// </summary>
    public bool Embeddings { get; set; }

    /// <summary>
    /// Memory-map the model file (llama.cpp's <c>use_mmap</c>); off (the default) reads it into memory. Measured here
    /// (docs/bench/issue12/mmap-under-limit.txt): llama.cpp repacks the weights into anonymous memory on this CPU anyway,
    /// so mapping adds the file's pages on top (RSS 1.24 vs 0.73 GiB) and, under a memory limit 13% above the model,
    /// decode fell 15× from re-reading dropped pages; read into memory the same limit cost nothing.
    /// </summary>
    public bool UseMmap { get; set; }

    /// <summary>Lock the weights in RAM (llama.cpp's <c>use_mlock</c>): never paged out, but needs <c>RLIMIT_MEMLOCK</c> (or CAP_IPC_LOCK) for the model's size.</summary>
    public bool UseMlock { get; set; }

    /// <summary>Chat template for models without one (a llama.cpp built-in name such as <c>chatml</c>, <c>llama2</c>, <c>zephyr</c>).</summary>
    public string? ChatTemplate { get; set; }

    /// <summary>
    /// Tokenize a raw <c>prompt</c> with special tokens parsed, so text such as <c>&lt;/s&gt;</c> or <c>&lt;|im_end|&gt;</c>
    /// becomes the control token. Off (the default): a prompt's text is only ever text. Chat messages are never parsed.
    /// </summary>
    public bool ParseSpecialInPrompt { get; set; }

    /// <summary>When <see cref="Path"/> is empty and the default model is nowhere on disk, download it (SHA-256 checked) into <c>./models/</c>.</summary>
    public bool DownloadDefault { get; set; } = true;
}

/// <summary>Configuration section <c>Inference</c>.</summary>
public sealed class InferenceOptions
{
    public const string Section = "Inference";

    /// <summary>Generation threads; 0 = every CPU the process may use, less <see cref="ReserveCores"/>.</summary>
    /// <summary>
    /// Test-only fault injection: a job whose prompt contains this text crashes the scheduler, to prove that a crashed
    /// engine stops the worker and requeues what it holds. Empty (the default) turns it off.
    /// </summary>
    public string? CrashSchedulerOnPrompt { get; set; }

    /// <summary>Test-only fault injection: a job whose prompt contains this text hangs the scheduler until the engine stops.</summary>
    public string? StallSchedulerOnPrompt { get; set; }

    /// <summary>
    /// Test-only fault injection: a job whose prompt contains this text kills the whole process as it is admitted
    /// (<see cref="Environment.FailFast(string)"/>: no shutdown code runs, nothing is acked or nacked), as a job that
    /// crashes llama.cpp would. Proves that such a job ends as <c>poison_job</c> and the jobs beside it do not.
    /// </summary>
    public string? KillProcessOnPrompt { get; set; }

    /// <summary>
    /// Seconds without a scheduler step while jobs wait or run before the worker counts its engine as hung: liveness
    /// fails and the process exits (code 4) so it is restarted. 0 turns the check off. Keep it above the longest single
    /// decode (a full prompt batch of the largest model).
    /// </summary>
    [ConfigRange(0, 86_400)]
    public int StallSeconds { get; set; } = 300;

    [ConfigRange(0, 1024)]
    public int Threads { get; set; }

    /// <summary>Prompt (batch) threads; 0 = same as <see cref="Threads"/>.</summary>
    [ConfigRange(0, 1024)]
    public int BatchThreads { get; set; }

    /// <summary>Cores left free when <see cref="Threads"/> is 0 (0 uses every core; the common <c>cores - 1</c> halves throughput on 2 cores).</summary>
    [ConfigRange(0, 1024)]
    public int ReserveCores { get; set; }

    /// <summary>Sequences decoded together in one context (continuous batching).</summary>
    [ConfigRange(1, 64)]
    public int Slots { get; set; } = 4;

    /// <summary>
    /// Extra slots that only a job of a higher lane (<c>RabbitMq:Lanes</c>, strict order) may take, and only while every
    /// one of the <see cref="Slots"/> runs a lower lane's job: an interactive job then starts at the next decode step
    /// instead of waiting for a batch job to finish. Unused with one lane or with lane weights; an idle one costs a
    /// llama sequence id, no memory (the slots share <see cref="ContextSize"/>'s cells, so a job still waits when the
    /// running jobs have reserved them all).
    /// </summary>
    [ConfigRange(0, 8)]
    public int PrioritySlots { get; set; } = 1;

    /// <summary>
    /// KV cells of the context: shared by all slots (<see cref="KvUnified"/>), or split evenly between them. One job needs
    /// prompt_tokens + max_tokens of them.
    /// </summary>
    [ConfigRange(64, 1_048_576)]
    public int ContextSize { get; set; } = 2048;

    /// <summary>
    /// One pool of <see cref="ContextSize"/> cells for all slots (true), or a stream of ContextSize / (Slots +
    /// PrioritySlots) cells per slot (false, as llama-server runs). Unified lets one job use the whole context and slots
    /// copy each other's prefixes; but every sequence's attention then runs over all cells in use, so at 4 slots llama.cpp
    /// decodes 14–30% slower (llama-batched-bench, README Performance). Split: faster steps, a smaller largest job, a
    /// prefix reused only by the slot that holds it (the host-RAM prompt cache still restores into any slot).
    /// </summary>
    public bool KvUnified { get; set; } = true;

    /// <summary>The cells of one sequence's stream in a split KV cache: llama.cpp pads n_ctx / n_seq_max up to a multiple of 256.</summary>
    public static int SplitCellsPerSlot(int contextSize, int sequences) => (contextSize / sequences + 255) / 256 * 256;

    /// <summary>Tokens per decode step (prompt chunks + one per generating slot).</summary>
    [ConfigRange(8, 65_536)]
    public int BatchSize { get; set; } = 512;

    /// <summary>The largest <c>max_tokens</c> a job may ask for.</summary>
    [ConfigRange(1, 1_048_576)]
    public int MaxTokens { get; set; } = 512;

    /// <summary><c>max_tokens</c> of a job that gives none (≤ <see cref="MaxTokens"/>).</summary>
    [ConfigRange(1, 1_048_576)]
    public int DefaultMaxTokens { get; set; } = 256;

    /// <summary>Hard deadline of one job in seconds, whatever the job asks; keep it below the broker's consumer timeout.</summary>
    [ConfigRange(1, 86_400)]
    public int MaxJobSeconds { get; set; } = 600;

    /// <summary>Reuse the KV cells of the longest cached prompt prefix of any slot (off: every job prefills its whole prompt).</summary>
    public bool PrefixReuse { get; set; } = true;

    /// <summary>
    /// The host-RAM prompt cache in MiB: finished jobs' KV cells are kept in process memory and restored for a job whose
    /// prompt starts with the same tokens (a redelivery, a resubmitted batch line), least recently used out first.
    /// 0 turns it off; it needs <see cref="PrefixReuse"/>.
    /// </summary>
    [ConfigRange(0, 1_048_576)]
    public int PromptCacheMb { get; set; } = 256;

    /// <summary>
    /// Grammar-constrained jobs ask the grammar about the best candidates first and mask the whole vocabulary only when
    /// those do not decide the token (the same tokens either way). Off: every step masks the whole vocabulary, as
    /// llama.cpp's chain does; kept for comparison (qwbench's schema section) and as a fallback.
    /// </summary>
    public bool GrammarFastPath { get; set; } = true;

    /// <summary>Type of the K cache: <c>f16</c>, <c>q8_0</c> or <c>q4_0</c> (see <see cref="KvCacheSettings"/>).</summary>
    public string TypeK { get; set; } = "f16";

    /// <summary>Type of the V cache: <c>f16</c>, <c>q8_0</c> or <c>q4_0</c>; a quantized V cache needs flash attention.</summary>
    public string TypeV { get; set; } = "f16";

    /// <summary>llama.cpp's flash attention: <c>auto</c> (llama.cpp decides per model and device), <c>on</c> or <c>off</c>.</summary>
    public string FlashAttention { get; set; } = "auto";
}
