namespace QueueWorker.Inference.Tests;

[Trait("Category", "Unit")]
public sealed class ModelLocatorTests : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("qw-locator-");

    public void Dispose() => _root.Delete(recursive: true);

    private string Touch(params string[] parts)
    {
        var path = Path.Combine([_root.FullName, .. parts]);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, "x");
        return path;
    }

    [Fact]
    public void Locate_ConfiguredPathExists_UsesIt()
    {
        var file = Touch("m", "my.gguf");

        var location = ModelLocator.Locate("m/my.gguf", _root.FullName, _root.FullName);

        Assert.Equal(file, location.Path);
    }

    [Fact]
    public void Locate_ConfiguredPathMissing_ErrorNamesKeyAndValue()
    {
        Touch("shared", "models", ModelLocator.DefaultModelFile); // a default exists but must not be used

        var location = ModelLocator.Locate("/nowhere/model.gguf", _root.FullName, _root.FullName);

        Assert.Null(location.Path);
        Assert.StartsWith("Model:Path = '/nowhere/model.gguf': the file does not exist", location.Error);
        Assert.DoesNotContain('\n', location.Error!);
    }

    [Fact]
    public void Locate_NotConfigured_FindsSharedModelsBesideCurrentDirectory()
    {
        var expected = Touch("shared", "models", ModelLocator.DefaultModelFile);
        var repo = Directory.CreateDirectory(Path.Combine(_root.FullName, "main")).FullName;

        Assert.Equal(expected, ModelLocator.Locate("", repo, "/").Path);
    }

    [Fact]
    public void Locate_NotConfigured_WalksUpFromBaseDirectory()
    {
        var expected = Touch("shared", "models", ModelLocator.DefaultModelFile);
        var bin = Directory.CreateDirectory(Path.Combine(_root.FullName, "main", "src", "QueueWorker", "bin", "Debug", "net10.0")).FullName;
        var elsewhere = Directory.CreateTempSubdirectory("qw-cwd-");
        try
        {
            Assert.Equal(expected, ModelLocator.Locate(null, elsewhere.FullName, bin).Path);
        }
        finally
        {
            elsewhere.Delete();
        }
    }

    [Fact]
    public void Locate_NotConfiguredNotFound_ErrorTellsToSetModelPath()
    {
        var empty = Directory.CreateDirectory(Path.Combine(_root.FullName, "a", "b")).FullName;

        var location = ModelLocator.Locate(null, empty, empty);

        Assert.Null(location.Path);
        Assert.StartsWith($"Model:Path is empty and the default model {ModelLocator.DefaultModelFile} was not found in ", location.Error);
        Assert.Contains(Path.Combine(empty, "models"), location.Error);
        Assert.EndsWith("set Model:Path to a GGUF file.", location.Error);
    }

    [Fact]
    public void Locate_ConfiguredPathIsDirectory_SaysSo()
    {
        var location = ModelLocator.Locate(_root.FullName, _root.FullName, _root.FullName);

        Assert.Contains("is a directory", location.Error);
    }

    [Fact]
    public void Validate_MissingConfiguredPathWithDownloadOn_StillFails()
    {
        // Downloads stand in only for the default model: a configured file that is missing is an error.
        var result = new ModelOptionsValidator().Validate(null, new ModelOptions { Path = "/nonexistent/model.gguf", DownloadDefault = true });

        Assert.True(result.Failed);
        Assert.Contains("Model:Path = '/nonexistent/model.gguf'", result.FailureMessage);
    }
}
