using LLama.Native;

namespace QueueWorker.Inference;

/// <summary>Builds one job's sampler chain (its own seed and parameters), in llama.cpp's usual order.</summary>
internal static class SamplerFactory
{
    /// <summary>Tokens of history the repeat penalty looks at (llama.cpp's default).</summary>
    public const int PenaltyWindow = 64;

    /// <param name="p">The job's settings.</param>
    /// <param name="prompt">The prompt tokens (the penalties' history starts with its end).</param>
    /// <param name="vocabSize">The model's vocabulary size (logit_bias ids were checked against it).</param>
    /// <param name="grammar">A compiled grammar: a copy of it masks every token it does not allow, before the samplers choose.</param>
    public static SafeLLamaSamplerChainHandle Create(SamplingParams p, ReadOnlySpan<LLamaToken> prompt, int vocabSize, Grammar.GrammarPrototype? grammar = null)
    {
        var chain = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
        // First, as in llama.cpp's common sampler: a bias shifts the raw logits every later stage sees.
        if (p.LogitBias is { Count: > 0 } bias)
        {
            var biases = bias.Select(b => new LLamaLogitBias { Token = b.Key, Bias = b.Value }).ToArray();
            chain.AddLogitBias(vocabSize, biases);
        }
        // One llama.cpp sampler holds all three penalties over the same window.
        var penalize = p.RepeatPenalty != 1f || p.FrequencyPenalty != 0f || p.PresencePenalty != 0f;
        if (penalize) chain.AddPenalties(PenaltyWindow, p.RepeatPenalty, p.FrequencyPenalty, p.PresencePenalty);
        // The penalty window covers the end of the prompt too, as in llama.cpp's server. Accepted before the grammar
        // joins the chain: the prompt is not output, and a grammar fed it would reject it.
        // (Sample() accepts each sampled token itself: no extra Accept after it.)
        if (penalize)
        {
            foreach (var t in prompt[Math.Max(0, prompt.Length - PenaltyWindow)..]) chain.Accept(t);
        }
        if (grammar is not null) Grammar.GrammarNative.AddClone(chain, grammar);
        if (p.Temperature <= 0f)
        {
            chain.AddGreedySampler();
        }
        else
        {
            if (p.TopK > 0) chain.AddTopK(p.TopK);
            if (p.TopP < 1f) chain.AddTopP(p.TopP, 1);
            if (p.MinP > 0f) chain.AddMinP(p.MinP, 1);
            chain.AddTemperature(p.Temperature);
            chain.AddDistributionSampler(p.Seed);
        }
        return chain;
    }
}
