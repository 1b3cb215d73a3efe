using System.Security.Cryptography;

namespace QueueWorker.Inference.Models;

/// <summary>A model file that can be fetched from its public source when it is nowhere on disk.</summary>
/// <param name="FileName">Name on disk.</param>
/// <param name="Url">Public source.</param>
/// <param name="Sha256">Expected SHA-256 (lower-case hex); a download that differs is deleted.</param>
public sealed record ModelSource(string FileName, Uri Url, string Sha256)
{
    /// <summary>The default model: karpathy's stories260K (TinyStories, MIT), the GGUF that llama.cpp's own CI uses.</summary>
    public static ModelSource Stories260K { get; } = new(
        "stories260K.gguf",
        new Uri("https://huggingface.co/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf"),
        "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d");
}

/// <summary>
/// Downloads a model to a folder with a SHA-256 check: written to a temporary file, checked, then
/// moved into place, so a half-written or tampered file is never loaded.
/// </summary>
public sealed class ModelDownloader(HttpClient http)
{
    public async Task<string> DownloadAsync(ModelSource source, string directory, IProgress<(long Done, long? Total)>? progress, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(directory);
        var target = Path.Combine(directory, source.FileName);
        var partial = target + $".{Environment.ProcessId}.partial";
        try
        {
            using var response = await http.GetAsync(source.Url, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            if (!response.IsSuccessStatusCode)
                throw new IOException($"Downloading {source.Url} failed: HTTP {(int)response.StatusCode} {response.ReasonPhrase}.");
            var total = response.Content.Headers.ContentLength;

            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            await using (var input = await response.Content.ReadAsStreamAsync(cancellationToken))
            await using (var output = File.Create(partial))
            {
                var buffer = new byte[81920];
                long done = 0;
                int read;
                while ((read = await input.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    sha.AppendData(buffer, 0, read);
                    await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                    done += read;
                    progress?.Report((done, total));
                }
            }

            var actual = Convert.ToHexStringLower(sha.GetHashAndReset());
            if (!actual.Equals(source.Sha256, StringComparison.OrdinalIgnoreCase))
                throw new IOException($"Downloaded {source.FileName} has SHA-256 {actual}, expected {source.Sha256}: the file was discarded.");
            File.Move(partial, target, overwrite: true);
            return target;
        }
        finally
        {
            if (File.Exists(partial)) File.Delete(partial);
        }
    }
}
