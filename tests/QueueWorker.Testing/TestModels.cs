namespace QueueWorker.Testing;

/// <summary>
/// The real model files: <c>QW_TEST_MODELS_DIR</c> when set, else the first <c>shared/models</c> (or <c>models</c>)
/// folder above the test binaries (../shared/models beside the repository). A missing model fails the test.
/// </summary>
public static class TestModels
{
    public const string Stories260KFile = "stories260K.gguf";

    public const string TinyRandomFile = "llama-2-tiny-random.gguf";

    /// <summary>A 260K-parameter llama trained on TinyStories: real text, fast.</summary>
    public static string Stories260K => Find(Stories260KFile);

    /// <summary>A tiny random-weights llama 2 with the real llama 2 tokenizer and chat template.</summary>
    public static string TinyRandom => Find(TinyRandomFile);

    public static string Find(string file)
    {
        if (TestSettings.Variable(TestSettings.ModelsDirectoryVariable) is { } dir)
        {
            var path = Path.Combine(dir, file);
            return File.Exists(path) ? path : throw new FileNotFoundException($"{TestSettings.ModelsDirectoryVariable}={dir} has no {file}.", path);
        }
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            foreach (var candidate in new[] { Path.Combine(d.FullName, "shared", "models", file), Path.Combine(d.FullName, "models", file) })
            {
                if (File.Exists(candidate))
                    return candidate;
            }
        }
        throw new FileNotFoundException(
            $"Test model {file} not found in shared/models/ or models/ above {AppContext.BaseDirectory}: put ../shared/models beside the repository or set {TestSettings.ModelsDirectoryVariable}.", file);
    }
}
