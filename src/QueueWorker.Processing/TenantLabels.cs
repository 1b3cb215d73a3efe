namespace QueueWorker.Processing;

/// <summary>
/// Bounds a label's cardinality: the first <c>max</c> distinct values are kept as they are (cut to
/// <see cref="MaxLength"/> characters), every later one becomes <see cref="Other"/>. Thread-safe.
/// </summary>
public sealed class TenantLabels(int max)
{
    public const string Other = "other";
    public const int MaxLength = 64;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _seen = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    public string Label(string tenant)
    {
        var value = tenant.Length > MaxLength ? tenant[..MaxLength] : tenant;
        if (_seen.ContainsKey(value)) return value;
        lock (_gate)
        {
            if (_seen.ContainsKey(value)) return value;
            if (_seen.Count >= max) return Other;
            _seen.TryAdd(value, 0);
            return value;
        }
    }
}
