namespace QueueWorker.Cli.Tests;

/// <summary>The benchmark and model tools left qw for qwbench: an old command line gets the new name, not "unknown command".</summary>
[Trait("Category", "Unit")]
public sealed class MovedCommandsTests
{
    [Theory]
    [InlineData(new[] { "bench", "--quick", "--sections", "worker" }, "'qw bench' moved to the benchmark tool: run 'qwbench'")]
    [InlineData(new[] { "model", "synth", "--out", "x.gguf" }, "'qw model' moved to the benchmark tool: run 'qwbench model'")]
    public async Task MovedCommand_OneLineNamingQwbench_Usage(string[] args, string expected)
    {
        var run = await Qw.RunAsync(args);

        Assert.Equal(2, run.ExitCode);
        Assert.Equal("", run.Out);
        var line = Assert.Single(run.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("qw: " + expected, line);
    }
}
