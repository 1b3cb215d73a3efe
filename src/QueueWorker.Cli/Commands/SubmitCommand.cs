using System.ComponentModel;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using QueueWorker.Cli.Infrastructure;
using QueueWorker.Cli.Running;
using QueueWorker.Contracts;
using Spectre.Console.Cli;

namespace QueueWorker.Cli.Commands;

/// <summary>
/// <c>qw submit</c>: one job through the AMQP RPC convention. The text goes to stdout, the timing
/// summary to stderr (so <c>qw submit … &gt; out.txt</c> keeps only the text); <c>--json</c> prints
/// the worker's whole result instead. Exit code 1 when the job failed, 4 when it timed out.
/// </summary>
internal sealed class SubmitCommand(CliConsole console, TimeProvider time) : AsyncCommand<SubmitCommand.Settings>
{
    /// <summary>Extra wait after <c>--timeout</c>: the worker ends the job at its deadline and still sends the partial result.</summary>
    private static readonly TimeSpan ResultGrace = TimeSpan.FromSeconds(5);

    internal sealed class Settings : QwSettings
    {
        [CommandArgument(0, "[PROMPT]")]
        [Description("The prompt. Omit it (or give -) to read the prompt from stdin.")]
        public string? Prompt { get; set; }

        [CommandOption("--messages <FILE>")]
        [Description("Chat messages instead of a prompt: a JSON file holding [[{\"role\":\"user\",\"content\":\"…\"}]] (or {\"messages\": [[…]]}).")]
        public string? Messages { get; set; }

        [CommandOption("--max-tokens <N>")]
        [Description("Tokens to generate at most (default: the worker's Inference:DefaultMaxTokens).")]
        public int? MaxTokens { get; set; }

        [CommandOption("--temperature <T>")]
        [Description("0 is greedy and deterministic.")]
        public double? Temperature { get; set; }

        [CommandOption("--top-p <P>")]
        public double? TopP { get; set; }

        [CommandOption("--top-k <K>")]
        public int? TopK { get; set; }

        [CommandOption("--min-p <P>")]
        public double? MinP { get; set; }

        [CommandOption("--repeat-penalty <R>")]
        public double? RepeatPenalty { get; set; }

        [CommandOption("--seed <SEED>")]
        public long? Seed { get; set; }

        [CommandOption("--stop <TEXT>")]
        [Description("A stop string (repeatable); it is not part of the text.")]
        public string[] Stop { get; set; } = [];

        [CommandOption("--timeout <SECONDS>")]
        [Description("The job's deadline (sent as timeout_ms) and how long qw waits for its result.")]
        [DefaultValue(120.0)]
        public double Timeout { get; set; } = 120;

        [CommandOption("--expires-in <DURATION>")]
        [Description("The job's AMQP expiration (e.g. 30m, 90s): still in the queue after this long, it is dead-lettered and answered deadline_exceeded; running then, it stops.")]
        public string? ExpiresIn { get; set; }

        [CommandOption("--id <ID>")]
        [Description("Job id (default: a new qw-<guid>).")]
        public string? Id { get; set; }

        [CommandOption("--metadata <JSON>")]
        [Description("A JSON object echoed in the result.")]
        public string? Metadata { get; set; }

        [CommandOption("--priority <N>")]
        [Description("Order among the jobs waiting in a worker, higher first (-100 to 100); lanes (--lane) order before it.")]
        public int? Priority { get; set; }

        [CommandOption("--full-timeout <SECONDS>")]
        [Description("How long to keep retrying while the broker refuses the job because the queue is full (RabbitMq:MaxQueuedJobs); then exit 5.")]
        [DefaultValue(30.0)]
        public double FullTimeout { get; set; } = 30;

        [CommandOption("--json")]
        [Description("Print the worker's whole result as JSON (one line) instead of the text.")]
        public bool Json { get; set; }

        [CommandOption("--schema <FILE>")]
        [Description("Constrain the output to JSON valid against this JSON Schema file (response_format json_schema; the file may also be OpenAI's {\"name\", \"schema\", \"strict\"}).")]
        public string? Schema { get; set; }

        [CommandOption("--json-object")]
        [Description("Constrain the output to a JSON object (response_format json_object).")]
        public bool JsonObject { get; set; }

        [CommandOption("--grammar <FILE>")]
        [Description("Constrain the output with this GBNF grammar file (start rule root).")]
        public string? Grammar { get; set; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var configuration = CliConfiguration.Build(settings.Set, settings.Uri);
        var rabbit = CliConfiguration.RabbitMq(configuration, needsBroker: !settings.Local);
        var limits = CliConfiguration.Limits(configuration);
        CliConfiguration.ApplyLane(rabbit, settings.Lane, settings.Local, lowest: false);
        if (!(settings.FullTimeout >= 0 && settings.FullTimeout <= 7 * 24 * 3600))
            throw new CliException($"--full-timeout must be from 0 to 604800 seconds, got {settings.FullTimeout.ToString(CultureInfo.InvariantCulture)}.");
        if (!(settings.Timeout > 0 && settings.Timeout <= 7 * 24 * 3600))
            throw new CliException($"--timeout must be more than 0 and at most 604800 seconds (7 days), got {settings.Timeout.ToString(CultureInfo.InvariantCulture)}.");

        TimeSpan? expiresIn = settings.ExpiresIn is null ? null : Durations.ParseFlag("--expires-in", settings.ExpiresIn);

        var body = await BuildBodyAsync(settings, cancellationToken);
        var built = JobBuilder.Build(body, limits, rabbit.MaxJobBytes);
        if (built.Error is { } error)
            throw new CliException($"{FlagFor(error.Field)}: {error.Message}");
        var submission = built.Submission!;
        if (expiresIn is { } ttl)
            submission = submission with { Expiry = new JobExpiry(time.GetUtcNow() + ttl, $"--expires-in {Durations.Format(ttl)}") };

        var level = settings.Verbose ? LogLevel.Debug : LogLevel.Warning;
        using var logs = new CliLoggerProvider(console, level);
        await using var runner = await RunnerFactory.StartAsync(settings.Local, "submit", configuration, rabbit, console, logs, level, time, cancellationToken,
            TimeSpan.FromSeconds(settings.FullTimeout));

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(settings.Timeout) + ResultGrace, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        JobResult result;
        try
        {
            result = await runner.RunAsync(submission, linked.Token);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            console.Message($"no result for job {submission.Id} within {settings.Timeout.ToString(CultureInfo.InvariantCulture)} s " +
                            $"(it may still be queued: is a worker consuming {rabbit.JobsQueue}?).");
            return ExitCodes.Timeout;
        }

        if (settings.Json) await console.Out.WriteLineAsync(JobSerializer.ToJson(result));
        if (result.Status != JobStatus.Completed)
        {
            var e = result.Error;
            console.Message($"job {result.Id} failed: {e?.Code}: {e?.Message}");
            return ExitCodes.JobFailed;
        }
        if (!settings.Json) await console.Out.WriteLineAsync(result.Text);
        foreach (var warning in result.Warnings ?? []) console.Message($"warning: {warning}");
        console.Message(Summary(result));
        return result.FinishReason == FinishReasons.Timeout ? ExitCodes.Timeout : ExitCodes.Ok;
    }

    private async Task<JsonObject> BuildBodyAsync(Settings s, CancellationToken cancellationToken)
    {
        var body = new JsonObject { ["id"] = s.Id ?? "qw-" + Guid.NewGuid().ToString("N") };
        if (s.Messages is not null)
        {
            if (s.Prompt is not null)
                throw new CliException("give either a PROMPT or --messages, not both.");
            body["messages"] = await ReadMessagesAsync(s.Messages, cancellationToken);
        }
        else if (s.Prompt is not null && s.Prompt != "-")
        {
            body["prompt"] = s.Prompt;
        }
        else if (s.Prompt == "-" || console.InputRedirected)
        {
            var text = await console.In.ReadToEndAsync(cancellationToken);
            // `echo "…" | qw submit` adds one newline the user did not mean as part of the prompt.
            if (text.EndsWith('\n')) text = text[..^1];
            if (text.EndsWith('\r')) text = text[..^1];
            body["prompt"] = text;
        }
        else
        {
            throw new CliException("give a prompt: qw submit \"Once upon a time\", or pipe it on stdin, or --messages FILE.");
        }

        if (s.MaxTokens is { } maxTokens) body["max_tokens"] = maxTokens;
        if (s.Temperature is { } temperature) body["temperature"] = temperature;
        if (s.TopP is { } topP) body["top_p"] = topP;
        if (s.TopK is { } topK) body["top_k"] = topK;
        if (s.MinP is { } minP) body["min_p"] = minP;
        if (s.RepeatPenalty is { } repeatPenalty) body["repeat_penalty"] = repeatPenalty;
        if (s.Seed is { } seed) body["seed"] = seed;
        if (s.Stop.Length > 0) body["stop"] = new JsonArray(s.Stop.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray());
        body["timeout_ms"] = (int)Math.Ceiling(s.Timeout * 1000);
        await AddStructuredOutputAsync(body, s, cancellationToken);
        if (s.Priority is { } priority) body["priority"] = priority;
        if (s.Metadata is not null)
        {
            try
            {
                body["metadata"] = JsonNode.Parse(s.Metadata);
            }
            catch (JsonException ex)
            {
                throw new CliException($"--metadata: not valid JSON ({ex.Message}).", ExitCodes.Usage, ex);
            }
        }
        return body;
    }

    /// <summary>--schema, --json-object, --grammar. A schema is converted here too, so a refused keyword is reported before anything is sent.</summary>
    private static async Task AddStructuredOutputAsync(JsonObject body, Settings s, CancellationToken cancellationToken)
    {
        var given = (s.Schema is null ? 0 : 1) + (s.JsonObject ? 1 : 0) + (s.Grammar is null ? 0 : 1);
        if (given > 1) throw new CliException("give at most one of --schema, --json-object and --grammar.");
        if (s.JsonObject) body["response_format"] = new JsonObject { ["type"] = "json_object" };
        if (s.Grammar is not null) body["grammar"] = await ReadFileAsync("--grammar", s.Grammar, cancellationToken);
        if (s.Schema is null) return;

        JsonNode? node;
        try
        {
            node = JsonNode.Parse(await ReadFileAsync("--schema", s.Schema, cancellationToken));
        }
        catch (JsonException ex)
        {
            throw new CliException($"--schema {s.Schema}: not valid JSON ({ex.Message}).", ExitCodes.Usage, ex);
        }
        if (node is not JsonObject schemaFile) throw new CliException($"--schema {s.Schema}: a JSON Schema is an object.", ExitCodes.Usage);
        // OpenAI's json_schema object ({"name", "schema", "strict"}) or a bare schema.
        var wrapped = schemaFile["schema"] is JsonObject && schemaFile.ContainsKey("name");
        var jsonSchema = wrapped ? (JsonObject)schemaFile.DeepClone() : new JsonObject
        {
            ["name"] = SchemaName(s.Schema),
            ["schema"] = schemaFile.DeepClone(),
            ["strict"] = true,
        };
        try
        {
            QueueWorker.Inference.Grammar.JsonSchemaToGbnf.Convert(jsonSchema["schema"]!.ToJsonString());
        }
        catch (QueueWorker.Inference.Grammar.SchemaNotSupportedException ex)
        {
            throw new CliException($"--schema {s.Schema}: {ex.Message}", ExitCodes.Usage, ex);
        }
        body["response_format"] = new JsonObject { ["type"] = "json_schema", ["json_schema"] = jsonSchema };
    }

    /// <summary>OpenAI's name rule (letters, digits, '_', '-', at most 64) applied to the file name.</summary>
    private static string SchemaName(string path)
    {
        var name = new string(Path.GetFileNameWithoutExtension(path).Select(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' ? c : '_').ToArray());
        return name.Length == 0 ? "schema" : name[..Math.Min(name.Length, 64)];
    }

    private static async Task<string> ReadFileAsync(string flag, string path, CancellationToken cancellationToken)
    {
        try
        {
            return await File.ReadAllTextAsync(path, Encoding.UTF8, cancellationToken);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            throw new CliException($"{flag} {path}: {ex.Message}", ExitCodes.Usage, ex);
        }
    }

    private static async Task<JsonNode> ReadMessagesAsync(string path, CancellationToken cancellationToken)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(await File.ReadAllTextAsync(path, Encoding.UTF8, cancellationToken));
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            throw new CliException($"--messages {path}: {ex.Message}", ExitCodes.Usage, ex);
        }
        catch (JsonException ex)
        {
            throw new CliException($"--messages {path}: not valid JSON ({ex.Message}).", ExitCodes.Usage, ex);
        }
        if (node is JsonObject obj && obj["messages"] is { } inner) node = inner;
        if (node is not JsonArray)
            throw new CliException($"--messages {path}: expected a JSON array of {{\"role\", \"content\"}} objects, or an object with \"messages\".");
        return node.DeepClone();
    }

    /// <summary>The flag (or input) a contract field came from, so an error points at what the user typed.</summary>
    internal static string FlagFor(string? field) => field switch
    {
        null or "body" => "job",
        "prompt" => "PROMPT",
        "id" => "--id",
        "metadata" => "--metadata",
        "timeout_ms" => "--timeout",
        _ when field.StartsWith("messages", StringComparison.Ordinal) => "--messages",
        _ when field.StartsWith("stop", StringComparison.Ordinal) => "--stop",
        _ when field.StartsWith("response_format", StringComparison.Ordinal) => "--schema/--json-object",
        _ => "--" + field.Replace('_', '-'),
    };

    /// <summary>One line: outcome, tokens, and the worker's timings.</summary>
    internal static string Summary(JobResult r)
    {
        var parts = new List<string> { $"{r.Status} ({r.FinishReason})" };
        if (r.Usage is { } u)
            parts.Add($"{u.PromptTokens} prompt{(u.CachedTokens > 0 ? $" ({u.CachedTokens} cached)" : "")} + {u.CompletionTokens} completion tokens");
        if (r.Timings is { } t)
        {
            if (t.QueuedMs is { } queued) parts.Add($"queued {Ms(queued)}");
            parts.Add($"prompt {Ms(t.PromptMs)} ({t.PromptTokensPerS.ToString("F1", CultureInfo.InvariantCulture)} tok/s)");
            parts.Add($"first token {Ms(t.FirstTokenMs)}");
            parts.Add($"generation {Ms(t.GenerationMs)} ({t.TokensPerS.ToString("F1", CultureInfo.InvariantCulture)} tok/s)");
            parts.Add($"total {Ms(t.TotalMs)}");
            if (t.CpuMs is { } cpu) parts.Add($"cpu {Ms(cpu)}");
        }
        if (r.Worker is { } w) parts.Add($"worker {w.Id}{(w.Model.Length > 0 ? $" ({w.Model})" : "")}");
        return string.Join(" · ", parts);
    }

    internal static string Ms(double ms) => ms < 1000
        ? ms.ToString("F0", CultureInfo.InvariantCulture) + " ms"
        : (ms / 1000).ToString("F2", CultureInfo.InvariantCulture) + " s";
}
