namespace QueueWorker.Inference.Tests;

/// <summary>The host-RAM prompt cache on the real model (stories260K: greedy text is stable across batch shapes).</summary>
[Trait("Category", "Integration")]
public sealed class PromptCacheEngineTests
{
    // ~180 tokens: long enough that a restore is worth it, short enough for a 1024-cell context with 40 generated.
    private static readonly string LongPrompt = string.Concat(Enumerable.Repeat(
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog. ", 5)) + "One day,";
    private const string OtherPrompt = "Tom had a big red ball. He liked to throw it high in the sky and catch it with his hands. One day, the ball";

    /// <summary>One slot, so the second job's prompt replaces the first's in the slot's cells: only the RAM cache still has them.</summary>
    private static async Task<(GenerationResult First, GenerationResult Again, EngineStats Stats)> RunABA(int promptCacheMb)
    {
        await using var engine = await TestModels.StartAsync(TestModels.Options(slots: 1, promptCacheMb: promptCacheMb));
        var first = await engine.GenerateAsync(TestModels.Greedy(LongPrompt, 40), CancellationToken.None);
        await engine.GenerateAsync(TestModels.Greedy(OtherPrompt, 20), CancellationToken.None);
        var again = await engine.GenerateAsync(TestModels.Greedy(LongPrompt, 40), CancellationToken.None);
        return (first, again, engine.Stats);
    }

    [Fact]
    public async Task GenerateAsync_SameLongPromptAfterTheSlotWasReused_RestoredFromRamWithSameText()
    {
        var (first, again, stats) = await RunABA(promptCacheMb: 16);

        Assert.True(first.PromptTokens > 150, $"prompt of {first.PromptTokens} tokens");
        Assert.Equal(0, first.CachedTokens);
        // Every prompt token but the last (decoded again for its logits) came from the cache: its prefill was skipped.
        Assert.Equal(again.PromptTokens - 1, again.CachedTokens);
        Assert.Equal(first.Text, again.Text);
        Assert.Equal(40, again.CompletionTokens);
        Assert.Equal(1, stats.PromptCacheHits);
        Assert.Equal(2, stats.PromptCacheMisses);
        Assert.Equal(again.PromptTokens - 1, stats.PromptCacheRestoredTokens);
        Assert.InRange(stats.PromptCacheBytes, 1, 16 * 1024 * 1024);
    }

    [Fact]
    public async Task GenerateAsync_SameJobsWithCacheOff_PrefillsAgainAndWritesTheSameText()
    {
        var (withCache, restored, _) = await RunABA(promptCacheMb: 16);
        var (first, again, stats) = await RunABA(promptCacheMb: 0);

        // The slot's own cells only share the BOS token with the other prompt.
        Assert.True(again.CachedTokens <= 1, $"cached {again.CachedTokens}");
        Assert.Equal(0, stats.PromptCacheHits + stats.PromptCacheMisses);
        Assert.Equal(first.Text, again.Text);
        Assert.Equal(first.Text, withCache.Text);
        Assert.Equal(first.Text, restored.Text);
    }

    [Fact]
    public async Task GenerateAsync_ManyDistinctLongPromptsInASmallCache_StaysWithinTheBoundAndKeepsTheNewest()
    {
        await using var engine = await TestModels.StartAsync(TestModels.Options(slots: 2, promptCacheMb: 1));
        var prompts = Enumerable.Range(0, 12).Select(i => $"Story {i}. " + LongPrompt).ToList();
        foreach (var prompt in prompts)
        {
            await engine.GenerateAsync(TestModels.Greedy(prompt, 8), CancellationToken.None);
            Assert.InRange(engine.Stats.PromptCacheBytes, 0, 1024 * 1024);
        }
        Assert.True(engine.Stats.PromptCacheEvictions > 0, "a 1 MiB cache of 12 long prompts evicted nothing: the states are smaller than assumed");

        // The last prompt is still in a slot (slot reuse serves it); the fourth-to-last only in RAM, the first in neither.
        var recent = await engine.GenerateAsync(TestModels.Greedy(prompts[^4], 8), CancellationToken.None);
        var oldest = await engine.GenerateAsync(TestModels.Greedy(prompts[0], 8), CancellationToken.None);

        Assert.Equal(recent.PromptTokens - 1, recent.CachedTokens);
        Assert.True(oldest.CachedTokens < 10, $"the evicted prompt reused {oldest.CachedTokens} tokens");
    }

    [Fact]
    public async Task GenerateAsync_SplitKvCache_SameTextAsUnifiedAndAJobOverOneSlotsCellsRefusedByName()
    {
        // 4 slots + the priority slot share 1024 cells when unified; split, each owns 1024 / 5 = 204, which llama.cpp rounds
        // up to 256 (n_ctx becomes 1280).
        var prompts = new[] { "Lily", "Tom", "Ben", "Sue", "Max", "Mia" }.Select(n => $"{n} had a little dog. One day, {n} and the dog").ToList();
        async Task<List<string>> RunAsync(bool unified)
        {
            var options = TestModels.Options(slots: 4, maxTokens: 100);
            options.KvUnified = unified;
            await using var engine = await TestModels.StartAsync(options);
            var results = await Task.WhenAll(prompts.Select(p => engine.GenerateAsync(TestModels.Greedy(p, 24), CancellationToken.None)));
            if (!unified)
            {
                // ~180 prompt tokens + 100 fit the 1024-cell context, not one slot's stream.
                var tooBig = await Assert.ThrowsAsync<InferenceException>(() => engine.GenerateAsync(TestModels.Greedy(LongPrompt, 100), CancellationToken.None));
                Assert.Equal(QueueWorker.Contracts.ErrorCodes.PromptTooLong, tooBig.Code);
                Assert.Contains("with Inference:KvUnified = false one slot holds 256", tooBig.Message);
                // ... and the engine goes on serving.
                Assert.Equal(24, (await engine.GenerateAsync(TestModels.Greedy(prompts[0], 24), CancellationToken.None)).CompletionTokens);
            }
            return [.. results.Select(r => r.Text)];
        }

        var unifiedTexts = await RunAsync(unified: true);
        var splitTexts = await RunAsync(unified: false);

        Assert.Equal(unifiedTexts, splitTexts);
        Assert.True(splitTexts.Distinct().Count() >= 3, string.Join(" | ", splitTexts));
    }
}
