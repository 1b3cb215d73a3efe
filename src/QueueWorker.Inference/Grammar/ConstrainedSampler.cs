using LLama.Native;

namespace QueueWorker.Inference.Grammar;

/// <summary>
/// A grammar-constrained job's sampler that picks exactly the token the plain chain with the grammar in it
/// (<see cref="SamplerFactory.Create"/>: bias, penalties, grammar, then top-k … dist or greedy) would pick, for the
/// same seed, without asking the grammar about all 32,000 tokens at every step.
/// <para>
/// What the chain does after the grammar depends only on the best allowed tokens: greedy on the first, top-k on the
/// best k (top-p, min-p, temperature and the random draw then see nothing else). So the candidates are taken in
/// order of logit and the grammar is asked about the first one alone (the sampled token, as llama.cpp's common
/// sampler does), then about the next few; when they contain enough allowed tokens, the chain's remaining samplers
/// run on exactly those (the same array the chain would have, hence the same draw). Otherwise (the model prefers
/// what the grammar forbids, top_k is 0, or logits tie where the order matters) the whole mask is computed, through
/// <see cref="GrammarVocab"/>'s prefix tree, and the chain runs on the whole vocabulary as before.
/// The grammar accepts the chosen token once, after the choice; asking it about candidates changes nothing.
/// </para>
/// </summary>
internal sealed unsafe class ConstrainedSampler : JobSampler
{
    /// <summary>Candidates asked about beyond the ones needed, before falling back to the whole mask.</summary>
    private const int Spare = 32;
    /// <summary>Larger top_k values take the whole mask (the ordered walk grows quadratically).</summary>
    public const int MaxWalkTopK = 128;

    private readonly SafeLLamaSamplerChainHandle? _pre;
    private readonly SafeLLamaSamplerChainHandle _post;
    private readonly GrammarState _grammar;
    private readonly GrammarVocab _vocab;
    /// <summary>Allowed tokens the walk needs: 1 for greedy, top_k for sampling, 0 = always the whole mask.</summary>
    private readonly int _need;
    private readonly bool _greedy;
    private readonly LLamaTokenData[] _cur;
    private readonly LLamaTokenData[] _scratch;
    private readonly bool[] _allowed;
    private readonly int[] _topIds;
    private readonly float[] _topLogits;
    /// <summary>Positions (in the best candidates) of the allowed tokens kept for top-k.</summary>
    private readonly int[] _keptAt;

    /// <param name="pre">Logit bias and penalties (null when the job has neither): they see the whole vocabulary first.</param>
    /// <param name="post">The samplers after the grammar: top-k, top-p, min-p, temperature, dist; or greedy.</param>
    /// <param name="grammar">The job's own grammar state; the sampler owns all three handles.</param>
    public ConstrainedSampler(SafeLLamaSamplerChainHandle? pre, SafeLLamaSamplerChainHandle post, GrammarState grammar, GrammarVocab vocab, SamplingParams p)
    {
        ArgumentNullException.ThrowIfNull(post);
        ArgumentNullException.ThrowIfNull(grammar);
        ArgumentNullException.ThrowIfNull(vocab);
        ArgumentNullException.ThrowIfNull(p);
        _pre = pre;
        _post = post;
        _grammar = grammar;
        _vocab = vocab;
        _greedy = p.Temperature <= 0f;
        _need = _greedy ? 1 : p.TopK is > 0 and <= MaxWalkTopK && p.TopK < vocab.Size ? p.TopK : 0;
        _cur = new LLamaTokenData[vocab.Size];
        _scratch = new LLamaTokenData[vocab.Size];
        _allowed = new bool[vocab.Size];
        var walk = _need == 0 ? 0 : Math.Min(vocab.Size, _need + Spare);
        _topIds = new int[walk];
        _topLogits = new float[walk];
        _keptAt = new int[_need];
    }

    /// <summary>Steps decided from the best candidates alone.</summary>
    public int FastSteps { get; private set; }

    /// <summary>Steps that needed the whole mask.</summary>
    public int FullSteps { get; private set; }

    public override LLamaToken Sample(SafeLLamaContextHandle ctx, int index)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var logits = ctx.GetLogitsIth(index);
        var n = _vocab.Size;
        for (var i = 0; i < n; i++) _cur[i] = new LLamaTokenData((LLamaToken)i, logits[i], 0f);
        LLamaToken token;
        fixed (LLamaTokenData* cur = _cur)
        {
            if (_pre is not null) GrammarNative.Apply(_pre, cur, n);
            if (TryFromBest(cur, out token))
            {
                FastSteps++;
            }
            else
            {
                FullSteps++;
                _vocab.Mask(_grammar, _allowed, _scratch);
                for (var i = 0; i < n; i++)
                {
                    if (!_allowed[i]) cur[i].Logit = float.NegativeInfinity;
                }
                token = Selected(GrammarNative.Apply(_post, cur, n));
            }
        }
        // As llama_sampler_sample accepts into the whole chain: penalties' history, the grammar's state, the rest.
        if (_pre is not null) GrammarNative.Accept(_pre, token);
        GrammarNative.Accept(_grammar, token);
        GrammarNative.Accept(_post, token);
        return token;
    }

    /// <summary>The chain's choice from the best candidates, when they decide it; false when the whole mask is needed.</summary>
    private bool TryFromBest(LLamaTokenData* cur, out LLamaToken token)
    {
        token = default;
        if (_need == 0) return false;
        var rest = SelectBest(cur);
        var best = _topIds.Length;
        fixed (LLamaTokenData* scratch = _scratch)
        {
            if (_greedy)
            {
                // Sample first: the best token alone. The chain's greedy pick is the highest allowed logit, the lowest id
                // among equals, which is the first allowed one in this order.
                scratch[0] = new LLamaTokenData((LLamaToken)_topIds[0], 0f, 0f);
                GrammarNative.Apply(_grammar, scratch, 1);
                if (!float.IsNegativeInfinity(scratch[0].Logit))
                {
                    token = (LLamaToken)_topIds[0];
                    return true;
                }
                // Rejected: the next best in one call; a token never looked at may tie the first allowed one.
                for (var i = 1; i < best; i++) scratch[i - 1] = new LLamaTokenData((LLamaToken)_topIds[i], 0f, 0f);
                GrammarNative.Apply(_grammar, scratch, best - 1);
                for (var i = 1; i < best; i++)
                {
                    if (float.IsNegativeInfinity(scratch[i - 1].Logit)) continue;
                    if (!(_topLogits[i] > rest)) return false;
                    token = (LLamaToken)_topIds[i];
                    return true;
                }
                return false;
            }

            for (var i = 0; i < best; i++) scratch[i] = new LLamaTokenData((LLamaToken)_topIds[i], 0f, 0f);
            GrammarNative.Apply(_grammar, scratch, best);
            // The k best allowed tokens, strictly decreasing and strictly above the next allowed one and anything not
            // looked at: then the chain's top-k keeps exactly these, in this order (no tie left to its sort).
            var kept = 0;
            var previous = float.PositiveInfinity;
            for (var i = 0; i < best; i++)
            {
                if (float.IsNegativeInfinity(scratch[i].Logit)) continue;
                var logit = _topLogits[i];
                if (!(logit < previous)) return false;
                if (kept == _need) break;
                _keptAt[kept++] = i;
                previous = logit;
            }
            if (kept < _need || !(previous > rest)) return false;
            for (var k = 0; k < kept; k++)
            {
                var i = _keptAt[k];
                scratch[k] = new LLamaTokenData((LLamaToken)_topIds[i], _topLogits[i], 0f);
            }
            token = Selected(GrammarNative.Apply(_post, scratch, kept));
            return true;
        }
    }

    /// <summary>
    /// Fills <see cref="_topIds"/>/<see cref="_topLogits"/> with the best candidates, highest logit first and the lowest id
    /// first among equals; returns the highest logit left out (-infinity when none).
    /// </summary>
    private float SelectBest(LLamaTokenData* cur)
    {
        var capacity = _topIds.Length;
        var count = 0;
        var rest = float.NegativeInfinity;
        var n = _vocab.Size;
        for (var t = 0; t < n; t++)
        {
            var logit = cur[t].Logit;
            if (count == capacity && !(logit > _topLogits[count - 1]))
            {
                if (logit > rest) rest = logit;
                continue;
            }
            if (count == capacity)
            {
                var dropped = _topLogits[count - 1];
                if (dropped > rest) rest = dropped;
                count--;
            }
            // After every equal logit: those have lower ids.
            var at = count;
            while (at > 0 && _topLogits[at - 1] < logit)
            {
                _topLogits[at] = _topLogits[at - 1];
                _topIds[at] = _topIds[at - 1];
                at--;
            }
            _topLogits[at] = logit;
            _topIds[at] = t;
            count++;
        }
        return rest;
    }

    private static LLamaToken Selected(TokenDataArray array)
    {
        if (array.Selected < 0 || array.Selected >= (long)array.Size)
            throw new InvalidOperationException("The sampler chain selected no token (every candidate was rejected).");
        return array.Data[array.Selected].ID;
    }

    public override void Dispose()
    {
        _pre?.Dispose();
        _post.Dispose();
        _grammar.Dispose();
    }
}
