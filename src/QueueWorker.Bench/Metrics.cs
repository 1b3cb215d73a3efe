namespace QueueWorker.Bench;

/// <summary>Metric names used in results.json and the tables, with their units.</summary>
public static class Metrics
{
    public const string PrefillTps = "prefill_tok_s";
    public const string DecodeTps = "decode_tok_s";
    public const string JobMs = "job_ms";
    public const string AggregateTps = "aggregate_tok_s";
    public const string AggregateDecodeTps = "aggregate_decode_tok_s";
    public const string ContextCreateMs = "context_create_ms";
    public const string ContextRssMb = "context_rss_mb";
    public const string LoadColdMs = "load_cold_ms";
    public const string LoadWarmMs = "load_warm_ms";
    public const string FirstJobMs = "first_job_ms";
    public const string StartToFirstResultMs = "start_to_first_result_ms";
    public const string RssAfterLoadMb = "rss_after_load_mb";
    public const string RssAfterJobMb = "rss_after_job_mb";
    public const string FileMb = "file_mb";
    public const string SecondJobMs = "second_job_ms";
    public const string PromptMs = "prompt_ms";
    public const string PromptTokens = "prompt_tokens";
    public const string CachedTokens = "cached_tokens";
    public const string MinCachedTokens = "min_cached_tokens";
    public const string CompletionTokens = "completion_tokens";
    public const string WallMs = "wall_ms";
    public const string RssMb = "rss_mb";
    public const string RssAnonMb = "rss_anon_mb";
    public const string RssFileMb = "rss_file_mb";
    public const string KvMb = "kv_mb";
    public const string DecodeAfterIdleTps = "decode_after_idle_tok_s";
    public const string MajorFaultsAfterIdle = "major_faults_after_idle";
    public const string QueueWaitP50Ms = "queue_wait_p50_ms";
    public const string QueueWaitP95Ms = "queue_wait_p95_ms";
    public const string QueueWaitMaxMs = "queue_wait_max_ms";
    public const string LatencyP50Ms = "latency_p50_ms";
    public const string LatencyP95Ms = "latency_p95_ms";
    public const string ServiceMs = "service_ms";
    public const string BatchWallMs = "batch_wall_ms";
    public const string BatchDoneBeforeLast = "batch_done_before_last_interactive";
    public const string TenantBFinishMs = "tenant_b_finish_ms";
    public const string TenantBVsAlone = "tenant_b_vs_alone";
    public const string TenantBQueueWaitP50Ms = "tenant_b_queue_wait_p50_ms";
    public const string TenantBLastPosition = "tenant_b_last_position";
    public const string TenantBPublishMs = "tenant_b_publish_ms";
    public const string TenantBToWorkerP50Ms = "tenant_b_to_worker_p50_ms";
    public const string TenantBInWorkerWaitP50Ms = "tenant_b_in_worker_wait_p50_ms";
    public const string InWorkerMs = "in_worker_ms";
    public const string StepMs = "step_ms";
    public const string JobsPerS = "jobs_s";
    public const string InProcessTps = "inprocess_tok_s";

    /// <summary>True when a larger value is better (throughputs); false for times and sizes.</summary>
    public static bool HigherIsBetter(string metric) => metric.EndsWith("tok_s", StringComparison.Ordinal) || metric == JobsPerS;

    public static string Label(string metric) => metric switch
    {
        PrefillTps => "prefill tok/s",
        DecodeTps => "decode tok/s",
        JobMs => "job latency ms",
        AggregateTps => "aggregate tok/s (whole jobs)",
        AggregateDecodeTps => "aggregate decode tok/s",
        ContextCreateMs => "context create ms",
        ContextRssMb => "context memory MB",
        LoadColdMs => "load ms (cold cache)",
        LoadWarmMs => "load ms (warm cache)",
        FirstJobMs => "first job ms",
        StartToFirstResultMs => "load + first job ms (cold)",
        RssAfterLoadMb => "RSS after load MB",
        RssAfterJobMb => "RSS after first job MB",
        FileMb => "file MB",
        SecondJobMs => "steady job ms",
        PromptMs => "prompt ms",
        PromptTokens => "prompt tokens",
        CachedTokens => "cached tokens",
        MinCachedTokens => "fewest cached tokens",
        CompletionTokens => "completion tokens",
        WallMs => "wall ms",
        RssMb => "RSS MB",
        RssAnonMb => "RSS anonymous MB",
        RssFileMb => "RSS file-backed MB",
        KvMb => "KV cache MB (computed)",
        DecodeAfterIdleTps => "decode tok/s after idle",
        MajorFaultsAfterIdle => "major page faults in the job after idle",
        QueueWaitP50Ms => "queue wait p50 ms",
        QueueWaitP95Ms => "queue wait p95 ms",
        QueueWaitMaxMs => "queue wait max ms",
        LatencyP50Ms => "latency p50 ms",
        LatencyP95Ms => "latency p95 ms",
        ServiceMs => "service ms (one job)",
        BatchWallMs => "batch wall ms",
        BatchDoneBeforeLast => "batch done before last interactive",
        TenantBFinishMs => "B finish ms",
        TenantBVsAlone => "B × alone",
        TenantBQueueWaitP50Ms => "B queue wait p50 ms",
        TenantBLastPosition => "B last position",
        TenantBPublishMs => "B publish ms",
        TenantBToWorkerP50Ms => "B publish → receipt p50 ms",
        TenantBInWorkerWaitP50Ms => "B receipt → start p50 ms",
        InWorkerMs => "in worker ms p50 (receipt → result)",
        StepMs => "raw step ms",
        JobsPerS => "jobs/s",
        InProcessTps => "in-process tok/s",
        _ => metric,
    };
}
