namespace QueueWorker.IntegrationTests;

/// <summary>A bad configuration stops the worker at start with one clear line naming the key and the value.</summary>
[Trait("Category", "Integration")]
public class StartupValidationTests
{
    private static async Task<(int ExitCode, string Output)> RunWithAsync(Dictionary<string, string> settings)
    {
        await using var worker = WorkerProcess.Start(settings);
        var code = await worker.WaitForExitAsync(TimeSpan.FromSeconds(60));
        return (code, worker.Output);
    }

    [Fact]
    public async Task Start_MissingModelFile_ExitsNamingModelPath()
    {
        var (code, output) = await RunWithAsync(new() { ["Model:Path"] = "/nonexistent/model.gguf" });
        Assert.Equal(2, code);
        AssertOneClearLine(output, "Model:Path", "/nonexistent/model.gguf");
    }

    [Fact]
    public async Task Start_BadBrokerUri_ExitsNamingRabbitMqUri()
    {
        var (code, output) = await RunWithAsync(new() { ["RabbitMq:Uri"] = "http://not-amqp" });
        Assert.Equal(2, code);
        AssertOneClearLine(output, "RabbitMq:Uri", "http://not-amqp");
    }

    [Theory]
    [InlineData("Inference:Slots", "0")]
    [InlineData("Inference:ContextSize", "-5")]
    [InlineData("Inference:MaxTokens", "0")]
    public async Task Start_OutOfRangeValue_ExitsNamingKeyAndValue(string key, string value)
    {
        var (code, output) = await RunWithAsync(new() { [key] = value });
        Assert.Equal(2, code);
        AssertOneClearLine(output, key, value);
    }

    /// <summary>The operator's line: on its own, prefixed, naming the key and the value (logs may add detail around it).</summary>
    private static void AssertOneClearLine(string output, string key, string value)
    {
        var lines = output.Split('\n').Where(l => l.StartsWith("queueworker: ", StringComparison.Ordinal)).ToList();
        Assert.True(lines.Count >= 1, "no 'queueworker: ' line in:\n" + output);
        Assert.Contains(lines, l => l.Contains(key, StringComparison.Ordinal) && l.Contains(value, StringComparison.Ordinal));
    }
}
