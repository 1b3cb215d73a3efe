using System.Diagnostics;
using System.Text;
using LLama;
using LLama.Common;
using LLama.Native;

namespace QueueWorker.Bench.ModelTools;

public sealed record SmokeTestResult(
    ulong Parameters,
    int VocabSize,
    int PromptTokens,
    IReadOnlyList<int> Generated,
    string Text,
    double LoadMs,
    double PromptMs,
    double DecodeMs);

/// <summary>Loads a GGUF in LLamaSharp and greedily decodes a few tokens: proof that a file is a usable model.</summary>
public static class ModelSmokeTest
{
    public static async Task<SmokeTestResult> RunAsync(string path, int threads, int tokens, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(tokens, 1);
        var mp = new ModelParams(path)
        {
            ContextSize = 256,
            BatchSize = 256,
            UBatchSize = 256,
            SeqMax = 1,
            Threads = threads,
            BatchThreads = threads,
            LoadMode = LLamaLoadMode.MemoryMap,
        };

        var load = Stopwatch.StartNew();
        using var weights = await LLamaWeights.LoadFromFileAsync(mp, cancellationToken).ConfigureAwait(false);
        load.Stop();
        using var context = weights.CreateContext(mp);
        var handle = context.NativeHandle;

        var prompt = weights.NativeHandle.Tokenize("The quick brown fox jumps over", addBos: true, special: false, Encoding.UTF8);
        var batch = new LLamaBatch();
        var idx = 0;
        for (var i = 0; i < prompt.Length; i++)
        {
            idx = batch.Add(prompt[i], i, LLamaSeqId.Zero, logits: i == prompt.Length - 1);
        }

        var sw = Stopwatch.StartNew();
        Check(await context.DecodeAsync(batch, cancellationToken).ConfigureAwait(false), "prompt");
        var promptMs = sw.Elapsed.TotalMilliseconds;

        using var chain = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
        chain.AddGreedySampler();
        var generated = new List<int>();
        var bytes = new List<byte>();
        var piece = new byte[64];
        sw.Restart();
        for (var n = 0; n < tokens; n++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var tok = chain.Sample(handle, idx);
            chain.Accept(tok);
            generated.Add((int)tok);
            var len = (int)weights.NativeHandle.TokenToSpan(tok, piece, 0, false);
            bytes.AddRange(piece.AsSpan(0, Math.Min(len, piece.Length)).ToArray());
            batch.Clear();
            idx = batch.Add(tok, prompt.Length + n, LLamaSeqId.Zero, logits: true);
            Check(await context.DecodeAsync(batch, cancellationToken).ConfigureAwait(false), "token");
        }

        var decodeMs = sw.Elapsed.TotalMilliseconds;
        return new SmokeTestResult(
            weights.ParameterCount,
            weights.Vocab.Count,
            prompt.Length,
            generated,
            Encoding.UTF8.GetString(bytes.ToArray()),
            load.Elapsed.TotalMilliseconds,
            promptMs,
            decodeMs);
    }

    private static void Check(DecodeResult result, string what)
    {
        if (result != DecodeResult.Ok)
        {
            throw new InvalidOperationException($"llama_decode of the {what} failed: {result}");
        }
    }
}
