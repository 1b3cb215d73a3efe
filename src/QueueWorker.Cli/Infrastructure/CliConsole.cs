using Spectre.Console;

namespace QueueWorker.Cli.Infrastructure;

/// <summary>
/// The streams qw talks through. Results go to <see cref="Out"/> (so they can be piped); messages,
/// warnings and plain progress go to <see cref="Error"/>. Tests pass their own writers.
/// </summary>
/// <param name="Ansi">Spectre rendering on stdout: live progress and the summary table.</param>
/// <param name="Interactive">Both stdout and stderr are terminals: live progress instead of progress lines.</param>
internal sealed record CliConsole(TextWriter Out, TextWriter Error, TextReader In, bool InputRedirected, bool Interactive, IAnsiConsole Ansi)
{
    public static CliConsole FromProcess()
    {
        var interactive = !Console.IsOutputRedirected && !Console.IsErrorRedirected;
        return new CliConsole(Console.Out, Console.Error, Console.In, Console.IsInputRedirected, interactive, AnsiConsole.Console);
    }

    /// <summary>A console writing plain text (no colours, no live rendering) to the given writers.</summary>
    public static CliConsole Plain(TextWriter output, TextWriter error, TextReader? input = null)
    {
        var ansi = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        });
        ansi.Profile.Width = 160;
        return new CliConsole(output, error, input ?? TextReader.Null, input is not null, false, ansi);
    }

    /// <summary>The tool's name, which prefixes every <see cref="Message"/>: qwbench shares this console.</summary>
    public string Name { get; init; } = "qw";

    /// <summary>One line on stderr, prefixed with the tool's name (<c>qw: </c>).</summary>
    public void Message(string text) => Error.WriteLine(Name + ": " + text);
}
