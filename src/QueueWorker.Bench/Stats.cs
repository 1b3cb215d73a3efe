namespace QueueWorker.Bench;

/// <summary>Median with min–max of repeated measurements (the bench reports nothing else: means hide outliers).</summary>
public sealed record Stat(double Median, double Min, double Max, int N, IReadOnlyList<double> Samples)
{
    public static Stat Of(IReadOnlyCollection<double> samples)
    {
        if (samples.Count == 0)
        {
            throw new ArgumentException("a statistic needs at least one sample", nameof(samples));
        }

        var sorted = samples.Order().ToArray();
        var n = sorted.Length;
        var median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
        return new Stat(median, sorted[0], sorted[^1], n, samples.ToArray());
    }

    /// <summary>True when the two min–max ranges overlap: the difference of medians may be noise.</summary>
    public bool Overlaps(Stat other) => Min <= other.Max && other.Min <= Max;
}

/// <summary>Collects samples per metric name, in insertion order.</summary>
public sealed class SampleSet
{
    private readonly Dictionary<string, List<double>> _samples = [];
    private readonly List<string> _order = [];

    public void Add(string metric, double value)
    {
        if (!_samples.TryGetValue(metric, out var list))
        {
            _samples[metric] = list = [];
            _order.Add(metric);
        }

        list.Add(value);
    }

    public IReadOnlyDictionary<string, Stat> Summarize()
    {
        var result = new Dictionary<string, Stat>();
        foreach (var metric in _order)
        {
            result[metric] = Stat.Of(_samples[metric]);
        }

        return result;
    }
}
