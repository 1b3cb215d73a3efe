namespace QueueWorker.IntegrationTests;

/// <summary>A bad configuration stops the worker at start with one clear line naming the key and the value.</summary>
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
        Assert.Contains("Model:Path", output);
        Assert.Contains("/nonexistent/model.gguf", output);
        Assert.DoesNotContain("   at ", output); // no stack trace
    }

    [Fact]
    public async Task Start_BadBrokerUri_ExitsNamingRabbitMqUri()
    {
        var (code, output) = await RunWithAsync(new() { ["RabbitMq:Uri"] = "http://not-amqp" });
        Assert.Equal(2, code);
        Assert.Contains("RabbitMq:Uri", output);
        Assert.Contains("http://not-amqp", output);
    }

    [Theory]
    [InlineData("Inference:Slots", "0")]
    [InlineData("Inference:ContextSize", "-5")]
    [InlineData("Inference:MaxTokens", "0")]
    public async Task Start_OutOfRangeValue_ExitsNamingKeyAndValue(string key, string value)
    {
        var (code, output) = await RunWithAsync(new() { [key] = value });
        Assert.Equal(2, code);
        Assert.Contains(key.Split(':')[1], output);
        Assert.Contains(value, output);
    }
}
