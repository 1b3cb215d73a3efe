using Microsoft.Extensions.Logging.Abstractions;
using QueueWorker.Contracts;

namespace QueueWorker.Inference.Tests;

/// <summary>Embeddings on stories260K (its mean-pooled hidden states are real vectors), on the engine's second context.</summary>
[Trait("Category", "Integration")]
public sealed class EmbeddingTests : IAsyncLifetime
{
    private static readonly string[] Texts =
    [
        "Once upon a time, there was a little girl named Lily.",
        "The dog ran to the park.",
        "Tom had a red ball. He liked to play with it every day in the sun.",
        "Sue",
        "The cat sat on the mat and looked at the bird in the tree.",
    ];

    private LlamaEngine _engine = null!;

    public async Task InitializeAsync()
    {
        _engine = new LlamaEngine(new ModelOptions { Path = TestModels.Stories260K, Embeddings = true }, TestModels.Options(slots: 2), NullLogger<LlamaEngine>.Instance);
        await _engine.StartAsync(CancellationToken.None);
    }

    public async Task DisposeAsync() => await _engine.DisposeAsync();

    private Task<EmbeddingResult> EmbedAsync(params string[] inputs) => _engine.EmbedAsync(inputs, CancellationToken.None);

    private static double Norm(float[] v) => Math.Sqrt(v.Sum(x => (double)x * x));

    private static double Cosine(float[] a, float[] b) => a.Zip(b, (x, y) => (double)x * y).Sum();

    [Fact]
    public async Task EmbedAsync_SameInputTwice_SameUnitVector()
    {
        var a = await EmbedAsync(Texts[0]);
        var b = await EmbedAsync(Texts[0]);

        var v = Assert.Single(a.Vectors);
        Assert.Equal(v, Assert.Single(b.Vectors));
        Assert.Equal(64, v.Length);   // stories260K's embedding size
        Assert.Equal(1, Norm(v), 5);
        Assert.All(v, x => Assert.True(float.IsFinite(x)));
        Assert.True(a.PromptTokens > 5);
    }

    [Fact]
    public async Task EmbedAsync_BatchOfN_SameAsNSingleRequests()
    {
        var batch = await EmbedAsync(Texts);

        Assert.Equal(Texts.Length, batch.Vectors.Count);
        var tokens = 0;
        for (var i = 0; i < Texts.Length; i++)
        {
            var single = await EmbedAsync(Texts[i]);
            tokens += single.PromptTokens;
            var s = Assert.Single(single.Vectors);
            // One decode or several: the same numbers up to float rounding.
            Assert.All(s.Zip(batch.Vectors[i]), p => Assert.Equal(p.First, p.Second, 4));
        }
        Assert.Equal(tokens, batch.PromptTokens);
    }

    [Fact]
    public async Task EmbedAsync_DifferentInputs_DifferentVectorsAndRelatedCloser()
    {
        var r = await EmbedAsync("The dog ran to the park.", "The dog ran to the big park.", "Sue");

        Assert.NotEqual(r.Vectors[0], r.Vectors[2]);
        Assert.True(Cosine(r.Vectors[0], r.Vectors[1]) > Cosine(r.Vectors[0], r.Vectors[2]));
    }

    [Fact]
    public async Task EmbedAsync_MoreTextsThanOneDecodeHolds_AllInOrder()
    {
        var many = Enumerable.Range(0, Embedder.MaxSequences * 2 + 3).Select(i => $"Story number {i} is about a cat.").ToArray();

        var r = await EmbedAsync(many);

        Assert.Equal(many.Length, r.Vectors.Count);
        Assert.Equal(Assert.Single((await EmbedAsync(many[^1])).Vectors).Select(x => Math.Round(x, 4)), r.Vectors[^1].Select(x => Math.Round(x, 4)));
    }

    [Fact]
    public async Task EmbedAsync_WhileCompletionsRun_CompletionTextUnchanged()
    {
        var alone = await _engine.GenerateAsync(TestModels.Greedy("Once upon a time", 40), CancellationToken.None);

        var completion = _engine.GenerateAsync(TestModels.Greedy("Once upon a time", 40), CancellationToken.None);
        var embeddings = EmbedAsync(Texts);
        await Task.WhenAll(completion, embeddings);

        Assert.Equal(alone.Text, (await completion).Text);
    }

    [Fact]
    public async Task EmbedAsync_EmbeddingsOff_EmbeddingsDisabled()
    {
        await using var plain = await TestModels.StartAsync(TestModels.Options(slots: 1));

        var ex = await Assert.ThrowsAsync<InferenceException>(() => plain.EmbedAsync(["x"], CancellationToken.None));

        Assert.Equal(ErrorCodes.EmbeddingsDisabled, ex.Code);
        Assert.Contains("Model:Embeddings", ex.Message, StringComparison.Ordinal);
    }
}
