using System.Text.Json;

namespace QueueWorker.Ops.Tests;

/// <summary>Just enough of a Dockerfile parser for the checks: instructions per stage, line continuations joined.</summary>
internal sealed class Dockerfile
{
    public sealed record Instruction(string Keyword, string Arguments);

    public IReadOnlyList<IReadOnlyList<Instruction>> Stages { get; }

    public IReadOnlyList<Instruction> Final => Stages[^1];

    public Dockerfile(string text)
    {
        var stages = new List<List<Instruction>>();
        var logical = new System.Text.StringBuilder();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (logical.Length == 0 && line.TrimStart().StartsWith('#')) continue;
            if (logical.Length > 0 && line.TrimStart().StartsWith('#')) continue; // comments inside continuations
            if (line.EndsWith('\\'))
            {
                logical.Append(line[..^1]).Append(' ');
                continue;
            }
            logical.Append(line);
            var full = logical.ToString().Trim();
            logical.Clear();
            if (full.Length == 0) continue;
            var space = full.IndexOf(' ', StringComparison.Ordinal);
            var keyword = (space < 0 ? full : full[..space]).ToUpperInvariant();
            var args = space < 0 ? "" : full[(space + 1)..].Trim();
            if (keyword == "FROM") stages.Add([]);
            if (stages.Count == 0) continue; // ARG before the first FROM
            stages[^1].Add(new Instruction(keyword, args));
        }
        Stages = stages;
    }

    public static Dockerfile Load() => new(Repo.Read("Dockerfile"));

    public IEnumerable<string> FinalArgs(string keyword) => Final.Where(i => i.Keyword == keyword).Select(i => i.Arguments);

    /// <summary>ENV of the final stage, <c>KEY=value</c> pairs (values here are unquoted and without spaces).</summary>
    public IReadOnlyDictionary<string, string> FinalEnv()
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var args in FinalArgs("ENV"))
        {
            foreach (var pair in args.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                var eq = pair.IndexOf('=', StringComparison.Ordinal);
                Assert.True(eq > 0, $"ENV item '{pair}' is not KEY=value");
                env[pair[..eq]] = pair[(eq + 1)..].Trim('"');
            }
        }
        return env;
    }

    /// <summary>The exec-form command of the final stage's HEALTHCHECK.</summary>
    public IReadOnlyList<string> HealthCheckCommand()
    {
        var args = Assert.Single(FinalArgs("HEALTHCHECK"));
        var cmd = args.IndexOf("CMD [", StringComparison.Ordinal);
        Assert.True(cmd >= 0, "HEALTHCHECK should use the exec form: CMD [\"...\"]");
        return JsonSerializer.Deserialize<string[]>(args[(cmd + 4)..])!;
    }
}
