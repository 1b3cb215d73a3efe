using System.ComponentModel;
using System.Globalization;
using QueueWorker.Bench.ModelTools;
using Spectre.Console;
using Spectre.Console.Cli;

namespace QueueWorker.Bench.Commands;

/// <summary>`qwbench model synth`: a GGUF with a real model's shapes and random weights, for speed benchmarks.</summary>
internal sealed class ModelSynthCommand : AsyncCommand<ModelSynthCommand.Settings>
{
    public const string Description =
        "BENCHMARKING TOOL: writes a GGUF with the exact shapes of a real llama model, RANDOM weights and a borrowed real " +
        "tokenizer, quantized with llama.cpp. It generates gibberish, but runs at the real model's speed (speed depends on " +
        "shapes and weight types, not values). Use it to measure, never to serve.";

    public const string DefaultTokenizer = "../shared/models/llama-2-tiny-random.gguf";

    internal sealed class Settings : CommandSettings
    {
        [CommandOption("--preset <NAME>")]
        [Description("Model shapes: llama-micro (~4M, tests), llama-tiny (~106M), tinyllama-1.1b, open-llama-3b, llama-2-7b.")]
        [DefaultValue("tinyllama-1.1b")]
        public string Preset { get; init; } = "tinyllama-1.1b";

        [CommandOption("--quant <TYPE>")]
        [Description("Weight format: q3_k_m, q4_0, q4_k_m, q8_0 or f16.")]
        [DefaultValue("q4_0")]
        public string Quant { get; init; } = "q4_0";

        [CommandOption("-o|--out <FILE>")]
        [Description("The GGUF to write (required).")]
        public string? Out { get; init; }

        [CommandOption("--tokenizer-from <GGUF>")]
        [Description("GGUF whose tokenizer.* metadata is copied (a 32000-token llama vocabulary).")]
        [DefaultValue(DefaultTokenizer)]
        public string TokenizerFrom { get; init; } = DefaultTokenizer;

        [CommandOption("--seed <N>")]
        [Description("Seed of the random weights (the same seed gives the same file).")]
        [DefaultValue(42UL)]
        public ulong Seed { get; init; } = 42;

        [CommandOption("--threads <N>")]
        [Description("Threads for quantization and the check; 0 = all processors.")]
        [DefaultValue(0)]
        public int Threads { get; init; }

        [CommandOption("--force")]
        [Description("Overwrite --out if it exists.")]
        public bool Force { get; init; }

        [CommandOption("--no-verify")]
        [Description("Skip loading the result in LLamaSharp and decoding a few tokens.")]
        public bool NoVerify { get; init; }

        [CommandOption("--verbose")]
        [Description("Show llama.cpp's log.")]
        public bool Verbose { get; init; }

        public override ValidationResult Validate()
        {
            if (string.IsNullOrWhiteSpace(Out))
            {
                return ValidationResult.Error("--out: required (the GGUF file to write)");
            }

            if (!ModelPreset.All.Any(p => string.Equals(p.Name, Preset, StringComparison.OrdinalIgnoreCase)))
            {
                return ValidationResult.Error($"--preset: '{Preset}' is unknown; known: {string.Join(", ", ModelPreset.All.Select(p => p.Name))}");
            }

            if (!QuantType.All.Any(q => string.Equals(q.Name, Quant, StringComparison.OrdinalIgnoreCase)))
            {
                return ValidationResult.Error($"--quant: '{Quant}' is unknown; known: {string.Join(", ", QuantType.All.Select(q => q.Name))}");
            }

            if (Threads < 0)
            {
                return ValidationResult.Error($"--threads: must be 0 (all) or more, got {Threads}");
            }

            if (!File.Exists(TokenizerFrom))
            {
                return ValidationResult.Error($"--tokenizer-from: file not found: {Path.GetFullPath(TokenizerFrom)}");
            }

            if (File.Exists(Out) && !Force)
            {
                return ValidationResult.Error($"--out: {Path.GetFullPath(Out)} exists (add --force to overwrite)");
            }

            return ValidationResult.Success();
        }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var console = AnsiConsole.Console;
        LlamaNative.Configure(settings.Verbose);
        var options = new SynthesisOptions
        {
            Preset = ModelPreset.Get(settings.Preset),
            Quant = QuantType.Get(settings.Quant),
            OutputPath = settings.Out!,
            TokenizerFrom = settings.TokenizerFrom,
            Seed = settings.Seed,
            Threads = settings.Threads,
        };

        console.MarkupLine($"[yellow]Benchmarking model:[/] random weights with [bold]{options.Preset.Name}[/] shapes " +
                           $"({options.Preset.ParameterCount / 1e6:F1}M parameters), {options.Quant.Name}. It writes gibberish.");
        SynthesisResult result;
        try
        {
            result = await SynthesizeWithProgressAsync(console, options, cancellationToken);
        }
        catch (InvalidOperationException)
        {
            PrintNativeLog(console);
            throw;
        }

        console.MarkupLine($"Wrote [bold]{Markup.Escape(result.Path)}[/]: {result.FileBytes / 1048576.0:F1} MiB, " +
                           $"{result.Parameters:N0} parameters (write {result.WriteTime.TotalSeconds:F1} s, quantize {result.QuantizeTime.TotalSeconds:F1} s).");

        if (!settings.NoVerify)
        {
            var threads = settings.Threads > 0 ? settings.Threads : Environment.ProcessorCount;
            var smoke = await ModelSmokeTest.RunAsync(result.Path, threads, 8, cancellationToken);
            if (smoke.Parameters != result.Parameters)
            {
                throw new InvalidOperationException($"LLamaSharp counts {smoke.Parameters} parameters, the file header {result.Parameters}");
            }

            console.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                $"Check: LLamaSharp loaded it ({smoke.LoadMs:F0} ms, {smoke.Parameters:N0} parameters, {smoke.VocabSize} tokens) and decoded " +
                $"{smoke.Generated.Count} tokens at {smoke.Generated.Count / (smoke.DecodeMs / 1000):F1} tok/s: [grey]{Markup.Escape(smoke.Text.ReplaceLineEndings(" "))}[/]"));
        }

        return 0;
    }

    /// <summary>Runs the synthesis under a Spectre progress bar; shared with the benchmark (<see cref="BenchCommand"/>).</summary>
    public static async Task<SynthesisResult> SynthesizeWithProgressAsync(IAnsiConsole console, SynthesisOptions options, CancellationToken cancellationToken)
    {
        SynthesisResult? result = null;
        await console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(async ctx =>
            {
                var task = ctx.AddTask($"{options.Preset.Name} {options.Quant.Name}", maxValue: 1);
                // Reported inline (Progress<T> would post to the thread pool, out of order): ProgressTask is thread-safe.
                var progress = new InlineProgress<SynthesisProgress>(p =>
                {
                    task.Description = Markup.Escape($"{options.Preset.Name}: {p.Phase}");
                    task.MaxValue = Math.Max(1, p.Total);
                    task.Value = p.Done;
                });
                result = await SyntheticModel.CreateAsync(options, progress, cancellationToken);
                task.Value = task.MaxValue;
            });
        return result!;
    }

    private static void PrintNativeLog(IAnsiConsole console)
    {
        console.MarkupLine("[red]llama.cpp log (last lines):[/]");
        foreach (var line in LlamaNative.RecentLog().TakeLast(30))
        {
            console.WriteLine(line);
        }
    }
}
