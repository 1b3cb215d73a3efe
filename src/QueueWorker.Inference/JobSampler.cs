using LLama.Native;

namespace QueueWorker.Inference;

/// <summary>One job's sampling: picks the next token from the decoded logits and remembers it (penalties, grammar).</summary>
internal abstract class JobSampler : IDisposable
{
    /// <summary>Samples a token from the logits at <paramref name="index"/> of the decoded batch and accepts it (exactly once).</summary>
    public abstract LLamaToken Sample(SafeLLamaContextHandle ctx, int index);

    public abstract void Dispose();
}

/// <summary>A llama.cpp sampler chain, used as is (<c>llama_sampler_sample</c>: apply every sampler, accept the token).</summary>
internal sealed class ChainSampler(SafeLLamaSamplerChainHandle chain) : JobSampler
{
    public SafeLLamaSamplerChainHandle Chain { get; } = chain;

    public override LLamaToken Sample(SafeLLamaContextHandle ctx, int index) => Chain.Sample(ctx, index);

    public override void Dispose() => Chain.Dispose();
}
