namespace QueueWorker.Testing;

/// <summary>
/// Where the tests find their dependencies, one environment variable each. A missing dependency fails the test that
/// needs it with the variable to set: nothing is skipped.
/// </summary>
public static class TestSettings
{
    /// <summary>The shared broker's AMQP URI.</summary>
    public const string RabbitMqUriVariable = "QW_TEST_RABBITMQ_URI";

    /// <summary>The shared broker's Erlang node, for rabbitmqctl.</summary>
    public const string RabbitMqNodeVariable = "QW_TEST_RABBITMQ_NODE";

    /// <summary>The folder holding the test models (stories260K.gguf, llama-2-tiny-random.gguf).</summary>
    public const string ModelsDirectoryVariable = "QW_TEST_MODELS_DIR";

    public const string DefaultRabbitMqUri = "amqp://guest:guest@127.0.0.1:5672/";

    public const string DefaultRabbitMqNode = "rabbit@localhost";

    public static string RabbitMqUri => Variable(RabbitMqUriVariable) ?? DefaultRabbitMqUri;

    public static string RabbitMqNode => Variable(RabbitMqNodeVariable) ?? DefaultRabbitMqNode;

    /// <summary>True on CI (<c>CI=true</c>, as GitHub Actions, GitLab and most CI services set it): waits are longer there.</summary>
    public static bool IsCI => string.Equals(Variable("CI"), "true", StringComparison.OrdinalIgnoreCase) || Variable("CI") == "1";

    /// <summary>The repository: the first folder above the test binaries that holds QueueWorker.sln.</summary>
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    /// <summary>A file built by a project of this repository in the test's own configuration (bin/&lt;Configuration&gt;/net10.0/).</summary>
    public static string Built(string project, string file)
    {
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = output.Parent!.Name;
        var path = Path.Combine(RepositoryRoot, "src", project, "bin", configuration, output.Name, file);
        return File.Exists(path) ? path : throw new InvalidOperationException($"{path} not found: build the solution first.");
    }

    /// <summary>The worker binary (src/QueueWorker) built beside the tests.</summary>
    public static string WorkerDll => Built("QueueWorker", "QueueWorker.dll");

    /// <summary>The qw command line (src/QueueWorker.Cli) built beside the tests.</summary>
    public static string QwDll => Built("QueueWorker.Cli", "qw.dll");

    /// <summary>An environment variable, or null when unset or empty.</summary>
    public static string? Variable(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : null;

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "QueueWorker.sln")))
                return dir.FullName;
        throw new InvalidOperationException("QueueWorker.sln not found above " + AppContext.BaseDirectory);
    }
}
