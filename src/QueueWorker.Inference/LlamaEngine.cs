using System.Diagnostics;
using LLama;
using LLama.Common;
using LLama.Exceptions;
using LLama.Native;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using QueueWorker.Contracts;

namespace QueueWorker.Inference;

/// <summary>
/// The LLamaSharp engine: one memory-mapped model, one llama context shared by <c>Inference:Slots</c> sequences,
/// driven by a <see cref="Scheduler"/> thread. Call <see cref="StartAsync"/> once (the hosted service registered by
/// <see cref="InferenceHostingExtensions.AddInference"/> does), then <see cref="GenerateAsync"/> from any thread.
/// </summary>
public sealed class LlamaEngine : IInferenceEngine, IAsyncDisposable
{
    private readonly ModelOptions _modelOptions;
    private readonly InferenceOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _lifecycle = new(1, 1);
    private Running? _running;

    private sealed record Running(LLamaWeights Weights, LLamaContext Context, PromptRenderer Renderer, Scheduler Scheduler, Grammar.GrammarCache Grammars, Embedder? Embedder,
        int? CellsPerSlot);

    /// <summary>With a split KV cache (Inference:KvUnified = false) the cells of one slot's stream: llama.cpp's n_ctx / n_seq_max.</summary>
    private int? CellsPerSlot(SafeLLamaContextHandle handle) => _options.KvUnified ? null : (int)handle.ContextSize / (_options.Slots + _options.PrioritySlots);

    public LlamaEngine(ModelOptions model, InferenceOptions inference, ILogger<LlamaEngine>? logger = null, TimeProvider? timeProvider = null)
    {
        _modelOptions = model;
        _options = inference;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
    }

    public EngineInfo? Info { get; private set; }

    /// <summary>How chat messages are rendered; null until started.</summary>
    public ChatFormat? ChatFormat => _running?.Renderer.Format;

    public bool IsReady => _running is { } r && r.Scheduler.IsRunning;

    public Exception? Fault => _running?.Scheduler.Fault;

    public EngineStats Stats { get; } = new();

    /// <summary>Resolves and loads the model, creates the context and starts the scheduler; logs every tuning decision.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await _lifecycle.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_running is not null) return;
            var location = await LocateOrDownloadAsync(cancellationToken).ConfigureAwait(false);
            var path = location.Path!;
            Log.ModelResolved(_logger, path, location.Source);

            var budget = CpuBudget.Compute(_options, CpuFacts.Detect());
            Log.CpuBudgetChosen(_logger, budget.Threads, budget.BatchThreads, budget.Reason);

            NativeLog.Attach(_logger);
            var loadMode = (_modelOptions.UseMmap, _modelOptions.UseMlock) switch
            {
                (true, true) => LLamaLoadMode.MemoryMapAndLock,
                (true, false) => LLamaLoadMode.MemoryMap,
                (false, true) => LLamaLoadMode.MemoryLock,
                (false, false) => LLamaLoadMode.None,
            };
            var parameters = new ModelParams(path)
            {
                ContextSize = (uint)_options.ContextSize,
                SeqMax = (uint)(_options.Slots + _options.PrioritySlots),
                BatchSize = (uint)_options.BatchSize,
                // One micro-batch per decode: splitting a step would read the weights again for nothing.
                UBatchSize = (uint)_options.BatchSize,
                Threads = budget.Threads,
                BatchThreads = budget.BatchThreads,
                LoadMode = loadMode,
                // One cell pool shared by all sequences, or a stream per sequence (the admission planner follows either).
                KVUnified = _options.KvUnified,
                TypeK = KvCacheSettings.Types[_options.TypeK].Type,
                TypeV = KvCacheSettings.Types[_options.TypeV].Type,
                FlashAttention = KvCacheSettings.FlashAttentionModes[_options.FlashAttention],
            };
            Log.Loading(_logger, loadMode.ToString(), _modelOptions.UseMmap);
            Log.KvCacheChosen(_logger, _options.TypeK, _options.TypeV, _options.FlashAttention);

            var started = Stopwatch.GetTimestamp();
            LLamaWeights weights;
            try
            {
                weights = await LLamaWeights.LoadFromFileAsync(parameters, cancellationToken).ConfigureAwait(false);
            }
            catch (LoadWeightsFailedException ex)
            {
                throw new InvalidOperationException($"Model:Path = '{path}': llama.cpp could not load this file as a GGUF model ({ex.Message}).", ex);
            }

            LLamaContext? context = null;
            Embedder? embedder = null;
            try
            {
                var model = weights.NativeHandle;
                Log.ModelLoaded(_logger, Stopwatch.GetElapsedTime(started).TotalMilliseconds, model.Description, model.ParameterCount,
                    model.SizeInBytes, model.LayerCount, model.Vocab.Count, model.ContextSize);

                if (KvCacheSettings.CheckModel(_options, weights.Metadata) is { } kvError)
                    throw new InvalidOperationException($"Model:Path = '{path}': {kvError}");
                context = weights.CreateContext(parameters);
                var handle = context.NativeHandle;
                Log.ContextCreated(_logger, _options.Slots, _options.ContextSize, handle.ContextSize, handle.BatchSize, _options.PrefixReuse);

                var warmUpMs = WarmUp(handle, model);
                Log.WarmedUp(_logger, warmUpMs);

                var format = PromptRenderer.ChooseFormat(model, _modelOptions.ChatTemplate, w => Log.ChatTemplateWarning(_logger, w));
                Log.ChatFormatChosen(_logger, format.Description);

                if (_modelOptions.Embeddings)
                {
                    // A context of its own: the completion context keeps logits-only decodes, and neither waits for the other.
                    var embedParams = new ModelParams(path)
                    {
                        ContextSize = (uint)_options.BatchSize,
                        BatchSize = (uint)_options.BatchSize,
                        UBatchSize = (uint)_options.BatchSize,
                        SeqMax = Embedder.MaxSequences,
                        Threads = budget.Threads,
                        BatchThreads = budget.BatchThreads,
                        Embeddings = true,
                        PoolingType = LLamaPoolingType.Mean,
                        KVUnified = true,
                    };
                    embedder = new Embedder(weights.CreateContext(embedParams), model, _time);
                    Log.EmbeddingsEnabled(_logger, embedder.Dimensions, Embedder.MaxSequences, _options.BatchSize);
                }

                var cellsPerSlot = CellsPerSlot(handle);
                var scheduler = new Scheduler(handle, model, (_options.Slots, _options.PrioritySlots), _options.ContextSize, (int)handle.BatchSize, _options.PrefixReuse,
                    (budget.Threads, budget.BatchThreads), _logger, _time, Stats, _options.CrashSchedulerOnPrompt, _options.StallSchedulerOnPrompt,
                    _options.KillProcessOnPrompt, CreatePromptCache(), _options.GrammarFastPath, cellsPerSlot);
                _running = new Running(weights, context, new PromptRenderer(model, format, _modelOptions.ParseSpecialInPrompt), scheduler,
                    new Grammar.GrammarCache(model, GrammarCacheSize), embedder, cellsPerSlot);
                Info = new EngineInfo(Path.GetFileName(path), path, budget.Threads, budget.BatchThreads, _options.ContextSize,
                    _options.Slots, (int)handle.BatchSize, budget.Reason);
                scheduler.Start();
            }
            catch
            {
                embedder?.Dispose();
                context?.Dispose();
                weights.Dispose();
                throw;
            }
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>Stops the scheduler (unfinished jobs get <see cref="OperationCanceledException"/>) and frees the model.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _lifecycle.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_running is not { } running) return;
            await running.Scheduler.StopAsync(cancellationToken).ConfigureAwait(false);
            _running = null;
            running.Embedder?.Dispose();
            running.Context.Dispose();
            running.Weights.Dispose();
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>
    /// Same as <see cref="StopAsync"/>, bounded: a scheduler hung inside llama.cpp never leaves the context, and the
    /// process must still exit (its native memory goes with it). Safe to call more than once (DI disposes the singleton
    /// under both its registrations).
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        using var bound = new CancellationTokenSource(DisposeTimeout, _time);
        try
        {
            await StopAsync(bound.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (bound.IsCancellationRequested)
        {
            Log.DisposeAbandoned(_logger, DisposeTimeout.TotalSeconds);
        }
    }

    private static readonly TimeSpan DisposeTimeout = TimeSpan.FromSeconds(10);

    private PromptCache? CreatePromptCache()
    {
        if (_options.PromptCacheMb == 0)
        {
            Log.PromptCacheDisabled(_logger, "Inference:PromptCacheMb = 0");
            return null;
        }
        if (!_options.PrefixReuse)
        {
            Log.PromptCacheDisabled(_logger, "Inference:PrefixReuse = false");
            return null;
        }
        var bytes = _options.PromptCacheMb * 1024L * 1024L;
        Log.PromptCacheEnabled(_logger, _options.PromptCacheMb, bytes);
        return new PromptCache(bytes);
    }

    /// <summary>Compiled grammars kept (distinct schemas in flight at once are few; each costs a copy of its rules).</summary>
    private const int GrammarCacheSize = 32;

    /// <summary>Prompt tokens <paramref name="request"/> renders to (BOS included), e.g. to size a job before sending it.</summary>
    public int CountPromptTokens(GenerationRequest request) => RunningOrThrow().Renderer.Render(request).Length;

    public async Task<GenerationResult> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        var running = RunningOrThrow();
        if (request.MaxTokens < 1)
            throw new ArgumentOutOfRangeException(nameof(request), request.MaxTokens, "MaxTokens must be at least 1.");

        if (request.Sampling.LogitBias is { } bias)
        {
            // Only the engine knows the vocabulary; llama.cpp would ignore an id beyond it.
            var vocab = running.Weights.NativeHandle.Vocab.Count;
            foreach (var id in bias.Keys)
            {
                if (id >= vocab)
                    throw new InferenceException(ErrorCodes.InvalidField,
                        $"\"logit_bias\" names token {id}, but the model's vocabulary has tokens 0 to {vocab - 1}.", $"logit_bias.{id}");
            }
        }

        // Tokenized on the caller's thread: the scheduler thread only decodes.
        var prompt = running.Renderer.Render(request);
        if (prompt.Length == 0)
            throw new InferenceException(ErrorCodes.MissingPrompt, "The prompt is empty: it renders to no tokens.");
        var need = prompt.Length + request.MaxTokens;
        if (need > _options.ContextSize)
            throw new InferenceException(ErrorCodes.PromptTooLong,
                $"prompt is {prompt.Length} tokens + max_tokens {request.MaxTokens} = {need} KV cells, but Inference:ContextSize is {_options.ContextSize}.");
        if (running.CellsPerSlot is { } perSlot && need > perSlot)
            throw new InferenceException(ErrorCodes.PromptTooLong,
                $"prompt is {prompt.Length} tokens + max_tokens {request.MaxTokens} = {need} KV cells, but with Inference:KvUnified = false one slot holds " +
                $"{perSlot} (Inference:ContextSize / (Slots + PrioritySlots)).");

        var now = _time.GetUtcNow();
        if (request.Deadline is { } requested && requested <= now)
            throw new InferenceException(ErrorCodes.DeadlineExceeded, $"The job's deadline {requested:O} had passed before work began.");
        // The job pipeline (QueueWorker.Processing) owns the deadline rule, Inference:MaxJobSeconds included, and always
        // sets one. Direct callers (the bench, engine tests) may not: they get the same hard cap from submission.
        var deadline = request.Deadline ?? now.AddSeconds(_options.MaxJobSeconds);

        // Compiled (or found in the cache) on the caller's thread too; a grammar llama.cpp refuses fails the job here.
        var grammar = request.Grammar is { } constraint ? running.Grammars.Get(constraint) : null;
        var job = new InferenceJob(request, prompt, deadline, _time.GetTimestamp(), cancellationToken) { Grammar = grammar };
        using var registration = cancellationToken.UnsafeRegister(static state => ((InferenceJob)state!).OnCancelled(), job);
        if (!running.Scheduler.TryEnqueue(job)) throw new OperationCanceledException("The inference engine is stopping or its scheduler failed: the job was not started.");
        return await job.Completion.Task.ConfigureAwait(false);
    }

    public Task<EmbeddingResult> EmbedAsync(IReadOnlyList<string> inputs, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var running = RunningOrThrow();
        return running.Embedder is { } embedder
            ? embedder.EmbedAsync(inputs, cancellationToken)
            : Task.FromException<EmbeddingResult>(InferenceException.EmbeddingsDisabled());
    }

    private Running RunningOrThrow() => _running
        ?? throw new InvalidOperationException("The inference engine is not running: call StartAsync first (AddInference registers a hosted service that does).");

    /// <summary>
    /// One throwaway decode before the first job: it allocates llama.cpp's compute buffers and pages the
    /// memory-mapped weights in, a cost that would otherwise land in the first job's <c>prompt_ms</c>
    /// (seen: 0.5 s for a 5-token prompt on stories260K). Readiness waits for it.
    /// </summary>
    private static double WarmUp(SafeLLamaContextHandle handle, SafeLlamaModelHandle model)
    {
        var started = Stopwatch.GetTimestamp();
        var batch = new LLamaBatch();
        batch.Add(model.Vocab.BOS ?? default, 0, (LLamaSeqId)0, true);
        var result = handle.Decode(batch);
        handle.MemorySequenceRemove((LLamaSeqId)0, -1, -1);
        if (result != DecodeResult.Ok)
            throw new InvalidOperationException($"The warm-up decode failed ({result}): llama.cpp cannot run this model with these settings.");
        return Stopwatch.GetElapsedTime(started).TotalMilliseconds;
    }

    /// <summary>
    /// The model file: found on disk (<see cref="ModelLocator"/>), else — only for the default model, when
    /// <c>Model:DownloadDefault</c> is on — downloaded from its public source into <c>./models/</c> with a SHA-256 check.
    /// </summary>
    private async Task<ModelLocation> LocateOrDownloadAsync(CancellationToken cancellationToken)
    {
        var location = ModelLocator.Locate(_modelOptions.Path);
        if (location.Path is not null || !string.IsNullOrWhiteSpace(_modelOptions.Path) || !_modelOptions.DownloadDefault)
            return location.Path is null ? throw new FileNotFoundException(location.Error) : location;

        var source = Models.ModelSource.Stories260K;
        var directory = System.IO.Path.Combine(Directory.GetCurrentDirectory(), "models");
        Log.Downloading(_logger, source.Url.ToString(), directory);
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(5) };
            var path = await new Models.ModelDownloader(http).DownloadAsync(source, directory, null, cancellationToken).ConfigureAwait(false);
            return new ModelLocation(path, $"Model:Path is empty; downloaded the default model from {source.Url} (SHA-256 checked)", null);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or UnauthorizedAccessException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            throw new InvalidOperationException(
                $"{location.Error} Downloading it from {source.Url} into {directory} failed too ({ex.Message}); set Model:Path, or Model:DownloadDefault = false to skip the download.", ex);
        }
    }
}
