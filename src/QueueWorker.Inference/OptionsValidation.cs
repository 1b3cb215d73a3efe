using Microsoft.Extensions.Options;

namespace QueueWorker.Inference;

/// <summary>Rules across <see cref="InferenceOptions"/> fields; every message names the keys and values.</summary>
public sealed class InferenceOptionsValidator : IValidateOptions<InferenceOptions>
{
    public ValidateOptionsResult Validate(string? name, InferenceOptions o)
    {
        List<string> errors = [];
        const string S = InferenceOptions.Section;
        if (o.DefaultMaxTokens > o.MaxTokens)
            errors.Add($"{S}:DefaultMaxTokens = {o.DefaultMaxTokens} must be at most {S}:MaxTokens = {o.MaxTokens}.");
        if (o.MaxTokens >= o.ContextSize)
            errors.Add($"{S}:MaxTokens = {o.MaxTokens} must be less than {S}:ContextSize = {o.ContextSize}: a job needs prompt tokens + max_tokens KV cells.");
        if (!o.KvUnified && o.MaxTokens >= InferenceOptions.SplitCellsPerSlot(o.ContextSize, o.Slots + o.PrioritySlots))
            errors.Add($"{S}:MaxTokens = {o.MaxTokens} must be less than the cells of one slot: with {S}:KvUnified = false each slot owns " +
                       $"{S}:ContextSize / ({S}:Slots + {S}:PrioritySlots) = {o.ContextSize} / {o.Slots + o.PrioritySlots}, rounded up to a multiple of 256 " +
                       $"as llama.cpp does: {InferenceOptions.SplitCellsPerSlot(o.ContextSize, o.Slots + o.PrioritySlots)} cells; " +
                       $"raise ContextSize to at least {(o.MaxTokens + 64) * (o.Slots + o.PrioritySlots)} or lower MaxTokens.");
        if (o.BatchSize < o.Slots + o.PrioritySlots)
            errors.Add($"{S}:BatchSize = {o.BatchSize} must be at least {S}:Slots + {S}:PrioritySlots = {o.Slots + o.PrioritySlots}: every decode step carries one token per generating slot.");
        if (o.BatchSize > o.ContextSize)
            errors.Add($"{S}:BatchSize = {o.BatchSize} must be at most {S}:ContextSize = {o.ContextSize} (llama.cpp would silently lower it).");
        // The cache lives in the process's own memory: a bound the process can never hold is a typo (GB for MB).
        var availableMb = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024 * 1024);
        if (o.PromptCacheMb > 0 && availableMb > 0 && o.PromptCacheMb >= availableMb)
            errors.Add($"{S}:PromptCacheMb = {o.PromptCacheMb} must be less than the memory available to the process ({availableMb} MiB); 0 turns the prompt cache off.");
        errors.AddRange(KvCacheSettings.Validate(o));
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>Checks that the model file can be found, naming <c>Model:Path</c> and its value when not.</summary>
public sealed class ModelOptionsValidator : IValidateOptions<ModelOptions>
{
    public ValidateOptionsResult Validate(string? name, ModelOptions o)
    {
        var resolution = ModelLocator.Locate(o.Path);
        // An empty Model:Path with downloads on is settled at start: the engine fetches the default model.
        if (resolution.Path is null && string.IsNullOrWhiteSpace(o.Path) && o.DownloadDefault) return ValidateOptionsResult.Success;
        return resolution.Path is null ? ValidateOptionsResult.Fail(resolution.Error!) : ValidateOptionsResult.Success;
    }
}
