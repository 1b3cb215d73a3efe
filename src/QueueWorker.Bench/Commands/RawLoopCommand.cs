using System.ComponentModel;
using System.Text.Json;
using Spectre.Console.Cli;

namespace QueueWorker.Bench.Commands;

/// <summary>
/// `qwbench raw-loop`: the overhead section's baseline as a process of its own, started the way the worker is (see
/// <see cref="RawLoopProcess"/>). It loads the model, prints <c>ready</c>, then answers each JSON request line on stdin
/// (<see cref="RawLoopRequest"/>) with one JSON result line (<see cref="RawLoopResult"/>) until stdin closes.
/// </summary>
internal sealed class RawLoopCommand : AsyncCommand<RawLoopCommand.Settings>
{
    public const string Description = "The overhead section's raw batched loop as a child process (used by qwbench --sections overhead; reads JSON lines on stdin).";
    public const string Ready = "ready";

    internal sealed class Settings : CommandSettings
    {
        [CommandOption("--settings <JSON>")]
        [Description("The context settings as JSON (RawLoopSettings).")]
        public string Json { get; init; } = "";

        public override Spectre.Console.ValidationResult Validate() =>
            Json.Length == 0 ? Spectre.Console.ValidationResult.Error("--settings: required") : Spectre.Console.ValidationResult.Success();
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        LlamaNative.Configure(verbose: false);
        var loop = JsonSerializer.Deserialize(settings.Json, RawLoopJsonContext.Default.RawLoopSettings)
                   ?? throw new ArgumentException("--settings: null");
        using var raw = new RawLoop(loop);
        var stdout = Console.Out;
        await stdout.WriteLineAsync(Ready);
        await stdout.FlushAsync(cancellationToken);
        while (await Console.In.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.Length == 0)
            {
                continue;
            }

            var request = JsonSerializer.Deserialize(line, RawLoopJsonContext.Default.RawLoopRequest) ?? throw new ArgumentException("null request");
            // Off the reading thread, as the worker decodes on a thread of its own.
            var result = await Task.Run(() => raw.Run(request), cancellationToken);
            await stdout.WriteLineAsync(JsonSerializer.Serialize(result, RawLoopJsonContext.Default.RawLoopResult));
            await stdout.FlushAsync(cancellationToken);
        }

        return 0;
    }
}
