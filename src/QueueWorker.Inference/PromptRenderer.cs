using System.Text;
using LLama;
using LLama.Exceptions;
using LLama.Native;
using QueueWorker.Contracts;

namespace QueueWorker.Inference;

/// <summary>How chat messages become a prompt.</summary>
public enum ChatFormatKind
{
    /// <summary>The chat template stored in the GGUF file.</summary>
    ModelTemplate,
    /// <summary><c>Model:ChatTemplate</c>: a llama.cpp built-in template name (chatml, llama2, zephyr, ...).</summary>
    ConfiguredTemplate,
    /// <summary>No template: "System: …\nUser: …\nAssistant:" (see <see cref="PromptRenderer.RenderTranscript"/>).</summary>
    PlainTranscript,
}

/// <summary>The chosen chat format and why (logged at startup).</summary>
public sealed record ChatFormat(ChatFormatKind Kind, string? Template, string Description);

/// <summary>
/// Turns a request into prompt tokens. Raw prompts are tokenized with special tokens off unless
/// <c>Model:ParseSpecialInPrompt</c> is on (then text such as "&lt;/s&gt;" in a prompt becomes the control token). Chat messages are rendered with a template, and only the template's scaffolding may produce
/// control tokens: message content is tokenized with special tokens off, so a user writing "&lt;/s&gt;" or
/// "&lt;|im_end|&gt;" gets those characters, never the control token.
/// </summary>
internal sealed class PromptRenderer
{
    private readonly SafeLlamaModelHandle _model;
    private readonly SafeLlamaModelHandle.Vocabulary _vocab;

    public PromptRenderer(SafeLlamaModelHandle model, ChatFormat format, bool parseSpecialInPrompt = false)
    {
        _model = model;
        _vocab = model.Vocab;
        Format = format;
        ParseSpecialInPrompt = parseSpecialInPrompt;
    }

    public ChatFormat Format { get; }

    /// <summary><c>Model:ParseSpecialInPrompt</c>: a raw prompt's special-token text becomes control tokens.</summary>
    public bool ParseSpecialInPrompt { get; }

    /// <summary>
    /// Picks the chat format: the model's own template when llama.cpp can apply it, else <c>Model:ChatTemplate</c>,
    /// else the plain transcript. A configured template that llama.cpp does not know is an error naming the key.
    /// </summary>
    public static ChatFormat ChooseFormat(SafeLlamaModelHandle model, string? configuredTemplate, Action<string>? warn = null)
    {
        var own = model.GetTemplate(null, strict: false);
        if (!string.IsNullOrEmpty(own))
        {
            if (TryApply(own, out _)) return new ChatFormat(ChatFormatKind.ModelTemplate, own, "the model's own chat template");
            warn?.Invoke("The model's chat template is not one llama.cpp's built-in renderer recognises; falling back to "
                + (string.IsNullOrWhiteSpace(configuredTemplate) ? "the plain transcript format." : $"Model:ChatTemplate = '{configuredTemplate}'."));
        }
        if (!string.IsNullOrWhiteSpace(configuredTemplate))
        {
            if (!TryApply(configuredTemplate, out var error))
                throw new InvalidOperationException(
                    $"Model:ChatTemplate = '{configuredTemplate}': not a chat template llama.cpp knows (use a built-in name such as chatml, llama2, llama3, zephyr, mistral-v7, gemma, phi3): {error}");
            return new ChatFormat(ChatFormatKind.ConfiguredTemplate, configuredTemplate, $"Model:ChatTemplate = '{configuredTemplate}'");
        }
        return new ChatFormat(ChatFormatKind.PlainTranscript, null,
            "plain transcript (\"System: …\\nUser: …\\nAssistant:\"): the model has no chat template and Model:ChatTemplate is empty");
    }

    private static bool TryApply(string template, out string? error)
    {
        try
        {
            var t = new LLamaTemplate(template) { AddAssistant = true };
            t.Add("system", "s");
            t.Add("user", "u");
            _ = t.Apply();
            error = null;
            return true;
        }
        catch (Exception ex) when (ex is MissingTemplateException or TemplateNotFoundException or InvalidOperationException or ArgumentException)
        {
            error = ex.Message;
            return false;
        }
    }

    /// <summary>The prompt tokens of <paramref name="request"/> (BOS included when the model wants it).</summary>
    public LLamaToken[] Render(GenerationRequest request)
    {
        if (request.Prompt is not null && request.Messages is not null)
            throw new ArgumentException("Give either Prompt or Messages, not both.", nameof(request));
        if (request.Prompt is not null) return Tokenize(request.Prompt, _vocab.ShouldAddBOS, special: ParseSpecialInPrompt);
        if (request.Messages is null || request.Messages.Count == 0)
            throw new ArgumentException("Give a Prompt or at least one message.", nameof(request));
        return RenderChat(request.Messages);
    }

    public LLamaToken[] RenderChat(IReadOnlyList<ChatMessage> messages)
    {
        if (Format.Kind == ChatFormatKind.PlainTranscript)
            return Tokenize(RenderTranscript(messages), _vocab.ShouldAddBOS, special: false);

        // Render with unguessable placeholders in place of the contents, so the scaffolding can be told apart.
        var nonce = Guid.NewGuid().ToString("N");
        string Placeholder(int i) => $"QWPH{nonce}_{i}_";
        var template = new LLamaTemplate(Format.Template!) { AddAssistant = true };
        for (var i = 0; i < messages.Count; i++) template.Add(messages[i].Role, Placeholder(i));
        var rendered = Encoding.UTF8.GetString(template.Apply());

        // Split into scaffolding and contents, in rendered order (a template may drop or repeat a message).
        List<(int At, int Index)> found = [];
        for (var i = 0; i < messages.Count; i++)
        {
            var ph = Placeholder(i);
            for (var at = rendered.IndexOf(ph, StringComparison.Ordinal); at >= 0; at = rendered.IndexOf(ph, at + ph.Length, StringComparison.Ordinal))
                found.Add((at, i));
        }
        found.Sort((a, b) => a.At.CompareTo(b.At));

        var pieces = new List<Piece>();
        var cursor = 0;
        foreach (var (at, index) in found)
        {
            AddScaffold(pieces, rendered[cursor..at]);
            AddRaw(pieces, messages[index].Content);
            cursor = at + Placeholder(index).Length;
        }
        AddScaffold(pieces, rendered[cursor..]);

        // Raw runs between two control tokens are tokenized as one text, exactly as llama.cpp tokenizes the
        // whole rendered string with special tokens on (each raw fragment separately), so prompts without
        // control-token text in them get the same tokens as the naive path.
        var tokens = new List<LLamaToken>();
        var bos = _vocab.BOS;
        if (_vocab.ShouldAddBOS && bos is { } b && !(pieces.Count > 0 && pieces[0].Special == b)) tokens.Add(b);
        foreach (var piece in pieces)
        {
            if (piece.Special is { } special) tokens.Add(special);
            else if (piece.Text.Length > 0) tokens.AddRange(Tokenize(piece.Text, addBos: false, special: false));
        }
        return [.. tokens];
    }

    /// <summary>
    /// The documented fallback format: one line per message, "System: …", "User: …", "Assistant: …", then
    /// "Assistant:" for the model to continue. Tokenized without special tokens.
    /// </summary>
    public static string RenderTranscript(IReadOnlyList<ChatMessage> messages)
    {
        var sb = new StringBuilder();
        foreach (var m in messages)
        {
            var role = m.Role.Length == 0 ? m.Role : char.ToUpperInvariant(m.Role[0]) + m.Role[1..];
            sb.Append(role).Append(": ").Append(m.Content).Append('\n');
        }
        return sb.Append("Assistant:").ToString();
    }

    private readonly record struct Piece(string Text, LLamaToken? Special);

    private static void AddRaw(List<Piece> pieces, string text)
    {
        if (text.Length == 0) return;
        if (pieces.Count > 0 && pieces[^1].Special is null) pieces[^1] = new Piece(pieces[^1].Text + text, null);
        else pieces.Add(new Piece(text, null));
    }

    /// <summary>Splits template text into raw text and the control tokens llama.cpp finds in it.</summary>
    private void AddScaffold(List<Piece> pieces, string scaffold)
    {
        if (scaffold.Length == 0) return;
        var cursor = 0;
        foreach (var token in Tokenize(scaffold, addBos: false, special: true))
        {
            if ((token.GetAttributes(_vocab) & (LLamaTokenAttr.Control | LLamaTokenAttr.Unknown)) == 0) continue;
            var text = PieceText(token);
            var at = text.Length == 0 ? -1 : scaffold.IndexOf(text, cursor, StringComparison.Ordinal);
            if (at < 0)
                throw new InvalidOperationException($"Cannot locate control token {(int)token} ('{text}') in the rendered chat template text.");
            AddRaw(pieces, scaffold[cursor..at]);
            pieces.Add(new Piece("", token));
            cursor = at + text.Length;
        }
        AddRaw(pieces, scaffold[cursor..]);
    }

    private string PieceText(LLamaToken token)
    {
        Span<byte> buffer = stackalloc byte[256];
        var n = (int)_model.TokenToSpan(token, buffer, 0, special: true);
        return n <= buffer.Length ? Encoding.UTF8.GetString(buffer[..n]) : "";
    }

    public LLamaToken[] Tokenize(string text, bool addBos, bool special) =>
        _model.Tokenize(text, addBos, special, Encoding.UTF8);
}
