using LLama.Native;

namespace QueueWorker.Inference;

/// <summary>Builds one job's sampler chain (its own seed and parameters), in llama.cpp's usual order.</summary>
internal static class SamplerFactory
{
    /// <summary>Tokens of history the repeat penalty looks at (llama.cpp's default).</summary>
    public const int PenaltyWindow = 64;

    /// <summary>
    /// The sampler a job runs with: the plain chain, or with a grammar a <see cref="Grammar.ConstrainedSampler"/> (the same
    /// choices as the chain with the grammar in it, <see cref="Create"/>, without masking the whole vocabulary each step).
    /// </summary>
    public static JobSampler CreateJobSampler(SamplingParams p, ReadOnlySpan<LLamaToken> prompt, int vocabSize, Grammar.GrammarPrototype? grammar,
        Func<Grammar.GrammarVocab> grammarVocab)
    {
        ArgumentNullException.ThrowIfNull(p);
        ArgumentNullException.ThrowIfNull(grammarVocab);
        if (grammar is null) return new ChainSampler(Create(p, prompt, vocabSize));
        SafeLLamaSamplerChainHandle? pre = CreatePre(p, prompt, vocabSize);
        if (pre.Count == 0)
        {
            // Neither bias nor penalties: nothing to run over the whole vocabulary before the grammar.
            pre.Dispose();
            pre = null;
        }
        return new Grammar.ConstrainedSampler(pre, CreatePost(p), Grammar.GrammarNative.Clone(grammar), grammarVocab(), p);
    }

    /// <param name="p">The job's settings.</param>
    /// <param name="prompt">The prompt tokens (the penalties' history starts with its end).</param>
    /// <param name="vocabSize">The model's vocabulary size (logit_bias ids were checked against it).</param>
    /// <param name="grammar">A compiled grammar: a copy of it masks every token it does not allow, before the samplers choose.</param>
    public static SafeLLamaSamplerChainHandle Create(SamplingParams p, ReadOnlySpan<LLamaToken> prompt, int vocabSize, Grammar.GrammarPrototype? grammar = null)
    {
        var chain = CreatePre(p, prompt, vocabSize);
        if (grammar is not null) Grammar.GrammarNative.AddClone(chain, grammar);
        AddPost(chain, p);
        return chain;
    }

    /// <summary>The samplers before the grammar: logit bias, then penalties (fed the end of the prompt).</summary>
    private static SafeLLamaSamplerChainHandle CreatePre(SamplingParams p, ReadOnlySpan<LLamaToken> prompt, int vocabSize)
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
        return chain;
    }

    /// <summary>The samplers after the grammar: greedy, or top-k, top-p, min-p, temperature and the seeded draw.</summary>
    private static SafeLLamaSamplerChainHandle CreatePost(SamplingParams p)
    {
        var chain = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
        AddPost(chain, p);
        return chain;
    }

    private static void AddPost(SafeLLamaSamplerChainHandle chain, SamplingParams p)
    {
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
    }
}
