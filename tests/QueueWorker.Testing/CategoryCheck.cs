using System.Reflection;

namespace QueueWorker.Testing;

/// <summary>
/// Every test class says what it needs: <c>[Trait("Category", "Unit")]</c> (neither a broker, nor the model files, nor
/// a worker process: <c>dotnet test --filter Category=Unit</c> runs it anywhere in seconds) or
/// <c>[Trait("Category", "Integration")]</c>. Each test project derives one class from this one, so its own unit run
/// fails when a test class has no category, or another one:
/// <code>[Trait("Category", "Unit")] public sealed class CategoryTests : CategoryCheck;</code>
/// Only a class's own attributes count: xunit's filter does not see a trait a class would inherit.
/// </summary>
public abstract class CategoryCheck
{
    public static readonly string[] Categories = ["Unit", "Integration"];

    [Fact]
    public void EveryTestClassHasACategory()
    {
        var missing = UncategorizedTestClasses(GetType().Assembly);
        Assert.True(missing.Count == 0,
            $"Test classes without exactly one [Trait(\"Category\", \"Unit\")] or [Trait(\"Category\", \"Integration\")]: {string.Join(", ", missing)}");
    }

    /// <summary>Every test project of the repository has its <see cref="CategoryCheck"/>, so a new project cannot go unchecked.</summary>
    [Fact]
    public void EveryTestProjectChecksItsCategories()
    {
        var tests = Path.Combine(TestSettings.RepositoryRoot, "tests");
        var withoutCheck = Directory.EnumerateFiles(tests, "*.csproj", SearchOption.AllDirectories)
            .Where(p => File.ReadAllText(p).Contains("<IsTestProject>true</IsTestProject>", StringComparison.Ordinal))
            .Select(p => Path.GetDirectoryName(p)!)
            .Where(dir => !Directory.EnumerateFiles(dir, "*.cs", SearchOption.AllDirectories)
                .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                            && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
                .Any(f => File.ReadAllText(f).Contains(": CategoryCheck", StringComparison.Ordinal)))
            .Select(Path.GetFileName)
            .Order(StringComparer.Ordinal)
            .ToList();
        Assert.True(withoutCheck.Count == 0,
            $"Test projects without a class deriving from QueueWorker.Testing.CategoryCheck: {string.Join(", ", withoutCheck)}");
    }

    /// <summary>The classes of <paramref name="assembly"/> with a test method but not exactly one Category trait of a known value.</summary>
    public static IReadOnlyList<string> UncategorizedTestClasses(Assembly assembly) =>
        assembly.GetTypes()
            .Where(t => t.IsClass && !t.IsAbstract && IsTestClass(t))
            .Where(t => CategoryOf(t) is not { } category || !Categories.Contains(category))
            .Select(t => t.FullName ?? t.Name)
            .Order(StringComparer.Ordinal)
            .ToList();

    /// <summary>The single Category trait declared on <paramref name="type"/> itself, or null when it has none or several.</summary>
    public static string? CategoryOf(Type type)
    {
        var categories = type.GetCustomAttributesData()
            .Where(a => a.AttributeType == typeof(TraitAttribute) && a.ConstructorArguments.Count == 2
                        && (string?)a.ConstructorArguments[0].Value == "Category")
            .Select(a => (string?)a.ConstructorArguments[1].Value)
            .ToList();
        return categories.Count == 1 ? categories[0] : null;
    }

    private static bool IsTestClass(Type type) =>
        type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static)
            .Any(m => m.GetCustomAttributes<FactAttribute>(inherit: true).Any());
}
