using System.Text;
using QueueWorker.Contracts;

namespace QueueWorker.Inference.Tests;

/// <summary>The OpenAI sampling fields on the real model (stories260K): each one changes what is generated as it says.</summary>
[Trait("Category", "Integration")]
public sealed class OpenAiSamplingTests : IAsyncLifetime
{
    private const string Once = "Once upon a time";
    /// <summary>An ordinary word piece of stories260K's 512-token vocabulary (not a control or byte token).</summary>
    private const int Token = 300;
    private LlamaEngine _engine = null!;

    public async Task InitializeAsync() => _engine = await TestModels.StartAsync(TestModels.Options(slots: 2));

    public async Task DisposeAsync() => await _engine.DisposeAsync();

    private Task<GenerationResult> RunAsync(GenerationRequest request) => _engine.GenerateAsync(request, CancellationToken.None);

    private static GenerationRequest Sampled(int maxTokens, SamplingParams? sampling = null, int? top = null) => new()
    {
        JobId = Guid.NewGuid().ToString("N"),
        Prompt = Once,
        MaxTokens = maxTokens,
        Sampling = sampling ?? new SamplingParams { Temperature = 0.8f, Seed = 42 },
        TopLogprobs = top,
    };

    [Fact]
    public async Task GenerateAsync_LogitBiasPlus100OnOneToken_EveryGeneratedTokenIsThatToken()
    {
        var unbiased = await RunAsync(Sampled(12, top: 0));
        var biased = await RunAsync(Sampled(12, new SamplingParams { Temperature = 0.8f, Seed = 42, LogitBias = new Dictionary<int, float> { [Token] = 100 } }, top: 0));

        Assert.Equal(12, biased.CompletionTokens);
        var tokens = biased.Logprobs!.Select(l => Convert.ToHexString(l.Bytes.Select(b => (byte)b).ToArray())).Distinct().ToList();
        Assert.Single(tokens);
        Assert.NotEqual(tokens, unbiased.Logprobs!.Select(l => Convert.ToHexString(l.Bytes.Select(b => (byte)b).ToArray())).Distinct().ToList());
    }

    [Theory]
    [InlineData(2f, 0f)]
    [InlineData(0f, 2f)]
    public async Task GenerateAsync_FrequencyOrPresencePenalty_ChangesTheTextOfTheSameSeed(float frequency, float presence)
    {
        var none = await RunAsync(Sampled(64, SamplingParams.Greedy));
        var noneAgain = await RunAsync(Sampled(64, SamplingParams.Greedy));
        var penalized = await RunAsync(Sampled(64, SamplingParams.Greedy with { FrequencyPenalty = frequency, PresencePenalty = presence }));

        Assert.Equal(none.Text, noneAgain.Text);
        Assert.NotEqual(none.Text, penalized.Text);
    }

    [Fact]
    public async Task GenerateAsync_NegativeFrequencyPenalty_RepeatsMore()
    {
        static int Distinct(GenerationResult r) => r.Logprobs!.Select(l => Convert.ToHexString(l.Bytes.Select(b => (byte)b).ToArray())).Distinct().Count();
        var none = await RunAsync(Sampled(64, SamplingParams.Greedy, top: 0));
        var negative = await RunAsync(Sampled(64, SamplingParams.Greedy with { FrequencyPenalty = -2 }, top: 0));

        Assert.True(Distinct(negative) < Distinct(none), $"{Distinct(negative)} distinct tokens with -2, {Distinct(none)} without");
    }

    [Fact]
    public async Task GenerateAsync_LogprobsGreedy_SortedAtMostZeroAndTheSampledTokenIsTheMostLikely()
    {
        var result = await RunAsync(Sampled(24, SamplingParams.Greedy, top: 5));

        Assert.Equal(result.CompletionTokens, result.Logprobs!.Count);
        foreach (var entry in result.Logprobs)
        {
            Assert.Equal(5, entry.TopLogprobs.Count);
            Assert.All(entry.TopLogprobs, t => Assert.InRange(t.Logprob, double.NegativeInfinity, 0));
            Assert.Equal(entry.TopLogprobs.OrderByDescending(t => t.Logprob).Select(t => t.Logprob), entry.TopLogprobs.Select(t => t.Logprob));
            // Greedy without penalties takes the model's most likely token.
            Assert.Equal(entry.TopLogprobs[0].Bytes, entry.Bytes);
            Assert.Equal(entry.TopLogprobs[0].Logprob, entry.Logprob);
            // Probabilities of distinct tokens sum to at most 1.
            Assert.InRange(entry.TopLogprobs.Sum(t => Math.Exp(t.Logprob)), 0, 1 + 1e-6);
        }
        // The tokens' bytes are the text.
        Assert.Equal(result.Text, Encoding.UTF8.GetString(result.Logprobs.SelectMany(l => l.Bytes).Select(b => (byte)b).ToArray()));
    }

    [Fact]
    public async Task GenerateAsync_LogprobsSampled_SampledTokenPresentAndNoMoreLikelyThanTheTop()
    {
        var result = await RunAsync(Sampled(24, top: 20));

        Assert.Equal(24, result.Logprobs!.Count);
        foreach (var entry in result.Logprobs)
        {
            Assert.Equal(20, entry.TopLogprobs.Count);
            Assert.InRange(entry.Logprob, double.NegativeInfinity, entry.TopLogprobs[0].Logprob);
            Assert.True(entry.Logprob > double.NegativeInfinity);
            var same = entry.TopLogprobs.FirstOrDefault(t => t.Bytes.SequenceEqual(entry.Bytes));
            if (same is not null) Assert.Equal(same.Logprob, entry.Logprob, 9);
        }
    }

    [Fact]
    public async Task GenerateAsync_NoLogprobsAsked_NoneReturned()
    {
        var result = await RunAsync(Sampled(4, SamplingParams.Greedy));

        Assert.Null(result.Logprobs);
    }

    [Fact]
    public async Task GenerateAsync_LogprobsAsked_SameTextAsWithout()
    {
        var plain = await RunAsync(Sampled(32));
        var withLogprobs = await RunAsync(Sampled(32, top: 3));

        Assert.Equal(plain.Text, withLogprobs.Text);
    }

    [Fact]
    public async Task GenerateAsync_LogitBiasTokenOutsideTheVocabulary_InvalidFieldNamingIt()
    {
        var ex = await Assert.ThrowsAsync<InferenceException>(() =>
            RunAsync(Sampled(4, SamplingParams.Greedy with { LogitBias = new Dictionary<int, float> { [512] = 1 } })));

        Assert.Equal(ErrorCodes.InvalidField, ex.Code);
        Assert.Equal("logit_bias.512", ex.Field);
        Assert.Contains("0 to 511", ex.Message, StringComparison.Ordinal);
    }
}
