using LLama.Native;

namespace QueueWorker.Inference;

/// <summary>One saved sequence: the tokens its KV cells hold (token i at position i) and llama.cpp's serialized cells.</summary>
internal sealed class PromptCacheEntry(LLamaToken[] tokens, byte[] state)
{
    public LLamaToken[] Tokens { get; } = tokens;
    public byte[] State { get; } = state;

    /// <summary>What the entry counts against the bound: the state and the token key.</summary>
    public long Bytes => State.LongLength + (long)Tokens.Length * sizeof(int);

    internal LinkedListNode<PromptCacheEntry>? Node { get; set; }
}

/// <summary>The entry sharing the longest prefix with a prompt, and how many tokens that is.</summary>
internal readonly record struct PromptCacheMatch(PromptCacheEntry Entry, int Length);

/// <summary>
/// The host-RAM prompt cache: finished jobs' KV cells (<c>llama_state_seq_get_data</c>) kept in process memory, so a
/// repeated prompt — a redelivered job, a resubmitted batch line — restores its cells instead of prefilling them, as
/// llama-server's prompt cache does. Matched by the longest common token prefix (an exact repeat matches its whole
/// prompt). Bounded by bytes (the states and their token keys), least recently used out first. Not thread-safe: the
/// scheduler thread owns it; <see cref="EngineStats"/> carries its counters to other threads.
/// </summary>
internal sealed class PromptCache
{
    /// <summary>Shorter sequences are not saved, and a match must beat the slots' own prefixes by this many tokens to be restored: below it, prefill is as cheap as a copy.</summary>
    public const int MinTokens = 16;

    private readonly LinkedList<PromptCacheEntry> _lru = new(); // most recently used first

    public PromptCache(long capacityBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacityBytes);
        CapacityBytes = capacityBytes;
    }

    public long CapacityBytes { get; }
    public long Bytes { get; private set; }
    public int Count => _lru.Count;
    public long Evictions { get; private set; }

    /// <summary>The entries, most recently used first (for tests and diagnostics).</summary>
    public IEnumerable<PromptCacheEntry> Entries => _lru;

    /// <summary>The entry sharing the longest token prefix with <paramref name="prompt"/> (most recently used on a tie), or null when none shares any. Does not count as a use.</summary>
    public PromptCacheMatch? FindLongest(ReadOnlySpan<LLamaToken> prompt)
    {
        PromptCacheEntry? best = null;
        var length = 0;
        foreach (var entry in _lru)
        {
            var n = prompt.CommonPrefixLength(entry.Tokens);
            if (n > length)
            {
                best = entry;
                length = n;
            }
        }
        return best is null ? null : new PromptCacheMatch(best, length);
    }

    /// <summary>
    /// True when an entry already holds <paramref name="tokens"/> or more (they are its prefix): saving them again
    /// would add nothing. That entry counts as used.
    /// </summary>
    public bool Covers(ReadOnlySpan<LLamaToken> tokens)
    {
        foreach (var entry in _lru)
        {
            if (entry.Tokens.Length >= tokens.Length && tokens.SequenceEqual(entry.Tokens.AsSpan(0, tokens.Length)))
            {
                Touch(entry);
                return true;
            }
        }
        return false;
    }

    /// <summary>Marks <paramref name="entry"/> most recently used.</summary>
    public void Touch(PromptCacheEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (entry.Node is not { } node || node.List != _lru) throw new ArgumentException("The entry is not in this cache.", nameof(entry));
        _lru.Remove(node);
        _lru.AddFirst(node);
    }

    /// <summary>
    /// Stores <paramref name="state"/> under <paramref name="tokens"/> as the most recently used entry. Entries whose
    /// tokens are a prefix of <paramref name="tokens"/> are dropped (the new one restores everything they would), then
    /// least recently used ones until the total fits the bound. Returns false, storing nothing, when the entry alone is
    /// larger than the bound or is already covered (<see cref="Covers"/>).
    /// </summary>
    public bool Put(ReadOnlySpan<LLamaToken> tokens, byte[] state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (tokens.IsEmpty) throw new ArgumentException("An entry needs tokens.", nameof(tokens));
        var entry = new PromptCacheEntry(tokens.ToArray(), state);
        if (entry.Bytes > CapacityBytes || Covers(tokens)) return false;

        for (var node = _lru.First; node is not null;)
        {
            var next = node.Next;
            var old = node.Value.Tokens;
            if (old.Length < tokens.Length && tokens[..old.Length].SequenceEqual(old)) Remove(node);
            node = next;
        }
        while (Bytes + entry.Bytes > CapacityBytes && _lru.Last is { } last)
        {
            Remove(last);
            Evictions++;
        }
        entry.Node = _lru.AddFirst(entry);
        Bytes += entry.Bytes;
        return true;
    }

    private void Remove(LinkedListNode<PromptCacheEntry> node)
    {
        _lru.Remove(node);
        node.Value.Node = null;
        Bytes -= node.Value.Bytes;
    }
}
