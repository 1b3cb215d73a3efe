using System.Runtime.InteropServices;
using LLama.Native;

namespace QueueWorker.Inference.Grammar;

/// <summary>
/// The few llama.cpp sampler calls LLamaSharp 0.30 does not expose safely: its <c>AddGrammar</c> adds whatever
/// <c>llama_sampler_init_grammar</c> returns, a null pointer for a grammar that does not compile (a crash later), and
/// its <c>AddClone</c> checks the index against the wrong chain. Resolved from the very library LLamaSharp loaded.
/// </summary>
internal static unsafe class GrammarNative
{
    private static readonly Lazy<Api> Functions = new(Load);

    private sealed class Api
    {
        public required delegate* unmanaged[Cdecl]<IntPtr, IntPtr> ModelGetVocab;
        public required delegate* unmanaged[Cdecl]<IntPtr, byte*, byte*, IntPtr> InitGrammar;
        public required delegate* unmanaged[Cdecl]<IntPtr, IntPtr> Clone;
        public required delegate* unmanaged[Cdecl]<IntPtr, void> Free;
        public required delegate* unmanaged[Cdecl]<IntPtr, IntPtr, void> ChainAdd;
        public required delegate* unmanaged[Cdecl]<IntPtr, TokenDataArray*, void> Apply;
        public required delegate* unmanaged[Cdecl]<IntPtr, int, void> Accept;
    }

    private static Api Load()
    {
        // The name goes through LLamaSharp's own import resolver, so this is the library (and CPU variant) it loaded.
        var library = NativeLibrary.Load("llama", typeof(SafeLLamaSamplerChainHandle).Assembly, null);
        return new Api
        {
            ModelGetVocab = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)NativeLibrary.GetExport(library, "llama_model_get_vocab"),
            InitGrammar = (delegate* unmanaged[Cdecl]<IntPtr, byte*, byte*, IntPtr>)NativeLibrary.GetExport(library, "llama_sampler_init_grammar"),
            Clone = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)NativeLibrary.GetExport(library, "llama_sampler_clone"),
            Free = (delegate* unmanaged[Cdecl]<IntPtr, void>)NativeLibrary.GetExport(library, "llama_sampler_free"),
            ChainAdd = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, void>)NativeLibrary.GetExport(library, "llama_sampler_chain_add"),
            Apply = (delegate* unmanaged[Cdecl]<IntPtr, TokenDataArray*, void>)NativeLibrary.GetExport(library, "llama_sampler_apply"),
            Accept = (delegate* unmanaged[Cdecl]<IntPtr, int, void>)NativeLibrary.GetExport(library, "llama_sampler_accept"),
        };
    }

    /// <summary>A grammar sampler for <paramref name="gbnf"/>, or null when llama.cpp cannot compile it (its log says why).</summary>
    public static GrammarPrototype? Compile(SafeLlamaModelHandle model, string gbnf, string root)
    {
        var api = Functions.Value;
        var added = false;
        model.DangerousAddRef(ref added);
        try
        {
            var vocab = api.ModelGetVocab(model.DangerousGetHandle());
            var text = Marshal.StringToCoTaskMemUTF8(gbnf);
            var start = Marshal.StringToCoTaskMemUTF8(root);
            try
            {
                var sampler = api.InitGrammar(vocab, (byte*)text, (byte*)start);
                return sampler == IntPtr.Zero ? null : new GrammarPrototype(sampler);
            }
            finally
            {
                Marshal.FreeCoTaskMem(text);
                Marshal.FreeCoTaskMem(start);
            }
        }
        finally
        {
            if (added) model.DangerousRelease();
        }
    }

    /// <summary>Adds a fresh copy of <paramref name="prototype"/> (its start state) to the end of <paramref name="chain"/>, which owns it.</summary>
    public static void AddClone(SafeLLamaSamplerChainHandle chain, GrammarPrototype prototype)
    {
        var api = Functions.Value;
        bool chainRef = false, protoRef = false;
        chain.DangerousAddRef(ref chainRef);
        prototype.DangerousAddRef(ref protoRef);
        try
        {
            var copy = api.Clone(prototype.DangerousGetHandle());
            if (copy == IntPtr.Zero) throw new InvalidOperationException("llama_sampler_clone returned no sampler for a compiled grammar.");
            api.ChainAdd(chain.DangerousGetHandle(), copy);
        }
        finally
        {
            if (protoRef) prototype.DangerousRelease();
            if (chainRef) chain.DangerousRelease();
        }
    }

    /// <summary>A fresh copy of <paramref name="prototype"/> (its start state), owned by the caller.</summary>
    public static GrammarState Clone(GrammarPrototype prototype)
    {
        var added = false;
        prototype.DangerousAddRef(ref added);
        try
        {
            var copy = Functions.Value.Clone(prototype.DangerousGetHandle());
            if (copy == IntPtr.Zero) throw new InvalidOperationException("llama_sampler_clone returned no sampler for a compiled grammar.");
            return new GrammarState(copy);
        }
        finally
        {
            if (added) prototype.DangerousRelease();
        }
    }

    /// <summary>
    /// <c>llama_sampler_apply</c> on <paramref name="count"/> candidates at <paramref name="data"/>: a grammar sets the logit of
    /// each candidate it rejects to -infinity (and changes nothing else); a chain runs its samplers and sets
    /// <see cref="TokenDataArray.Selected"/>. The caller keeps <paramref name="sampler"/> alive and the data pinned.
    /// </summary>
    public static TokenDataArray Apply(SafeHandle sampler, LLamaTokenData* data, int count, bool sorted = false)
    {
        var array = new TokenDataArray { Data = data, Size = (nuint)count, Selected = -1, Sorted = sorted ? (byte)1 : (byte)0 };
        Functions.Value.Apply(sampler.DangerousGetHandle(), &array);
        return array;
    }

    /// <inheritdoc cref="Apply(SafeHandle, LLamaTokenData*, int, bool)"/>
    public static long Apply(SafeHandle sampler, Span<LLamaTokenData> candidates)
    {
        fixed (LLamaTokenData* data = candidates)
        {
            var selected = Apply(sampler, data, candidates.Length).Selected;
            GC.KeepAlive(sampler);
            return selected;
        }
    }

    /// <summary><c>llama_sampler_accept</c>: a grammar advances its state over the token's text; a chain passes it to every sampler.</summary>
    public static void Accept(SafeHandle sampler, LLamaToken token) => Functions.Value.Accept(sampler.DangerousGetHandle(), (int)token);

    internal static void Free(IntPtr sampler) => Functions.Value.Free(sampler);
}

/// <summary>llama.cpp's <c>llama_token_data_array</c>, field for field.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct TokenDataArray
{
    public LLamaTokenData* Data;
    public nuint Size;
    /// <summary>Index (into <see cref="Data"/>) of the token a chain selected, -1 for none.</summary>
    public long Selected;
    public byte Sorted;
}

/// <summary>A job's own grammar sampler (a clone of a <see cref="GrammarPrototype"/>): its state follows the job's output.</summary>
internal sealed class GrammarState : SafeHandle
{
    public GrammarState(IntPtr sampler) : base(IntPtr.Zero, ownsHandle: true) => SetHandle(sampler);

    public override bool IsInvalid => handle == IntPtr.Zero;

    protected override bool ReleaseHandle()
    {
        GrammarNative.Free(handle);
        return true;
    }
}

/// <summary>A compiled grammar sampler in its start state, never used to sample: jobs sample with clones of it.</summary>
internal sealed class GrammarPrototype : SafeHandle
{
    public GrammarPrototype(IntPtr sampler) : base(IntPtr.Zero, ownsHandle: true) => SetHandle(sampler);

    public override bool IsInvalid => handle == IntPtr.Zero;

    protected override bool ReleaseHandle()
    {
        GrammarNative.Free(handle);
        return true;
    }
}
