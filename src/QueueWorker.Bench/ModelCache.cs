using QueueWorker.Bench.ModelTools;

namespace QueueWorker.Bench;

/// <summary>
/// Model files for the bench, kept in a cache folder so repeated runs do not synthesize again: for a preset,
/// one random F16 base per (preset, seed) and each weight format quantized from it; for a user's --model,
/// each format re-quantized from that file (speed is right, quality is not: speed depends only on the types).
/// </summary>
public sealed class ModelCache(
    string directory,
    ModelPreset? preset,
    string? sourceModel,
    string tokenizerFrom,
    ulong seed,
    int threads,
    Func<SynthesisOptions, CancellationToken, Task<SynthesisResult>> synthesize,
    Action<string> log) : IModelProvider
{
    // A format that failed once (e.g. rows not a multiple of its block size) is not tried again in this run.
    private readonly Dictionary<string, InvalidOperationException> _failed = [];

    public static string DefaultDirectory()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var root = string.IsNullOrEmpty(xdg) ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache") : xdg;
        return Path.Combine(root, "queueworker", "models");
    }

    public string PathFor(QuantType quant) => preset is not null
        ? Path.Combine(directory, $"{preset.Name}-{quant.Name}-seed{seed}.gguf")
        : Path.Combine(directory, $"{Path.GetFileNameWithoutExtension(sourceModel)}-{quant.Name}.gguf");

    public async Task<string> GetAsync(QuantType quant, CancellationToken cancellationToken)
    {
        var path = PathFor(quant);
        if (File.Exists(path))
        {
            return path;
        }

        if (_failed.TryGetValue(quant.Name, out var failure))
        {
            throw failure;
        }

        Directory.CreateDirectory(directory);
        if (preset is null)
        {
            log($"re-quantizing {sourceModel} to {quant.Name} (cached as {path})");
            try
            {
                await SyntheticModel.QuantizeFileAsync(sourceModel!, path, quant, threads, cancellationToken);
            }
            catch (InvalidOperationException e)
            {
                throw _failed[quant.Name] = new InvalidOperationException($"{sourceModel} could not be re-quantized to {quant.Name}: {e.Message}", e);
            }

            return path;
        }

        var f16 = PathFor(QuantType.Get("f16"));
        if (!File.Exists(f16))
        {
            log($"synthesizing {preset.Name} (random weights, F16) into {f16}");
            await synthesize(new SynthesisOptions
            {
                Preset = preset,
                Quant = QuantType.Get("f16"),
                OutputPath = f16,
                TokenizerFrom = tokenizerFrom,
                Seed = seed,
                Threads = threads,
            }, cancellationToken);
        }

        if (!quant.IsF16)
        {
            log($"quantizing {Path.GetFileName(f16)} to {quant.Name}");
            await SyntheticModel.QuantizeFileAsync(f16, path, quant, threads, cancellationToken);
        }

        return path;
    }
}
