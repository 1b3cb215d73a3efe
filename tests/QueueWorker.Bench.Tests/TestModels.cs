namespace QueueWorker.Bench.Tests;

/// <summary>Finds the shared test models: $QW_TEST_MODELS_DIR, else a shared/models folder above the test binaries.</summary>
internal static class TestModels
{
    public static string TinyRandom => Find("llama-2-tiny-random.gguf");

    public static string Find(string file)
    {
        var dir = Environment.GetEnvironmentVariable("QW_TEST_MODELS_DIR");
        if (!string.IsNullOrEmpty(dir))
        {
            var p = Path.Combine(dir, file);
            return File.Exists(p) ? p : throw new FileNotFoundException($"QW_TEST_MODELS_DIR={dir} has no {file}", p);
        }

        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var p = Path.Combine(d.FullName, "shared", "models", file);
            if (File.Exists(p))
            {
                return p;
            }
        }

        // A missing model fails the test: nothing is skipped for want of a dependency.
        throw new FileNotFoundException($"{file} not found in any shared/models above {AppContext.BaseDirectory}; set QW_TEST_MODELS_DIR", file);
    }
}

/// <summary>A temporary folder removed after the test class.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateDirectory(System.IO.Path.Combine(System.IO.Path.GetTempPath(), "qw-bench-tests-" + Guid.NewGuid().ToString("N"))).FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp folder is harmless.
        }
    }
}
