using System.Diagnostics;
using System.Text;
using LLama;
using LLama.Common;
using LLama.Native;

namespace QueueWorker.Bench;

/// <summary>The shape of one benchmark job: prompt tokens in, generated tokens out.</summary>
public sealed record JobShape(int PromptTokens, int GenTokens);

/// <summary>Timings of one run of <c>n</c> sequences decoded together (n = 1: one job alone).</summary>
public sealed record RunTiming(int Sequences, int PromptTokensPerSequence, int GenTokensPerSequence, double PrefillMs, double DecodeMs)
{
    public double TotalMs => PrefillMs + DecodeMs;
    public double PrefillTps => Sequences * PromptTokensPerSequence / (PrefillMs / 1000);
    public double DecodeTps => GenTokensPerSequence / (DecodeMs / 1000);
    public double AggregateDecodeTps => Sequences * GenTokensPerSequence / (DecodeMs / 1000);
    public double AggregateTps => Sequences * GenTokensPerSequence / (TotalMs / 1000);
}

/// <summary>A model loaded for benchmarking, with a source of realistic prompt tokens.</summary>
public sealed class BenchModel : IDisposable
{
    // Plain English, tokenized by the model itself, so prompts are real tokens of its vocabulary.
    private const string Corpus =
        "Summarize the following customer message and list the actions the support team must take. " +
        "The order arrived two days late, the box was damaged and one of the three items was missing. " +
        "The customer asks for a refund of the shipping cost, a replacement of the missing item, and " +
        "wants to know why the tracking page showed the parcel as delivered on Monday. Reply politely, " +
        "in at most five sentences, and do not promise anything the policy does not allow. ";

    private readonly LLamaToken[] _corpus;

    private BenchModel(string path, LLamaWeights weights, double loadMs, bool mmap)
    {
        Path = path;
        Weights = weights;
        LoadMs = loadMs;
        Mmap = mmap;
        var text = new StringBuilder();
        for (var i = 0; i < 64; i++)
        {
            text.Append(Corpus);
        }

        _corpus = weights.NativeHandle.Tokenize(text.ToString(), addBos: false, special: false, Encoding.UTF8);
    }

    public string Path { get; }
    public LLamaWeights Weights { get; }
    public double LoadMs { get; }
    public bool Mmap { get; }

    public static async Task<BenchModel> LoadAsync(string path, bool mmap, CancellationToken cancellationToken)
    {
        var mp = new ModelParams(path) { LoadMode = mmap ? LLamaLoadMode.MemoryMap : LLamaLoadMode.None, GpuLayerCount = 0 };
        var sw = Stopwatch.StartNew();
        var weights = await LLamaWeights.LoadFromFileAsync(mp, cancellationToken);
        return new BenchModel(path, weights, sw.Elapsed.TotalMilliseconds, mmap);
    }

    /// <summary><paramref name="n"/> prompt tokens (BOS first); distinct variants give distinct prompts of equal length.</summary>
    public LLamaToken[] Prompt(int n, int variant)
    {
        var tokens = new LLamaToken[n];
        tokens[0] = Weights.Vocab.BOS ?? _corpus[0];
        var start = variant * 37 % _corpus.Length;
        for (var i = 1; i < n; i++)
        {
            tokens[i] = _corpus[(start + i) % _corpus.Length];
        }

        return tokens;
    }

    /// <summary>Tokens of a raw prompt as the worker renders it: BOS when the vocabulary wants one, special tokens parsed.</summary>
    public LLamaToken[] Tokenize(string text) =>
        Weights.NativeHandle.Tokenize(text, Weights.NativeHandle.Vocab.ShouldAddBOS, special: true, Encoding.UTF8);

    /// <summary>The text of <see cref="Prompt"/> without BOS, for engines that take strings (re-tokenized, it is about n tokens).</summary>
    public string PromptText(int n, int variant)
    {
        var tokens = Prompt(n, variant);
        var decoder = Encoding.UTF8.GetDecoder();
        var text = new StringBuilder();
        var bytes = new byte[64];
        var chars = new char[128];
        foreach (var token in tokens.Skip(1))
        {
            var len = (int)Weights.NativeHandle.TokenToSpan(token, bytes, 0, false);
            var count = decoder.GetChars(bytes, 0, Math.Min(len, bytes.Length), chars, 0, flush: false);
            text.Append(chars, 0, count);
        }

        return text.ToString();
    }

    public void Dispose() => Weights.Dispose();
}

/// <summary>How a context is made: the knobs the seed's claims are about.</summary>
/// <param name="TypeK">K cache type, a name of <c>QueueWorker.Inference.KvCacheSettings.Types</c> (the worker's <c>Inference:TypeK</c>).</param>
/// <param name="TypeV">V cache type (<c>Inference:TypeV</c>).</param>
/// <param name="FlashAttention">auto, on or off (<c>Inference:FlashAttention</c>).</param>
public sealed record ContextSpec(int ContextSize, int? Threads, int Sequences = 1, int BatchSize = 512,
    string TypeK = "f16", string TypeV = "f16", string FlashAttention = "auto");

/// <summary>
/// One llama context and a raw decode loop over it: LLamaBatch in, greedy sampling out, as FACTS.md's
/// "LLamaSharp raw" numbers were measured. Sequential and batched runs share the same code.
/// </summary>
public sealed class BenchContext : IDisposable
{
    private readonly LLamaContext _context;
    private readonly LLamaBatch _batch = new();
    private readonly SafeLLamaSamplerChainHandle _greedy;

    public BenchContext(BenchModel model, ContextSpec spec)
    {
        Spec = spec;
        var p = new ModelParams(model.Path)
        {
            ContextSize = (uint)spec.ContextSize,
            BatchSize = (uint)spec.BatchSize,
            UBatchSize = (uint)spec.BatchSize,
            SeqMax = (uint)spec.Sequences,
            TypeK = QueueWorker.Inference.KvCacheSettings.Types[spec.TypeK].Type,
            TypeV = QueueWorker.Inference.KvCacheSettings.Types[spec.TypeV].Type,
            FlashAttention = QueueWorker.Inference.KvCacheSettings.FlashAttentionModes[spec.FlashAttention],
        };
        if (spec.Threads is { } t)
        {
            // Unset threads keep LLamaSharp's own default: the seed's "before explicit threads" case.
            p.Threads = t;
            p.BatchThreads = t;
        }

        var sw = Stopwatch.StartNew();
        _context = model.Weights.CreateContext(p);
        CreateMs = sw.Elapsed.TotalMilliseconds;
        _greedy = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
        _greedy.AddGreedySampler();
    }

    public ContextSpec Spec { get; }
    public double CreateMs { get; }
    public int GenerationThreads => _context.GenerationThreads;
    public int BatchThreads => _context.BatchThreads;

    /// <summary>
    /// Decodes every prompt as its own sequence, then generates <paramref name="gen"/> tokens for each,
    /// all sequences in one batch per step. The KV cache is cleared first.
    /// </summary>
    public RunTiming Run(IReadOnlyList<LLamaToken[]> prompts, int gen, CancellationToken cancellationToken)
    {
        var n = prompts.Count;
        if (n < 1 || n > Spec.Sequences)
        {
            throw new ArgumentOutOfRangeException(nameof(prompts), n, $"this context decodes 1 to {Spec.Sequences} sequences");
        }

        var promptLen = prompts[0].Length;
        if (prompts.Any(p => p.Length != promptLen) || promptLen < 2)
        {
            throw new ArgumentException("prompts must have one length of at least 2 tokens", nameof(prompts));
        }

        if (n * (promptLen + gen) > Spec.ContextSize)
        {
            throw new ArgumentException($"{n} x ({promptLen} + {gen}) tokens do not fit a {Spec.ContextSize}-token context");
        }

        var handle = _context.NativeHandle;
        handle.MemoryClear(true);

        // Prefill: every prompt token but the last, in chunks of the batch size, without logits...
        var sw = Stopwatch.StartNew();
        _batch.Clear();
        for (var s = 0; s < n; s++)
        {
            for (var i = 0; i < promptLen - 1; i++)
            {
                _batch.Add(prompts[s][i], i, (LLamaSeqId)s, logits: false);
                if (_batch.TokenCount == Spec.BatchSize)
                {
                    Decode(handle);
                }
            }
        }

        if (_batch.TokenCount > 0)
        {
            Decode(handle);
        }

        // ...then each prompt's last token together, with logits (so no sequence's logits are overwritten).
        var idx = new int[n];
        for (var s = 0; s < n; s++)
        {
            idx[s] = _batch.Add(prompts[s][^1], promptLen - 1, (LLamaSeqId)s, logits: true);
        }

        Decode(handle);
        var prefillMs = sw.Elapsed.TotalMilliseconds;

        // Generation: one sampled token per sequence per step, one decode per step.
        sw.Restart();
        for (var step = 0; step < gen; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var tokens = new LLamaToken[n];
            for (var s = 0; s < n; s++)
            {
                tokens[s] = _greedy.Sample(handle, idx[s]);
            }

            for (var s = 0; s < n; s++)
            {
                idx[s] = _batch.Add(tokens[s], promptLen + step, (LLamaSeqId)s, logits: true);
            }

            Decode(handle);
        }

        var decodeMs = sw.Elapsed.TotalMilliseconds;
        return new RunTiming(n, promptLen, gen, prefillMs, decodeMs);
    }

    private void Decode(SafeLLamaContextHandle handle) => DecodeAndClear(handle, _batch);

    /// <summary>Decodes the batch and empties it for the next step; any result but Ok is an error (the baselines never retry).</summary>
    internal static void DecodeAndClear(SafeLLamaContextHandle handle, LLamaBatch batch)
    {
        var result = handle.Decode(batch);
        batch.Clear();
        if (result != DecodeResult.Ok)
        {
            throw new InvalidOperationException($"llama_decode failed: {result}");
        }
    }

    public void Dispose()
    {
        _greedy.Dispose();
        _context.Dispose();
    }
}
