using LLama.Native;

namespace QueueWorker.Inference;

internal enum AdmissionDecision
{
    /// <summary>Start the job in <see cref="AdmissionPlan.Target"/>.</summary>
    Admit,
    /// <summary>Another slot is prefilling a longer prefix of this prompt: wait for it and copy its cells.</summary>
    Defer,
    /// <summary>Every slot runs a job.</summary>
    NoSlot,
    /// <summary>The running jobs' reserved cells leave too few for this job.</summary>
    NoCells,
}

internal sealed record AdmissionPlan(AdmissionDecision Decision, Slot? Target = null, Slot? Source = null, int Reuse = 0, IReadOnlyList<Slot>? Evict = null);

/// <summary>
/// Decides where a waiting job starts, which cached prefix it reuses and which idle caches must go.
/// Pure over slot state (no llama calls), so the policy is unit-tested without a model.
/// <para>
/// KV accounting is conservative: each running job counts its whole need (prompt + max_tokens) and each idle
/// slot its cached tokens, even when copied prefixes share cells. The total never exceeds the context, so a
/// decode never runs out of cells mid-job.
/// </para>
/// </summary>
internal static class AdmissionPlanner
{
    /// <summary>Waiting for another slot's prefill is worth one step of delay only when it saves at least this many prompt tokens.</summary>
    public const int DeferThreshold = 16;

    /// <param name="mayTakePriority">
    /// The job may start in a priority slot (<c>Inference:PrioritySlots</c>); else those slots are only a source of
    /// prefixes to copy. The scheduler allows it for a job of a higher lane than a running one when every other slot is busy.
    /// </param>
    /// <param name="cellsPerSlot">
    /// Set when the KV cache is split per sequence (<c>Inference:KvUnified = false</c>): each slot owns this many cells in
    /// a stream of its own, so a job fits its slot or not at all, no slot's cells are shared or copied into another
    /// (llama.cpp copies only whole streams), and a prefix is reused only by the slot that holds it.
    /// </param>
    public static AdmissionPlan Plan(IReadOnlyList<Slot> slots, ReadOnlySpan<LLamaToken> prompt, int need, int contextSize, bool prefixReuse,
        bool mayTakePriority = false, int? cellsPerSlot = null)
    {
        bool CanTake(Slot s) => !s.IsActive && (mayTakePriority || !s.IsPriority);
        Slot? anyFree = null;
        foreach (var s in slots) if (CanTake(s)) { anyFree = s; break; }
        if (anyFree is null) return new AdmissionPlan(AdmissionDecision.NoSlot);
        if (cellsPerSlot is { } perSlot) return PlanSplit(slots, prompt, need, perSlot, prefixReuse, CanTake);

        // The last prompt token is always decoded again so that its logits exist for the first sample.
        var maxReuse = prompt.Length - 1;
        Slot? source = null;
        var reuse = 0;
        if (prefixReuse && maxReuse > 0)
        {
            foreach (var s in slots)
            {
                var n = Math.Min(prompt.CommonPrefixLength(s.Cached), maxReuse);
                // On a tie prefer an idle slot the job may take: it then takes it over without a copy.
                if (n > reuse || (n == reuse && n > 0 && !CanTake(source!) && CanTake(s)))
                {
                    reuse = n;
                    source = s;
                }
            }
            foreach (var s in slots)
            {
                if (!s.IsPrefilling) continue;
                var planned = Math.Min(prompt.CommonPrefixLength(s.Job!.Prompt), maxReuse);
                if (planned >= reuse + DeferThreshold) return new AdmissionPlan(AdmissionDecision.Defer, Source: s, Reuse: planned);
            }
        }

        var active = 0;
        foreach (var s in slots) if (s.IsActive) active += s.ReservedCells;
        if (active + need > contextSize) return new AdmissionPlan(AdmissionDecision.NoCells);

        var target = source is not null && CanTake(source) ? source : EmptyOrLeastRecentlyUsed(slots, CanTake);

        // Evict idle caches, least recently used first and the reuse source last (its cells are copied before eviction).
        var idle = slots.Where(s => s.State == SlotState.Cached && s != target)
            .OrderBy(s => s == source ? 1 : 0).ThenBy(s => s.LastUsed).ToList();
        var used = active + need + idle.Sum(s => s.Cached.Length);
        List<Slot> evict = [];
        foreach (var s in idle)
        {
            if (used <= contextSize) break;
            evict.Add(s);
            used -= s.Cached.Length;
        }
        return new AdmissionPlan(AdmissionDecision.Admit, target, reuse > 0 ? source : null, reuse, evict);
    }

    /// <summary>A split KV cache: the free slot whose own cells hold the longest prefix, else an empty one, else the least recently used.</summary>
    private static AdmissionPlan PlanSplit(IReadOnlyList<Slot> slots, ReadOnlySpan<LLamaToken> prompt, int need, int cellsPerSlot, bool prefixReuse,
        Func<Slot, bool> canTake)
    {
        if (need > cellsPerSlot) return new AdmissionPlan(AdmissionDecision.NoCells);
        var maxReuse = prompt.Length - 1;
        Slot? best = null;
        var reuse = 0;
        foreach (var s in slots)
        {
            if (!canTake(s)) continue;
            var n = prefixReuse && maxReuse > 0 ? Math.Min(prompt.CommonPrefixLength(s.Cached), maxReuse) : 0;
            if (n > reuse)
            {
                reuse = n;
                best = s;
            }
        }
        var target = best ?? EmptyOrLeastRecentlyUsed(slots, canTake);
        return new AdmissionPlan(AdmissionDecision.Admit, target, best, reuse, []);
    }

    /// <summary>A free slot with nothing cached, else the least recently used free one (its cache is dropped); one exists.</summary>
    private static Slot EmptyOrLeastRecentlyUsed(IReadOnlyList<Slot> slots, Func<Slot, bool> canTake)
    {
        Slot? empty = null, lru = null;
        foreach (var s in slots)
        {
            if (!canTake(s)) continue;
            if (s.State == SlotState.Empty) empty ??= s;
            if (lru is null || s.LastUsed < lru.LastUsed) lru = s;
        }
        return empty ?? lru!;
    }
}
