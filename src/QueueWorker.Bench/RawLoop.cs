using System.Diagnostics;
using System.Text;
using System.Text.Json.Serialization;
using LLama;
using LLama.Common;
using LLama.Native;

namespace QueueWorker.Bench;

/// <summary>How the raw loop's context is made: the worker's own settings (<c>Inference:*</c>, <c>Model:UseMmap</c>).</summary>
public sealed record RawLoopSettings(string Model, int Threads, int Slots, int ContextSize, int BatchSize, bool Mmap);

/// <summary>One run of the raw loop: these prompts (text, rendered as the worker renders a raw prompt) at once, greedy, up to MaxTokens each.</summary>
public sealed record RawLoopRequest(IReadOnlyList<string> Prompts, int MaxTokens);

/// <summary>What one run took. Times are the loop's own Stopwatch, from the request's arrival (tokenization included) to the last token.</summary>
public sealed record RawLoopResult(
    IReadOnlyList<int> PromptTokens,
    IReadOnlyList<int> CompletionTokens,
    double WallMs,
    double PrefillMs,
    double DecodeMs,
    int Steps);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(RawLoopRequest))]
[JsonSerializable(typeof(RawLoopResult))]
[JsonSerializable(typeof(RawLoopSettings))]
internal sealed partial class RawLoopJsonContext : JsonSerializerContext;

/// <summary>
/// The baseline of the overhead section: n sequences in one llama context decoded together with nothing around
/// them, built with the worker's context parameters (context size, sequences, batch = micro-batch, threads, unified
/// KV cache, f16 K/V, flash attention auto, the same load mode) and the worker's per-job sampler for greedy jobs (one
/// greedy chain per sequence). Each sequence ends as a worker job does: at end-of-generation or after MaxTokens
/// sampled tokens (the last one is not decoded). What it leaves out is exactly the pipeline: no broker, no parsing,
/// no admission, no text (detokenization, stop strings), no timings, no results.
/// </summary>
public sealed class RawLoop : IDisposable
{
    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;
    private readonly LLamaBatch _batch = new();

    public RawLoop(RawLoopSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        Settings = settings;
        var p = new ModelParams(settings.Model)
        {
            ContextSize = (uint)settings.ContextSize,
            SeqMax = (uint)settings.Slots,
            BatchSize = (uint)settings.BatchSize,
            UBatchSize = (uint)settings.BatchSize,
            Threads = settings.Threads,
            BatchThreads = settings.Threads,
            LoadMode = settings.Mmap ? LLamaLoadMode.MemoryMap : LLamaLoadMode.None,
            KVUnified = true,
            TypeK = QueueWorker.Inference.KvCacheSettings.Types["f16"].Type,
            TypeV = QueueWorker.Inference.KvCacheSettings.Types["f16"].Type,
            FlashAttention = QueueWorker.Inference.KvCacheSettings.FlashAttentionModes["auto"],
            GpuLayerCount = 0,
        };
        _weights = LLamaWeights.LoadFromFile(p);
        _context = _weights.CreateContext(p);
        // The worker's warm-up: one decode allocates the compute buffers before the first job.
        _batch.Add(_weights.Vocab.BOS ?? default, 0, (LLamaSeqId)0, true);
        Decode();
        _context.NativeHandle.MemoryClear(true);
    }

    public RawLoopSettings Settings { get; }

    public RawLoopResult Run(RawLoopRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var n = request.Prompts.Count;
        if (n < 1 || n > Settings.Slots)
        {
            throw new ArgumentOutOfRangeException(nameof(request), n, $"1 to {Settings.Slots} prompts");
        }

        var handle = _context.NativeHandle;
        var vocab = _weights.NativeHandle.Vocab;
        handle.MemoryClear(true);
        var clock = Stopwatch.StartNew();
        // The worker's raw-prompt rendering (PromptRenderer): BOS when the vocabulary wants it, special tokens off.
        var prompts = request.Prompts.Select(text => _weights.NativeHandle.Tokenize(text, vocab.ShouldAddBOS, special: false, Encoding.UTF8)).ToArray();
        if (prompts.Sum(t => t.Length) > Settings.BatchSize || prompts.Sum(t => t.Length + request.MaxTokens) > Settings.ContextSize)
        {
            throw new ArgumentException("the prompts must fit one batch and the whole run the context");
        }

        var chains = new SafeLLamaSamplerChainHandle[n];
        try
        {
            for (var s = 0; s < n; s++)
            {
                // SamplerFactory's chain for a greedy job with default penalties: a greedy sampler alone.
                chains[s] = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
                chains[s].AddGreedySampler();
            }

            // Every prompt in one batch, the last token of each with logits: the worker's first step with 4 jobs admitted at once.
            var idx = new int[n];
            _batch.Clear();
            for (var s = 0; s < n; s++)
            {
                for (var i = 0; i < prompts[s].Length; i++)
                {
                    var at = _batch.Add(prompts[s][i], i, (LLamaSeqId)s, i == prompts[s].Length - 1);
                    if (i == prompts[s].Length - 1)
                    {
                        idx[s] = at;
                    }
                }
            }

            Decode();
            var prefillMs = clock.Elapsed.TotalMilliseconds;
            var steps = 1;

            var generated = new int[n];
            var active = new bool[n];
            Array.Fill(active, true);
            var remaining = n;
            while (remaining > 0)
            {
                _batch.Clear();
                for (var s = 0; s < n; s++)
                {
                    if (!active[s])
                    {
                        continue;
                    }

                    var token = chains[s].Sample(handle, idx[s]);
                    if (token.IsEndOfGeneration(vocab))
                    {
                        active[s] = false;
                        remaining--;
                        continue;
                    }

                    generated[s]++;
                    if (generated[s] >= request.MaxTokens)
                    {
                        active[s] = false;
                        remaining--;
                        continue;
                    }

                    idx[s] = _batch.Add(token, prompts[s].Length + generated[s] - 1, (LLamaSeqId)s, true);
                }

                if (_batch.TokenCount > 0)
                {
                    Decode();
                    steps++;
                }
            }

            var wallMs = clock.Elapsed.TotalMilliseconds;
            return new RawLoopResult(prompts.Select(p => p.Length).ToList(), generated, wallMs, prefillMs, wallMs - prefillMs, steps);
        }
        finally
        {
            foreach (var chain in chains)
            {
                chain?.Dispose();
            }
        }
    }

    private void Decode() => BenchContext.DecodeAndClear(_context.NativeHandle, _batch);

    public void Dispose()
    {
        _context.Dispose();
        _weights.Dispose();
    }
}
