using LLama;
using LLama.Native;
using QueueWorker.Contracts;

namespace QueueWorker.Inference;

/// <summary>The vectors of one embedding request, in input order, and the tokens they took.</summary>
public sealed record EmbeddingResult(IReadOnlyList<float[]> Vectors, int PromptTokens, double ComputeMs);

/// <summary>
/// Embeddings on a context of its own (llama.cpp <c>embeddings</c> on, mean pooling) over the engine's weights, so the
/// completion context and its scheduler are untouched: a completion never waits for, or pays for, an embedding decode
/// beyond sharing the CPU while one runs. Texts are packed several to a decode (one sequence each, up to
/// <see cref="MaxSequences"/> and the batch size); each vector is L2-normalized. One request decodes at a time.
/// </summary>
internal sealed class Embedder : IDisposable
{
    /// <summary>Sequences decoded together: texts packed into one batch.</summary>
    public const int MaxSequences = 16;

    private readonly LLamaContext _context;
    private readonly SafeLlamaModelHandle _model;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly TimeProvider _time;
    private readonly int _batchSize;

    public Embedder(LLamaContext context, SafeLlamaModelHandle model, TimeProvider time)
    {
        _context = context;
        _model = model;
        _time = time;
        _batchSize = (int)context.NativeHandle.BatchSize;
    }

    public int Dimensions => _context.NativeHandle.EmbeddingSize;

    public async Task<EmbeddingResult> EmbedAsync(IReadOnlyList<string> inputs, CancellationToken cancellationToken)
    {
        // Tokenized on the caller's thread, checked before anything is decoded.
        var tokens = new LLamaToken[inputs.Count][];
        var total = 0;
        for (var i = 0; i < inputs.Count; i++)
        {
            tokens[i] = _model.Tokenize(inputs[i], true, false, System.Text.Encoding.UTF8);
            if (tokens[i].Length > _batchSize)
                throw new InferenceException(ErrorCodes.PromptTooLong,
                    $"input[{i}] is {tokens[i].Length} tokens; an embedding input may be at most Inference:BatchSize = {_batchSize} tokens.", inputs.Count == 1 ? "input" : $"input[{i}]");
            total += tokens[i].Length;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Off the caller's thread: a decode blocks for its whole length.
            return await Task.Run(() => EmbedAll(tokens, total, cancellationToken), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    private EmbeddingResult EmbedAll(LLamaToken[][] tokens, int total, CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        var handle = _context.NativeHandle;
        var vectors = new float[tokens.Length][];
        var batch = new LLamaBatch();
        var next = 0;
        while (next < tokens.Length)
        {
            cancellationToken.ThrowIfCancellationRequested();
            batch.Clear();
            var first = next;
            var used = 0;
            // Pack whole texts, each its own sequence, while they fit the batch.
            while (next < tokens.Length && next - first < MaxSequences && used + tokens[next].Length <= _batchSize)
            {
                var seq = (LLamaSeqId)(next - first);
                var t = tokens[next];
                for (var p = 0; p < t.Length; p++) batch.Add(t[p], p, seq, true);
                used += t.Length;
                next++;
            }
            var result = handle.Decode(batch);
            if (result != DecodeResult.Ok)
            {
                handle.MemoryClear();
                throw new InferenceException(ErrorCodes.EngineError, $"llama_decode failed with {result} on an embedding batch of {used} tokens.");
            }
            for (var i = first; i < next; i++) vectors[i] = Normalized(handle.GetEmbeddingsSeq((LLamaSeqId)(i - first)));
            handle.MemoryClear();
        }
        return new EmbeddingResult(vectors, total, _time.GetElapsedTime(started).TotalMilliseconds);
    }

    /// <summary>A copy scaled to unit length (a zero vector stays zero).</summary>
    internal static float[] Normalized(ReadOnlySpan<float> pooled)
    {
        var v = pooled.ToArray();
        var sum = 0.0;
        foreach (var x in v) sum += (double)x * x;
        var norm = Math.Sqrt(sum);
        if (norm > 0)
        {
            for (var i = 0; i < v.Length; i++) v[i] = (float)(v[i] / norm);
        }
        return v;
    }

    public void Dispose()
    {
        _context.Dispose();
        _gate.Dispose();
    }
}
