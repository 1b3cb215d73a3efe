using System.Text.Json;

namespace QueueWorker.Cli.Tests;

/// <summary><c>qw batch --local</c> on samples/embeddings.jsonl with the real stories260K: embeddings and logprobs in OpenAI's shapes.</summary>
[Trait("Category", "Integration")]
public sealed class EmbeddingLocalBatchTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string Sample => Path.Combine(AppContext.BaseDirectory, "samples", "embeddings.jsonl");

    private string[] Args(string output, bool embeddings) =>
        ["batch", Sample, "--out", output, "--local", "--set", $"Model:Path={TestModels.Find("stories260K.gguf")}", "--set", $"Model:Embeddings={embeddings}",
         "--set", "Inference:ContextSize=1024", "--set", "Inference:Slots=2", "--progress-interval", "1"];

    private static Dictionary<string, JsonElement> Lines(string path) =>
        File.ReadAllLines(path).Select(l => JsonDocument.Parse(l).RootElement).ToDictionary(l => l.GetProperty("custom_id").GetString()!);

    [Fact]
    public async Task BatchLocal_EmbeddingsSample_VectorsAndLogprobsInOpenAiShapes()
    {
        var output = _dir.File("out.jsonl");

        var run = await Qw.RunAsync(Args(output, embeddings: true));

        Assert.True(run.ExitCode == 0, run.ToString());
        var lines = Lines(output);
        var one = lines["embed-1"].GetProperty("response").GetProperty("body");
        Assert.Equal("list", one.GetProperty("object").GetString());
        var vector = one.GetProperty("data")[0].GetProperty("embedding").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        Assert.Equal(64, vector.Length);
        Assert.Equal(1, Math.Sqrt(vector.Sum(x => x * x)), 4);
        var three = lines["embed-2"].GetProperty("response").GetProperty("body").GetProperty("data");
        Assert.Equal([0, 1, 2], three.EnumerateArray().Select(d => d.GetProperty("index").GetInt32()));
        var story = lines["story-1"].GetProperty("response").GetProperty("body");
        Assert.Equal("reader-7", story.GetProperty("user").GetString());
        var logprobs = story.GetProperty("choices")[0].GetProperty("logprobs");
        Assert.Equal(32, logprobs.GetProperty("tokens").GetArrayLength());
        Assert.Equal(3, logprobs.GetProperty("top_logprobs")[0].EnumerateObject().Count());
    }

    [Fact]
    public async Task BatchLocal_EmbeddingsOff_EmbeddingLinesAreEmbeddingsDisabledErrors()
    {
        var output = _dir.File("off.jsonl");

        var run = await Qw.RunAsync(Args(output, embeddings: false));

        Assert.Equal(1, run.ExitCode);
        var lines = Lines(output);
        Assert.Equal("embeddings_disabled", lines["embed-1"].GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(JsonValueKind.Object, lines["story-1"].GetProperty("response").ValueKind);
    }
}
