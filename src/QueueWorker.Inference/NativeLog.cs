using System.Text;
using LLama.Native;
using Microsoft.Extensions.Logging;

namespace QueueWorker.Inference;

/// <summary>
/// Routes llama.cpp's log (noisy, and split into fragments) to an <see cref="ILogger"/>: whole lines, errors and
/// warnings at their level, the rest at Debug. The callback is process-wide; the latest engine's logger wins.
/// </summary>
internal static class NativeLog
{
    private static readonly Lock Gate = new();
    private static readonly StringBuilder Line = new();
    private static ILogger? _target;
    private static LogLevel _lineLevel = LogLevel.Debug;
    private static bool _installed;

    public static void Attach(ILogger logger)
    {
        lock (Gate)
        {
            _target = logger;
            if (_installed) return;
            _installed = true;
        }
        // Before the native library loads, the config route also captures the loader's own messages.
        if (!NativeLibraryConfig.LLama.LibraryHasLoaded) NativeLibraryConfig.All.WithLogCallback(OnNative);
        else NativeLogConfig.llama_log_set(OnNative);
    }

    private static void OnNative(LLamaLogLevel level, string message)
    {
        lock (Gate)
        {
            if (level != LLamaLogLevel.Continue)
            {
                Emit();
                _lineLevel = level switch
                {
                    LLamaLogLevel.Error => LogLevel.Error,
                    LLamaLogLevel.Warning => LogLevel.Warning,
                    _ => LogLevel.Debug,
                };
            }
            Line.Append(message);
            if (message.EndsWith('\n')) Emit();
        }
    }

    private static void Emit()
    {
        var text = Line.ToString().Trim();
        Line.Clear();
        if (text.Length == 0 || text.All(c => c == '.')) return;
        if (_target is { } logger && logger.IsEnabled(_lineLevel)) Log.Native(logger, _lineLevel, text);
    }
}
