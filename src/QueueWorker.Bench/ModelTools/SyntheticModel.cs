using System.Diagnostics;
using System.Runtime.InteropServices;
using LLama;
using LLama.Native;

namespace QueueWorker.Bench.ModelTools;

/// <summary>What to synthesize.</summary>
public sealed record SynthesisOptions
{
    public required ModelPreset Preset { get; init; }
    public required QuantType Quant { get; init; }
    public required string OutputPath { get; init; }

    /// <summary>A GGUF whose <c>tokenizer.*</c> metadata is copied (its vocabulary must match the preset's size).</summary>
    public required string TokenizerFrom { get; init; }

    public ulong Seed { get; init; } = 42;

    /// <summary>Standard deviation of the random weights.</summary>
    public float Std { get; init; } = 0.02f;

    /// <summary>Threads for quantization; 0 = every processor.</summary>
    public int Threads { get; init; }
}

public sealed record SynthesisProgress(string Phase, long Done, long Total);

public sealed record SynthesisResult(string Path, long FileBytes, ulong Parameters, TimeSpan WriteTime, TimeSpan QuantizeTime);

/// <summary>
/// Writes a llama GGUF with a preset's exact shapes, random weights and a borrowed real tokenizer, then
/// quantizes it with LLamaSharp's quantizer. For speed measurements only: the text it writes is gibberish,
/// but a decode step costs what the real model's costs (same shapes, same types).
/// </summary>
public static class SyntheticModel
{
    public const string TokenizerPrefix = "tokenizer.";
    private const int ChunkBytes = 1 << 20;

    public static async Task<SynthesisResult> CreateAsync(SynthesisOptions options, IProgress<SynthesisProgress>? progress, CancellationToken cancellationToken)
    {
        options.Preset.Validate();
        if (!File.Exists(options.TokenizerFrom))
        {
            throw new FileNotFoundException($"tokenizer source GGUF not found: {Path.GetFullPath(options.TokenizerFrom)}", options.TokenizerFrom);
        }

        var tokenizer = ReadTokenizer(options.TokenizerFrom, options.Preset);
        var output = Path.GetFullPath(options.OutputPath);
        Directory.CreateDirectory(Path.GetDirectoryName(output)!);

        var partial = output + ".partial";
        var f16Path = options.Quant.IsF16 ? partial : output + ".f16.partial";
        var write = Stopwatch.StartNew();
        try
        {
            await WriteF16Async(options, tokenizer, f16Path, progress, cancellationToken).ConfigureAwait(false);
            write.Stop();

            var quantize = Stopwatch.StartNew();
            if (!options.Quant.IsF16)
            {
                progress?.Report(new SynthesisProgress($"quantizing to {options.Quant.Name}", 0, 1));
                var threads = options.Threads > 0 ? options.Threads : Environment.ProcessorCount;
                // The quantizer is one long native call; it cannot be interrupted, only not started.
                cancellationToken.ThrowIfCancellationRequested();
                await Task.Run(() => Quantize(f16Path, partial, options.Quant, threads), cancellationToken).ConfigureAwait(false);
                File.Delete(f16Path);
                progress?.Report(new SynthesisProgress($"quantizing to {options.Quant.Name}", 1, 1));
            }

            quantize.Stop();
            File.Move(partial, output, overwrite: true);
            var parameters = GgufReader.Read(output).ParameterCount;
            return new SynthesisResult(output, new FileInfo(output).Length, parameters, write.Elapsed, quantize.Elapsed);
        }
        finally
        {
            File.Delete(partial);
            File.Delete(output + ".f16.partial");
        }
    }

    /// <summary>
    /// Quantizes <paramref name="source"/> into <paramref name="destination"/> (written under a temporary name,
    /// then moved, so an interrupted run never leaves a half file under the final name).
    /// </summary>
    public static async Task QuantizeFileAsync(string source, string destination, QuantType quant, int threads, CancellationToken cancellationToken)
    {
        var partial = destination + ".partial";
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            await Task.Run(() => Quantize(source, partial, quant, threads > 0 ? threads : Environment.ProcessorCount), cancellationToken).ConfigureAwait(false);
            File.Move(partial, destination, overwrite: true);
        }
        finally
        {
            File.Delete(partial);
        }
    }

    /// <summary>Quantizes a GGUF with llama.cpp's quantizer (output tensor included, as llama-quantize does).</summary>
    public static void Quantize(string source, string destination, QuantType quant, int threads)
    {
        // LLamaQuantizer alone does not trigger LLamaSharp's native library resolver (FACTS.md).
        NativeApi.llama_empty_call();
        if (!LLamaQuantizer.Quantize(source, destination, quant.Ftype, threads, allowRequantize: true, quantizeOutputTensor: true))
        {
            throw new InvalidOperationException($"llama.cpp failed to quantize {source} to {quant.Name} (see its log)");
        }
    }

    /// <summary>The <c>tokenizer.*</c> metadata of <paramref name="path"/>, checked against the preset's vocabulary size.</summary>
    public static IReadOnlyList<KeyValuePair<string, GgufValue>> ReadTokenizer(string path, ModelPreset preset)
    {
        var source = GgufReader.Read(path);
        var tokenizer = source.Metadata.Where(kv => kv.Key.StartsWith(TokenizerPrefix, StringComparison.Ordinal)).ToList();
        var tokens = source.Get("tokenizer.ggml.tokens")
            ?? throw new InvalidDataException($"{path} has no tokenizer.ggml.tokens: it cannot lend a tokenizer");
        var vocab = tokens.AsArray().Length;
        if (vocab != preset.Vocab)
        {
            throw new InvalidDataException($"{path} has a {vocab}-token vocabulary; preset '{preset.Name}' needs {preset.Vocab}");
        }

        return tokenizer;
    }

    /// <summary>Declares the model's metadata and tensors on <paramref name="writer"/> (all weights F16, norms F32).</summary>
    public static void Declare(GgufWriter writer, ModelPreset p, IReadOnlyList<KeyValuePair<string, GgufValue>> tokenizer)
    {
        writer.AddMetadata("general.architecture", GgufValue.String("llama"));
        writer.AddMetadata("general.name", GgufValue.String($"synthetic {p.Name} (random weights)"));
        writer.AddMetadata("general.description", GgufValue.String(
            $"Random weights with the shapes of {p.Description}; made by `qwbench model synth` for speed benchmarks: it writes gibberish."));
        writer.AddMetadata("general.file_type", GgufValue.UInt32((uint)LLamaFtype.MOSTLY_F16));
        writer.AddMetadata("llama.vocab_size", GgufValue.UInt32((uint)p.Vocab));
        writer.AddMetadata("llama.context_length", GgufValue.UInt32((uint)p.ContextLength));
        writer.AddMetadata("llama.embedding_length", GgufValue.UInt32((uint)p.Embedding));
        writer.AddMetadata("llama.block_count", GgufValue.UInt32((uint)p.Layers));
        writer.AddMetadata("llama.feed_forward_length", GgufValue.UInt32((uint)p.FeedForward));
        writer.AddMetadata("llama.rope.dimension_count", GgufValue.UInt32((uint)p.HeadDim));
        writer.AddMetadata("llama.rope.freq_base", GgufValue.Float32(p.RopeTheta));
        writer.AddMetadata("llama.attention.head_count", GgufValue.UInt32((uint)p.Heads));
        writer.AddMetadata("llama.attention.head_count_kv", GgufValue.UInt32((uint)p.KvHeads));
        writer.AddMetadata("llama.attention.layer_norm_rms_epsilon", GgufValue.Float32(p.RmsEps));
        foreach (var kv in tokenizer)
        {
            writer.AddMetadata(kv.Key, kv.Value);
        }

        ulong e = (ulong)p.Embedding, kvE = (ulong)p.KvEmbedding, ff = (ulong)p.FeedForward, v = (ulong)p.Vocab;
        writer.AddTensor("token_embd.weight", GgmlType.F16, e, v);
        for (var i = 0; i < p.Layers; i++)
        {
            writer.AddTensor($"blk.{i}.attn_norm.weight", GgmlType.F32, e);
            writer.AddTensor($"blk.{i}.attn_q.weight", GgmlType.F16, e, e);
            writer.AddTensor($"blk.{i}.attn_k.weight", GgmlType.F16, e, kvE);
            writer.AddTensor($"blk.{i}.attn_v.weight", GgmlType.F16, e, kvE);
            writer.AddTensor($"blk.{i}.attn_output.weight", GgmlType.F16, e, e);
            writer.AddTensor($"blk.{i}.ffn_norm.weight", GgmlType.F32, e);
            writer.AddTensor($"blk.{i}.ffn_gate.weight", GgmlType.F16, e, ff);
            writer.AddTensor($"blk.{i}.ffn_up.weight", GgmlType.F16, e, ff);
            writer.AddTensor($"blk.{i}.ffn_down.weight", GgmlType.F16, ff, e);
        }

        writer.AddTensor("output_norm.weight", GgmlType.F32, e);
        writer.AddTensor("output.weight", GgmlType.F16, e, v);
    }

    private static async Task WriteF16Async(
        SynthesisOptions options,
        IReadOnlyList<KeyValuePair<string, GgufValue>> tokenizer,
        string path,
        IProgress<SynthesisProgress>? progress,
        CancellationToken cancellationToken)
    {
        await using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20, FileOptions.Asynchronous);
        var writer = new GgufWriter(file);
        Declare(writer, options.Preset, tokenizer);
        await writer.WriteHeaderAsync(cancellationToken).ConfigureAwait(false);

        var total = (long)writer.Tensors.Aggregate(0UL, (s, t) => s + t.ByteSize);
        long done = 0;
        var random = new RandomWeights(options.Seed, options.Std);
        var buffer = new byte[ChunkBytes];
        const string phase = "writing random F16 weights";
        progress?.Report(new SynthesisProgress(phase, 0, total));
        while (writer.CurrentTensor is { } tensor)
        {
            var remaining = tensor.ByteSize;
            while (remaining > 0)
            {
                var n = (int)Math.Min(remaining, (ulong)buffer.Length);
                var chunk = buffer.AsMemory(0, n);
                if (tensor.Type == GgmlType.F32)
                {
                    // Norm weights: ones, as a freshly initialised RMSNorm.
                    MemoryMarshal.Cast<byte, float>(chunk.Span).Fill(1f);
                }
                else
                {
                    random.FillF16(chunk.Span);
                }

                await writer.WriteTensorDataAsync(chunk, cancellationToken).ConfigureAwait(false);
                remaining -= (ulong)n;
                done += n;
                progress?.Report(new SynthesisProgress(phase, done, total));
            }
        }

        await writer.FinishAsync(cancellationToken).ConfigureAwait(false);
    }
}
