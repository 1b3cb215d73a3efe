using System.ComponentModel;
using System.Globalization;
using QueueWorker.Messaging;
using Spectre.Console;
using Spectre.Console.Cli;

namespace QueueWorker.Bench.Commands;

/// <summary>`qwbench cluster`: scale-out figures on a RabbitMQ cluster (issue 11) and the broker's publish+ack rate.</summary>
internal sealed class ClusterCommand : AsyncCommand<ClusterCommand.Settings>
{
    public const string Description =
        "Scale-out on a RabbitMQ cluster: the same short jobs through each worker layout (e.g. 1x2 = one worker of 2 threads, " +
        "2x1, 3x1), each freshly started on its own quorum queues, rounds interleaved; then the broker's own rate for job- and " +
        "result-sized messages (publish with confirms to a quorum queue, consume with one ack each, both streams at once). " +
        "On a machine with fewer cores than workers x threads this measures the overhead of distributing, not a speed-up.";

    internal sealed class Settings : CommandSettings
    {
        [CommandOption("--broker-uri <URIS>")]
        [Description("The cluster's nodes, comma-separated (ops/rabbitmq/start-cluster.sh uris). Workers get the whole list; the producer connects to the first.")]
        public string? BrokerUri { get; init; }

        [CommandOption("--model <GGUF>")]
        [Description("The model the workers load.")]
        [DefaultValue(BenchCommand.Settings.DefaultMemoryModel)]
        public string Model { get; init; } = BenchCommand.Settings.DefaultMemoryModel;

        [CommandOption("--layouts <LIST>")]
        [Description("Worker layouts WORKERSxTHREADS, comma-separated.")]
        [DefaultValue("1x2,2x1,3x1")]
        public string Layouts { get; init; } = "1x2,2x1,3x1";

        [CommandOption("--jobs <N>")]
        [Description("Short jobs per round (8–32 generated tokens each, the worker section's small jobs).")]
        [DefaultValue(150)]
        public int Jobs { get; init; } = 150;

        [CommandOption("--rounds <N>")]
        [Description("Measured rounds per layout (after one warm-up round), interleaved.")]
        [DefaultValue(3)]
        public int Rounds { get; init; } = 3;

        [CommandOption("--slots <N>")]
        [Description("Inference:Slots of every worker.")]
        [DefaultValue(4)]
        public int Slots { get; init; } = 4;

        [CommandOption("--broker-messages <N>")]
        [Description("Messages per stream of the broker measurement (0 = skip it).")]
        [DefaultValue(4000)]
        public int BrokerMessages { get; init; } = 4000;

        [CommandOption("--job-bytes <N>")]
        [Description("Size of a job message in the broker measurement (0 = the mean size of the scale-out rounds' jobs).")]
        [DefaultValue(0)]
        public int JobBytes { get; init; }

        [CommandOption("--result-bytes <N>")]
        [Description("Size of a result message in the broker measurement (0 = the mean size of the scale-out rounds' results).")]
        [DefaultValue(0)]
        public int ResultBytes { get; init; }

        [CommandOption("--in-flight <N>")]
        [Description("Publishes awaiting their confirm at once, per stream.")]
        [DefaultValue(100)]
        public int InFlight { get; init; } = 100;

        [CommandOption("--prefetch <N>")]
        [Description("Consumer prefetch of the broker measurement.")]
        [DefaultValue(50)]
        public int Prefetch { get; init; } = 50;

        [CommandOption("--broker-rounds <N>")]
        [Description("Repetitions of the broker measurement.")]
        [DefaultValue(3)]
        public int BrokerRounds { get; init; } = 3;

        [CommandOption("--worker-dll <FILE>")]
        [Description("The worker binary (default: src/QueueWorker/bin/<configuration of qwbench>/net10.0/QueueWorker.dll of this repository).")]
        public string? WorkerDll { get; init; }

        public IReadOnlyList<WorkerLayout> LayoutList =>
            Layouts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(t => WorkerLayout.TryParse(t, out var l) ? l : null).OfType<WorkerLayout>().ToList();

        public override ValidationResult Validate()
        {
            if (string.IsNullOrWhiteSpace(BrokerUri))
            {
                return ValidationResult.Error("--broker-uri: required (the cluster's node URIs, comma-separated; ops/rabbitmq/start-cluster.sh uris prints them)");
            }

            if (!BrokerEndpoints.TryParse(BrokerUri, "--broker-uri", out _, out var errors))
            {
                return ValidationResult.Error(string.Join(" ", errors));
            }

            var items = Layouts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (items.Length == 0 || items.Length != LayoutList.Count)
            {
                return ValidationResult.Error($"--layouts: '{Layouts}' must be WORKERSxTHREADS items (workers 1–16, threads 1–64), comma-separated, e.g. 1x2,2x1,3x1");
            }

            if (Jobs < 1 || Rounds < 1 || Slots < 1 || BrokerRounds < 1)
            {
                return ValidationResult.Error("--jobs, --rounds, --slots and --broker-rounds must be at least 1");
            }

            if (BrokerMessages < 0 || JobBytes < 0 || ResultBytes < 0 || InFlight < 1 || Prefetch is < 1 or > ushort.MaxValue)
            {
                return ValidationResult.Error("--broker-messages, --job-bytes and --result-bytes must be 0 or more; --in-flight at least 1; --prefetch 1–65535");
            }

            if (!File.Exists(Model))
            {
                return ValidationResult.Error($"--model: file not found: {Path.GetFullPath(Model)}");
            }

            if (WorkerDll is not null ? !File.Exists(WorkerDll) : WorkerProcess.FindWorkerDll(AppContext.BaseDirectory) is null)
            {
                return ValidationResult.Error("--worker-dll: no worker binary found (build src/QueueWorker in the configuration of this qwbench, or give its QueueWorker.dll)");
            }

            return ValidationResult.Success();
        }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var console = AnsiConsole.Console;
        var plan = new ClusterBenchPlan(
            Path.GetFullPath(settings.WorkerDll ?? WorkerProcess.FindWorkerDll(AppContext.BaseDirectory)!),
            settings.BrokerUri!,
            Path.GetFullPath(settings.Model),
            settings.LayoutList,
            settings.Jobs,
            settings.Rounds,
            settings.Slots,
            settings.BrokerMessages == 0
                ? null
                : new BrokerLoadPlan(settings.BrokerMessages, settings.JobBytes, settings.ResultBytes, settings.InFlight, settings.Prefetch, settings.BrokerRounds));
        console.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"cluster {SecretMasker.MaskUri(plan.BrokerUri)}; {Environment.ProcessorCount} CPUs; layouts {string.Join(", ", plan.Layouts)}; " +
            $"{plan.Jobs} short jobs per round, {plan.Rounds} rounds (+1 warm-up), {plan.Slots} slots per worker; model {Path.GetFileName(plan.Model)}")));
        var measured = await new ClusterBenchRunner(plan, line => console.MarkupLine(Markup.Escape(line))).RunAsync(cancellationToken);
        var (layouts, broker) = (measured.Layouts, measured.Broker);

        var table = new Table().AddColumns("layout", "jobs/s median", "min–max", "vs first layout", "rounds");
        var baseline = Median(layouts[0].JobsPerSecond);
        foreach (var layout in layouts)
        {
            var median = Median(layout.JobsPerSecond);
            table.AddRow(layout.Layout.ToString(), F(median, "F1"), $"{F(layout.JobsPerSecond.Min(), "F1")}–{F(layout.JobsPerSecond.Max(), "F1")}",
                F(median / baseline, "F2"), string.Join(" ", layout.JobsPerSecond.Select(r => F(r, "F1"))));
        }

        console.Write(table);
        if (broker.Count > 0)
        {
            var cycles = broker.Select(b => b.JobCyclesPerSecond).ToList();
            console.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                $"broker: {Median(cycles):F0} job cycles/s median ({cycles.Min():F0}–{cycles.Max():F0}) — one cycle = a {broker[0].Jobs.Bytes} B job and a " +
                $"{broker[0].Results.Bytes} B result, each published with a confirm to a quorum queue and consumed with an ack")));
        }

        return 0;
    }

    private static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);

    private static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
