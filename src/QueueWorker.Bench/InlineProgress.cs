namespace QueueWorker.Bench;

/// <summary>An <see cref="IProgress{T}"/> that runs its handler on the reporting thread, in order.</summary>
internal sealed class InlineProgress<T>(Action<T> handler) : IProgress<T>
{
    public void Report(T value) => handler(value);
}
