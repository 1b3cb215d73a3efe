using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace QueueWorker.Cli.Infrastructure;

/// <summary>
/// Log lines for a command-line tool: <c>qw: warning: …</c> on stderr; while a live progress bar runs,
/// through the Spectre console instead, which prints them above the bar rather than through it.
/// </summary>
internal sealed class CliLoggerProvider(CliConsole console, LogLevel minimum) : ILoggerProvider
{
    /// <summary>Set while live progress owns the terminal.</summary>
    public bool RouteThroughAnsi { get; set; }

    public LogLevel Minimum { get; } = minimum;

    public ILogger CreateLogger(string categoryName) => new CliLogger(this);

    public void Dispose()
    {
    }

    private void Write(LogLevel level, string message)
    {
        var prefix = level switch
        {
            >= LogLevel.Error => "error: ",
            LogLevel.Warning => "warning: ",
            _ => "",
        };
        if (RouteThroughAnsi) console.Ansi.MarkupLine("[grey]qw: " + Markup.Escape(prefix + message) + "[/]");
        else console.Message(prefix + message);
    }

    private sealed class CliLogger(CliLoggerProvider provider) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None && logLevel >= provider.Minimum;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            var message = formatter(state, exception);
            if (exception is not null) message += ": " + exception.Message;
            provider.Write(logLevel, message);
        }
    }
}
