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

    internal static void Free(IntPtr sampler) => Functions.Value.Free(sampler);
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
