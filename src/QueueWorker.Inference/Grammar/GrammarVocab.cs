using System.Text;
using LLama.Native;

namespace QueueWorker.Inference.Grammar;

/// <summary>
/// The model's vocabulary arranged for grammar masks: every token's text (as llama.cpp's grammar sees it, special
/// tokens rendered) in a prefix tree whose nodes are tokens. A grammar that rejects a text rejects every text that
/// starts with it (it reads a token character by character, and a partial UTF-8 character is kept only when some
/// allowed character can start with it), so <see cref="Mask"/> asks llama.cpp about a token only when its longest
/// prefix that is itself a token was allowed: at a structural position of a JSON grammar that is a few hundred of
/// 32,000 tokens, and the mask is the one llama.cpp would compute over the whole vocabulary.
/// Built once per model; read-only afterwards (used by the scheduler thread only).
/// </summary>
internal sealed class GrammarVocab
{
    /// <summary>Tokens asked first: texts with no shorter token as a prefix, and the tokens kept out of the tree.</summary>
    private readonly int[] _roots;
    /// <summary>Children of representative token t: <c>_children[_childStart[t].._childStart[t + 1]]</c>.</summary>
    private readonly int[] _childStart;
    private readonly int[] _children;
    /// <summary>Tokens sharing representative t's text (t first): <c>_same[_sameStart[t].._sameStart[t + 1]]</c>.</summary>
    private readonly int[] _sameStart;
    private readonly int[] _same;

    private GrammarVocab(int size, int[] roots, int[] childStart, int[] children, int[] sameStart, int[] same)
    {
        Size = size;
        _roots = roots;
        _childStart = childStart;
        _children = children;
        _sameStart = sameStart;
        _same = same;
    }

    public int Size { get; }

    /// <summary>Reads every token's text from <paramref name="model"/> (milliseconds for 32,000 tokens).</summary>
    public static GrammarVocab Build(SafeLlamaModelHandle model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var vocab = model.Vocab;
        var n = vocab.Count;
        var buffer = new byte[256];
        var representative = new Dictionary<string, int>(n, StringComparer.Ordinal);
        var texts = new string?[n];
        var rep = new int[n];
        var direct = new List<int>();
        for (var t = 0; t < n; t++)
        {
            var token = (LLamaToken)t;
            // The grammar treats end-of-generation tokens by its own rule and rejects empty texts and texts starting
            // with NUL outright: such tokens are asked about on their own, never through the tree.
            var length = (int)model.TokenToSpan(token, buffer, 0, special: true);
            if (length > buffer.Length)
            {
                buffer = new byte[length * 2];
                length = (int)model.TokenToSpan(token, buffer, 0, special: true);
            }
            if (token.IsEndOfGeneration(vocab) || length <= 0 || buffer[0] == 0)
            {
                direct.Add(t);
                rep[t] = -1;
                continue;
            }
            // Latin-1 maps each byte to one char: the key is the exact byte string.
            var text = Encoding.Latin1.GetString(buffer, 0, length);
            if (!representative.TryGetValue(text, out var r))
            {
                representative[text] = r = t;
                texts[t] = text;
            }
            rep[t] = r;
        }

        // The parent of a text: its longest proper prefix that is a token's text.
        var lookup = representative.GetAlternateLookup<ReadOnlySpan<char>>();
        var parent = new int[n];
        var childCount = new int[n + 1];
        var roots = new List<int>(direct);
        for (var t = 0; t < n; t++)
        {
            parent[t] = -1;
            if (texts[t] is not { } text) continue;
            for (var l = text.Length - 1; l >= 1; l--)
            {
                if (lookup.TryGetValue(text.AsSpan(0, l), out var p))
                {
                    parent[t] = p;
                    break;
                }
            }
            if (parent[t] < 0) roots.Add(t);
            else childCount[parent[t]]++;
        }
        var childStart = Offsets(childCount);
        var children = new int[childStart[n]];
        var fill = (int[])childStart.Clone();
        for (var t = 0; t < n; t++)
        {
            if (parent[t] >= 0) children[fill[parent[t]]++] = t;
        }

        var sameCount = new int[n + 1];
        for (var t = 0; t < n; t++)
        {
            if (rep[t] >= 0) sameCount[rep[t]]++;
        }
        var sameStart = Offsets(sameCount);
        var same = new int[sameStart[n]];
        fill = (int[])sameStart.Clone();
        for (var t = 0; t < n; t++)
        {
            if (rep[t] >= 0) same[fill[rep[t]]++] = t;
        }
        return new GrammarVocab(n, [.. roots], childStart, children, sameStart, same);
    }

    private static int[] Offsets(int[] counts)
    {
        var offsets = new int[counts.Length];
        for (var i = 1; i < counts.Length; i++) offsets[i] = offsets[i - 1] + counts[i - 1];
        return offsets;
    }

    /// <summary>
    /// Sets <paramref name="allowed"/>[t] (length <see cref="Size"/>) to whether <paramref name="grammar"/>, in its
    /// current state, allows token t next: exactly the tokens whose logit llama.cpp's grammar sampler leaves finite.
    /// <paramref name="scratch"/> (length <see cref="Size"/>) is overwritten. Returns how many tokens were asked about.
    /// </summary>
    public unsafe int Mask(GrammarState grammar, bool[] allowed, LLamaTokenData[] scratch)
    {
        ArgumentNullException.ThrowIfNull(grammar);
        ArgumentOutOfRangeException.ThrowIfNotEqual(allowed.Length, Size);
        ArgumentOutOfRangeException.ThrowIfNotEqual(scratch.Length, Size);
        Array.Clear(allowed);
        var level = new List<int>(_roots);
        var next = new List<int>();
        var asked = 0;
        fixed (LLamaTokenData* data = scratch)
        {
            // One call per depth of the tree: the tokens whose parent was allowed.
            while (level.Count > 0)
            {
                for (var i = 0; i < level.Count; i++) data[i] = new LLamaTokenData((LLamaToken)level[i], 0f, 0f);
                GrammarNative.Apply(grammar, data, level.Count);
                asked += level.Count;
                next.Clear();
                for (var i = 0; i < level.Count; i++)
                {
                    if (float.IsNegativeInfinity(data[i].Logit)) continue;
                    var t = level[i];
                    if (_sameStart[t + 1] == _sameStart[t])
                    {
                        allowed[t] = true; // a token kept out of the tree
                        continue;
                    }
                    for (var k = _sameStart[t]; k < _sameStart[t + 1]; k++) allowed[_same[k]] = true;
                    for (var k = _childStart[t]; k < _childStart[t + 1]; k++) next.Add(_children[k]);
                }
                (level, next) = (next, level);
            }
        }
        GC.KeepAlive(grammar);
        return asked;
    }
}
