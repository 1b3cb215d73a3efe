namespace QueueWorker.Bench.ModelTools;

/// <summary>
/// The shapes of a llama-architecture model (what decides its speed). Every preset uses the 32000-token
/// llama SPM vocabulary, because that is the tokenizer a synthetic model can borrow here.
/// </summary>
public sealed record ModelPreset(
    string Name,
    string Description,
    int Layers,
    int Embedding,
    int Heads,
    int KvHeads,
    int FeedForward,
    int Vocab,
    int ContextLength,
    float RopeTheta = 10000f,
    float RmsEps = 1e-5f)
{
    public int HeadDim => Embedding / Heads;

    public int KvEmbedding => HeadDim * KvHeads;

    /// <summary>Parameters the GGUF will hold (embeddings, output, every block's matrices and norms, final norm).</summary>
    public long ParameterCount
    {
        get
        {
            long e = Embedding, kv = KvEmbedding, ff = FeedForward, v = Vocab;
            var perLayer = e * e + e * kv + e * kv + e * e + 3 * e * ff + 2 * e;
            return v * e + Layers * perLayer + e + v * e;
        }
    }

    /// <summary>Fails with a clear message when the shapes cannot form a llama model.</summary>
    public void Validate()
    {
        void Rule(bool ok, string message)
        {
            if (!ok)
            {
                throw new ArgumentException($"preset '{Name}': {message}");
            }
        }

        Rule(Layers > 0 && Embedding > 0 && Heads > 0 && KvHeads > 0 && FeedForward > 0 && Vocab > 0 && ContextLength > 0, "every size must be positive");
        Rule(Embedding % Heads == 0, $"embedding {Embedding} must be divisible by heads {Heads}");
        Rule(Heads % KvHeads == 0, $"heads {Heads} must be divisible by kv heads {KvHeads}");
        Rule(HeadDim % 2 == 0, $"head dim {HeadDim} must be even (rope)");
        // F16 rows need no blocking, but every quant type this tool offers packs rows in blocks of 32.
        Rule(Embedding % 32 == 0 && FeedForward % 32 == 0, $"embedding {Embedding} and feed-forward {FeedForward} must be multiples of 32");
    }

    /// <summary>Known presets, smallest first.</summary>
    public static IReadOnlyList<ModelPreset> All { get; } =
    [
        new("llama-micro", "~4M parameters: 2 layers x 64; loads in milliseconds, for tests", 2, 64, 4, 2, 128, 32000, 512),
        new("llama-tiny", "~106M parameters: 8 layers x 768; for quick benchmark runs", 8, 768, 12, 12, 2048, 32000, 2048),
        new("tinyllama-1.1b", "TinyLlama-1.1B shapes: 22 layers x 2048, GQA 32/4 heads, 5632 FFN", 22, 2048, 32, 4, 5632, 32000, 2048),
        new("open-llama-3b", "OpenLLaMA-3B shapes: 26 layers x 3200, 32 heads, 8640 FFN", 26, 3200, 32, 32, 8640, 32000, 2048),
        new("llama-2-7b", "Llama-2-7B shapes: 32 layers x 4096, 32 heads, 11008 FFN (13.5 GB as F16)", 32, 4096, 32, 32, 11008, 32000, 4096),
    ];

    public static ModelPreset Get(string name) =>
        All.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"unknown preset '{name}'; known: {string.Join(", ", All.Select(p => p.Name))}");
}
