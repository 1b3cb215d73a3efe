using LLama.Native;
using QueueWorker.Contracts;

namespace QueueWorker.Inference.Grammar;

/// <summary>
/// Compiled grammars by GBNF text, least recently used dropped first: a batch repeats one schema thousands of times,
/// and compiling it once per job would cost more than the job's first token. A dropped grammar is freed by its
/// finalizer once no waiting job holds it (a job takes its grammar before it reaches the scheduler).
/// </summary>
internal sealed class GrammarCache(SafeLlamaModelHandle model, int capacity)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, LinkedListNode<(string Gbnf, GrammarPrototype Grammar)>> _map = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Gbnf, GrammarPrototype Grammar)> _order = new();

    public int Count
    {
        get
        {
            lock (_lock) return _map.Count;
        }
    }

    /// <summary>The compiled grammar; <see cref="InferenceException"/> (<c>invalid_field</c>, naming the job's field) when llama.cpp refuses it.</summary>
    public GrammarPrototype Get(GrammarConstraint constraint)
    {
        ArgumentNullException.ThrowIfNull(constraint);
        lock (_lock)
        {
            if (_map.TryGetValue(constraint.Gbnf, out var hit))
            {
                _order.Remove(hit);
                _order.AddFirst(hit);
                return hit.Value.Grammar;
            }
        }
        // Compiled outside the lock: a large grammar takes milliseconds, and two jobs compiling the same one is harmless.
        var compiled = GrammarNative.Compile(model, constraint.Gbnf, "root")
            ?? throw new InferenceException(ErrorCodes.InvalidField,
                $"\"{constraint.Field}\": llama.cpp could not compile the grammar (a syntax error, no \"root\" rule, an undefined rule or left recursion; the worker log has llama.cpp's message).",
                constraint.Field);
        lock (_lock)
        {
            if (_map.TryGetValue(constraint.Gbnf, out var raced)) return raced.Value.Grammar;
            _map[constraint.Gbnf] = _order.AddFirst((constraint.Gbnf, compiled));
            while (_map.Count > capacity)
            {
                var last = _order.Last!;
                _order.RemoveLast();
                _map.Remove(last.Value.Gbnf);
            }
        }
        return compiled;
    }
}
