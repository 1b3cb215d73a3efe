namespace QueueWorker.Testing;

/// <summary>
/// The tests' timeouts in one place. A timeout only bounds a wait that normally ends much sooner, so a slower machine
/// needs a longer bound, not a different test: on CI (<c>CI=true</c>) every span is multiplied by <see cref="Factor"/>.
/// </summary>
public static class Waits
{
    /// <summary>3 on CI, else 1.</summary>
    public static double Factor { get; } = TestSettings.IsCI ? 3 : 1;

    /// <summary><paramref name="span"/> scaled for this machine.</summary>
    public static TimeSpan Scale(TimeSpan span) => span * Factor;

    /// <summary><paramref name="seconds"/> seconds, scaled for this machine.</summary>
    public static TimeSpan Seconds(double seconds) => Scale(TimeSpan.FromSeconds(seconds));

    /// <summary>Opening an AMQP connection to a running broker.</summary>
    public static TimeSpan BrokerConnect => Seconds(15);

    /// <summary>One rabbitmqctl command (the CLI starts an Erlang VM each time: seconds on a loaded machine).</summary>
    public static TimeSpan Rabbitmqctl => Seconds(120);

    /// <summary>A message expected in a queue (a result, a dead letter).</summary>
    public static TimeSpan Message => Seconds(20);

    /// <summary>A private RabbitMQ node starting (ops/rabbitmq/start-local.sh's own bound, and the script's).</summary>
    public static TimeSpan PrivateNodeStart => Seconds(240);

    /// <summary>The worker process loading the model and connecting (<c>/readyz</c> answers 200).</summary>
    public static TimeSpan WorkerReady => Seconds(90);

    /// <summary>The worker finishing its shutdown after SIGTERM before it is killed.</summary>
    public static TimeSpan WorkerStop => Seconds(20);
}
