using System.Text;
using LLama.Native;
using QueueWorker.Contracts;

namespace QueueWorker.Inference;

/// <summary>The bytes of one token's text; the span is valid until the next call.</summary>
internal delegate ReadOnlySpan<byte> TokenPiece(LLamaToken token);

/// <summary>
/// Log probabilities of a sampled position, from the model's raw logits: log-softmax at temperature 1, before
/// logit_bias, penalties, temperature and truncation. That is the model's own distribution, as OpenAI reports it,
/// and it does not depend on the job's sampling settings (a greedy job gets the same numbers as a sampled one).
/// </summary>
internal static class TokenLogprobs
{
    public static TokenLogprob Of(ReadOnlySpan<float> logits, LLamaToken sampled, int top, TokenPiece piece)
    {
        // log Z = max + log Σ exp(l − max): no overflow whatever the logits' scale.
        var max = float.NegativeInfinity;
        foreach (var l in logits)
        {
            if (l > max) max = l;
        }
        var sum = 0.0;
        foreach (var l in logits) sum += Math.Exp(l - max);
        var logZ = max + Math.Log(sum);

        var best = TopIndices(logits, top);
        var alternatives = new TopLogprob[best.Length];
        for (var i = 0; i < best.Length; i++)
        {
            var (text, bytes) = Describe(piece((LLamaToken)best[i]));
            alternatives[i] = new TopLogprob(text, Math.Min(0, logits[best[i]] - logZ), bytes);
        }
        var (sampledText, sampledBytes) = Describe(piece(sampled));
        // A rounding error must not make a certain token's log probability positive.
        return new TokenLogprob(sampledText, Math.Min(0, logits[(int)sampled] - logZ), sampledBytes, alternatives);
    }

    /// <summary>The <paramref name="k"/> largest logits' indices, largest first (ties: lower token id first).</summary>
    internal static int[] TopIndices(ReadOnlySpan<float> logits, int k)
    {
        k = Math.Min(k, logits.Length);
        if (k <= 0) return [];
        // A small sorted insertion buffer: k ≤ 20, one pass over the vocabulary.
        var idx = new int[k];
        var n = 0;
        for (var t = 0; t < logits.Length; t++)
        {
            var v = logits[t];
            if (n == k && !(v > logits[idx[k - 1]])) continue;
            var at = n == k ? k - 1 : n++;
            while (at > 0 && v > logits[idx[at - 1]])
            {
                idx[at] = idx[at - 1];
                at--;
            }
            idx[at] = t;
        }
        return idx;
    }

    /// <summary>The token's text (a partial UTF-8 character shows as U+FFFD) and its exact bytes, as OpenAI gives them.</summary>
    private static (string Text, int[] Bytes) Describe(ReadOnlySpan<byte> bytes)
    {
        var ints = new int[bytes.Length];
        for (var i = 0; i < bytes.Length; i++) ints[i] = bytes[i];
        return (Encoding.UTF8.GetString(bytes), ints);
    }
}
