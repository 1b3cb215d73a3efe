namespace QueueWorker.IntegrationTests;

/// <summary>Where the tests find the broker, the models and the worker binary. A missing one fails the test with the fix.</summary>
public static class TestEnvironment
{
    public static string RabbitMqUri => Environment.GetEnvironmentVariable("QW_TEST_RABBITMQ_URI") ?? "amqp://guest:guest@127.0.0.1:5672/";

    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    public static string ModelsDirectory
    {
        get
        {
            var dir = Environment.GetEnvironmentVariable("QW_TEST_MODELS_DIR") ?? Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared", "models"));
            if (!Directory.Exists(dir))
                throw new InvalidOperationException($"Test models not found in {dir}: put ../shared/models beside the repository or set QW_TEST_MODELS_DIR.");
            return dir;
        }
    }

    public static string Stories260K => Model("stories260K.gguf");
    public static string TinyRandomLlama => Model("llama-2-tiny-random.gguf");

    private static string Model(string file)
    {
        var path = Path.Combine(ModelsDirectory, file);
        return File.Exists(path) ? path : throw new InvalidOperationException($"Test model {path} not found.");
    }

    /// <summary>The worker binary built beside these tests (same configuration).</summary>
    public static string WorkerDll => Built("QueueWorker", "QueueWorker.dll");

    /// <summary>The qw command line built beside these tests.</summary>
    public static string QwDll => Built("QueueWorker.Cli", "qw.dll");

    private static string Built(string project, string file)
    {
        var configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name; // bin/<Configuration>/net10.0/
        var dll = Path.Combine(RepositoryRoot, "src", project, "bin", configuration, "net10.0", file);
        return File.Exists(dll) ? dll : throw new InvalidOperationException($"{dll} not found: build the solution first.");
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "QueueWorker.sln"))) return dir.FullName;
        throw new InvalidOperationException("QueueWorker.sln not found above " + AppContext.BaseDirectory);
    }
}
