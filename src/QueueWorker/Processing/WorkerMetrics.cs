using Prometheus;
using QueueWorker.Contracts;
using QueueWorker.Inference;
using QueueWorker.Messaging;

namespace QueueWorker.Processing;

/// <summary>The worker's job metrics (prometheus-net), fed by the pipeline as its <see cref="IJobObserver"/>. Gauges live in <see cref="GaugeCollector"/>.</summary>
public sealed class WorkerMetrics : IJobObserver
{
    // Buckets for seconds-long CPU jobs: 10 ms .. ~20 min.
    private static readonly double[] DurationBuckets = Histogram.ExponentialBuckets(0.01, 2, 17);

    private readonly Counter _jobs = Metrics.CreateCounter("queueworker_jobs_total", "Jobs finished, by status and error code.", "status", "code");
    private readonly Counter _promptTokens = Metrics.CreateCounter("queueworker_prompt_tokens_total", "Prompt tokens of completed jobs.");
    private readonly Counter _cachedTokens = Metrics.CreateCounter("queueworker_cached_prompt_tokens_total", "Prompt tokens reused from the KV cache (no prefill spent).");
    private readonly Counter _completionTokens = Metrics.CreateCounter("queueworker_completion_tokens_total", "Generated tokens of completed jobs.");
    private readonly Histogram _jobDuration = Metrics.CreateHistogram("queueworker_job_duration_seconds", "From receipt by the worker to the result being ready.", new HistogramConfiguration { Buckets = DurationBuckets });
    private readonly Histogram _queueWait = Metrics.CreateHistogram("queueworker_queue_wait_seconds", "From publish (AMQP timestamp) to the start of work.", new HistogramConfiguration { Buckets = DurationBuckets });
    private readonly Histogram _promptTime = Metrics.CreateHistogram("queueworker_prompt_seconds", "Prefill time per job.", new HistogramConfiguration { Buckets = DurationBuckets });
    private readonly Histogram _firstToken = Metrics.CreateHistogram("queueworker_time_to_first_token_seconds", "From the start of work to the first generated token.", new HistogramConfiguration { Buckets = DurationBuckets });
    private readonly Counter _cpu = Metrics.CreateCounter("queueworker_cpu_seconds_total",
        "CPU charged to completed jobs (their timings.cpu_ms: process CPU during each decode step, split by tokens), by tenant (metadata.tenant, else user, else default).", "tenant");
    private readonly TenantLabels _tenants = new(MaxTenants);

    /// <summary>
    /// Distinct tenant labels one worker process exports; later tenants are counted under <see cref="TenantLabels.Other"/>.
    /// A tenant comes from the job body, so without a bound any producer could grow the metric without limit.
    /// </summary>
    public const int MaxTenants = 100;

    public void JobCompleted(JobResult result, string tenant)
    {
        _jobs.WithLabels(JobStatus.Completed, "").Inc();
        if (result.Usage is { } usage)
        {
            _promptTokens.Inc(usage.PromptTokens);
            _cachedTokens.Inc(usage.CachedTokens);
            _completionTokens.Inc(usage.CompletionTokens);
        }
        if (result.Timings is { } t)
        {
            _jobDuration.Observe(t.TotalMs / 1000);
            _promptTime.Observe(t.PromptMs / 1000);
            _firstToken.Observe(t.FirstTokenMs / 1000);
            if (t.QueuedMs is { } queued) _queueWait.Observe(queued / 1000);
            if (t.CpuMs is { } cpu) _cpu.WithLabels(_tenants.Label(tenant)).Inc(cpu / 1000);
        }
    }

    public void JobFailed(string code) => _jobs.WithLabels(JobStatus.Failed, code).Inc();
}

/// <summary>
/// Gauges read from the engine and the broker link at scrape time. A hosted service rather than part of
/// <see cref="WorkerMetrics"/>: the consumer depends on the job pipeline, which records metrics, so
/// metrics must not depend back on the consumer's status.
/// </summary>
public sealed class GaugeCollector(IInferenceEngine engine, IBrokerStatus broker, Microsoft.Extensions.Options.IOptions<InferenceOptions> options) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var busy = Metrics.CreateGauge("queueworker_slots_busy", "Slots decoding a job now.");
        var total = Metrics.CreateGauge("queueworker_slots_total", "Slots (sequences) of the engine.");
        var kv = Metrics.CreateGauge("queueworker_kv_cells_in_use", "KV cache cells held by running jobs and cached prefixes.");
        var kvTotal = Metrics.CreateGauge("queueworker_kv_cells_total", "KV cache cells of the context (Inference:ContextSize).");
        var waiting = Metrics.CreateGauge("queueworker_engine_waiting_jobs", "Jobs received and waiting for a slot.");
        var inFlight = Metrics.CreateGauge("queueworker_jobs_in_flight", "Jobs received from the broker and not yet acked.");
        var connected = Metrics.CreateGauge("queueworker_broker_connected", "1 when the broker connection is open.");
        var consuming = Metrics.CreateGauge("queueworker_consumer_running", "1 when the jobs consumer is registered.");
        var ready = Metrics.CreateGauge("queueworker_model_loaded", "1 once the model is loaded.");
        // The engine counts on its scheduler thread; the counters follow its totals at scrape time.
        var cacheHits = Metrics.CreateCounter("queueworker_prompt_cache_hits_total", "Jobs whose prompt prefix was restored from the host-RAM prompt cache (Inference:PromptCacheMb).");
        var cacheMisses = Metrics.CreateCounter("queueworker_prompt_cache_misses_total", "Jobs admitted with the host-RAM prompt cache on that restored nothing from it.");
        var cacheTokens = Metrics.CreateCounter("queueworker_prompt_cache_restored_tokens_total", "Prompt tokens restored from the host-RAM prompt cache instead of prefilled.");
        var cacheEvictions = Metrics.CreateCounter("queueworker_prompt_cache_evictions_total", "Host-RAM prompt cache entries dropped to stay within Inference:PromptCacheMb.");
        var cacheBytes = Metrics.CreateGauge("queueworker_prompt_cache_bytes", "Bytes the host-RAM prompt cache holds (KV states and their token keys).");
        var cacheEntries = Metrics.CreateGauge("queueworker_prompt_cache_entries", "Entries in the host-RAM prompt cache.");
        Metrics.DefaultRegistry.AddBeforeCollectCallback(() =>
        {
            busy.Set(engine.Stats.BusySlots);
            total.Set(engine.Info?.Slots ?? options.Value.Slots);
            kv.Set(engine.Stats.KvCellsInUse);
            kvTotal.Set(engine.Info?.ContextSize ?? options.Value.ContextSize);
            waiting.Set(engine.Stats.WaitingJobs);
            inFlight.Set(broker.InFlight);
            connected.Set(broker.IsConnected ? 1 : 0);
            consuming.Set(broker.IsConsuming ? 1 : 0);
            ready.Set(engine.IsReady ? 1 : 0);
            var stats = engine.Stats;
            cacheHits.IncTo(stats.PromptCacheHits);
            cacheMisses.IncTo(stats.PromptCacheMisses);
            cacheTokens.IncTo(stats.PromptCacheRestoredTokens);
            cacheEvictions.IncTo(stats.PromptCacheEvictions);
            cacheBytes.Set(stats.PromptCacheBytes);
            cacheEntries.Set(stats.PromptCacheEntries);
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
