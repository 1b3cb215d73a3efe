namespace QueueWorker.Inference;

/// <summary>Where the model file was found (<see cref="Path"/>), how, or why not (<see cref="Error"/>, one line naming the key).</summary>
public sealed record ModelLocation(string? Path, string Source, string? Error);

/// <summary>
/// Finds the GGUF file: <c>Model:Path</c> when set (it must exist), else <see cref="DefaultModelFile"/> in
/// <c>../shared/models/</c> and <c>./models/</c> under the current directory, then in <c>models/</c> and
/// <c>shared/models/</c> of every directory from <see cref="AppContext.BaseDirectory"/> up to the root
/// (so <c>dotnet run --project src/QueueWorker</c> and the test runner find the models beside the repository).
/// </summary>
public static class ModelLocator
{
    public const string DefaultModelFile = "stories260K.gguf";
    private const string Key = ModelOptions.Section + ":Path";

    public static ModelLocation Locate(string? configuredPath) =>
        Locate(configuredPath, Directory.GetCurrentDirectory(), AppContext.BaseDirectory);

    public static ModelLocation Locate(string? configuredPath, string currentDirectory, string baseDirectory)
    {
        if (!string.IsNullOrWhiteSpace(configuredPath))
        {
            var full = System.IO.Path.GetFullPath(configuredPath, currentDirectory);
            if (File.Exists(full)) return new ModelLocation(full, $"{Key} = '{configuredPath}'", null);
            var why = Directory.Exists(full) ? "is a directory, not a GGUF file" : "does not exist";
            return new ModelLocation(null, Key, $"{Key} = '{configuredPath}': the file {why} (resolved to '{full}').");
        }

        var candidates = DefaultCandidates(currentDirectory, baseDirectory);
        foreach (var candidate in candidates)
        {
            if (File.Exists(candidate))
                return new ModelLocation(candidate, $"{Key} is empty; found the default model {DefaultModelFile}", null);
        }
        return new ModelLocation(null, Key,
            $"{Key} is empty and the default model {DefaultModelFile} was not found in {string.Join(", ", candidates.Select(System.IO.Path.GetDirectoryName).Distinct())}; set {Key} to a GGUF file.");
    }

    public static IReadOnlyList<string> DefaultCandidates(string currentDirectory, string baseDirectory)
    {
        List<string> list =
        [
            System.IO.Path.GetFullPath(System.IO.Path.Combine(currentDirectory, "..", "shared", "models", DefaultModelFile)),
            System.IO.Path.GetFullPath(System.IO.Path.Combine(currentDirectory, "models", DefaultModelFile)),
        ];
        for (var dir = new DirectoryInfo(baseDirectory); dir is not null; dir = dir.Parent)
        {
            list.Add(System.IO.Path.Combine(dir.FullName, "models", DefaultModelFile));
            list.Add(System.IO.Path.Combine(dir.FullName, "shared", "models", DefaultModelFile));
        }
        return list.Distinct(StringComparer.Ordinal).ToList();
    }
}
