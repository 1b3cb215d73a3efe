using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using QueueWorker.Contracts;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace QueueWorker.Messaging;

/// <summary>
/// Consumes the jobs queue and runs each job through <see cref="IJobHandler"/>: manual acks, prefetch = concurrent
/// handlers, the result published with confirms before the ack, a nack with requeue whenever a job cannot be finished.
/// Jobs run outside the client's consumer callback, which only hands the delivery over: the client's frame loop waits
/// for running callbacks when the broker closes their channel, so a job running inside one would stall the whole
/// connection (no publisher confirms, no new channel) until it ended.
/// It never crashes on broker trouble: the first connect is retried, connection loss is recovered by the client, and a
/// channel the broker closes (e.g. consumer timeout) or a consumer it cancels is re-opened here.
/// <para>
/// Shutdown (<see cref="StopAsync"/>): cancel the consumer (no new deliveries), wait up to <c>RabbitMq:ShutdownGraceSeconds</c>
/// for jobs in flight, then cancel their token so they are nacked with requeue, then close the channel (the broker
/// requeues whatever is still unsettled). Nothing is lost.
/// </para>
/// </summary>
public sealed class JobConsumerService : BackgroundService, IBrokerStatus
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(5);
    // After the grace period: how long cancelled handlers get to nack (or finish publishing) before the channel closes.
    private static readonly TimeSpan RequeueWait = TimeSpan.FromSeconds(10);

    private readonly RabbitMqConnection _connection;
    private readonly ResultPublisher _publisher;
    private readonly IJobHandler _handler;
    private readonly RabbitMqOptions _options;
    private readonly ILogger<JobConsumerService> _logger;
    private readonly TimeProvider _timeProvider;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ResiliencePipeline _topologyPipeline;
    private readonly ResiliencePipeline _subscribePipeline;

    private readonly CancellationTokenSource _jobsCts = new();
    private readonly CancellationTokenSource _publishCts = new();
    private readonly SemaphoreSlim _wake = new(0, 1);
    // Held while the lane consumers are being created: a pause waits for it, so it cancels every consumer of the set
    // (a suspect delivered by a consumer still being registered would otherwise wait for a cancel-ok that never comes).
    private readonly SemaphoreSlim _consumeLock = new(1, 1);
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string _consumerTagPrefix;
    private readonly SuspectIsolation _isolation;
    private readonly JobParking _parking;
    private readonly DeadLetterConsumer? _deadLetters;
    private string _consumerTag;
    private IChannel? _channel;
    // One consumer per lane, highest lane first, all on _channel; replaced together.
    private IReadOnlyList<JobConsumer> _consumers = [];
    private int _inFlight;
    private volatile bool _stopping;
    private Task? _halt;

    public JobConsumerService(RabbitMqConnection connection, ResultPublisher publisher, IJobHandler handler,
        IOptions<RabbitMqOptions> options, ILogger<JobConsumerService> logger, TimeProvider timeProvider, IHostApplicationLifetime lifetime,
        RetryRandomizer randomizer)
    {
        _connection = connection;
        _publisher = publisher;
        _handler = handler;
        _options = options.Value;
        _logger = logger;
        _timeProvider = timeProvider;
        _lifetime = lifetime;
        _topologyPipeline = ResiliencePipelines.CreateTopology(timeProvider, logger, randomizer.Next);
        _subscribePipeline = ResiliencePipelines.CreateSubscribe(timeProvider, logger, _options.JobsQueue, randomizer.Next);
        // Our own tag (not the broker's) stays the same across automatic recovery, so the stop can always cancel it; a new
        // one for each consume after a pause (see SuspectIsolation).
        _consumerTagPrefix = connection.ClientName;
        _consumerTag = NewConsumerTag();
        _isolation = new SuspectIsolation(_options.DeliveryLimit);
        _parking = new JobParking(publisher, _options, logger);
        if (_options.AnswerDeadLetters)
            _deadLetters = new DeadLetterConsumer(_parking, _options, logger, timeProvider, Wake);
    }

    private string NewConsumerTag() => $"{_consumerTagPrefix}/{Guid.NewGuid():N}";

    public bool IsConnected => _connection.IsConnected;

    /// <summary>True while subscribed (every lane), or paused only to run a job that was delivered before on its own.</summary>
    public bool IsConsuming => !_stopping && !_connection.IsRecovering && _channel is { IsOpen: true } && ConsumersLive
        && (ConsumersActive || _isolation.Isolating);

    /// <summary>Each condition of <see cref="IsConsuming"/>, and where the supervisor is and since when.</summary>
    public string ConsumerState
    {
        get
        {
            var consumers = _consumers;
            var (step, since) = _supervisor;
            return $"stopping={_stopping}, recovering={_connection.IsRecovering}, channel={(_channel is { } c ? (c.IsOpen ? "open" : "closed") : "none")}, " +
                $"consumers={consumers.Count} (cancelled by the broker {consumers.Count(x => x.CancelledByBroker)}, inactive {consumers.Count(x => !x.Active)}), " +
                $"isolating={_isolation.Isolating}; supervisor: {step} since {since:HH:mm:ss.fff}";
        }
    }

    private sealed record SupervisorStep(string Step, DateTimeOffset Since);

    private volatile SupervisorStep _supervisor = new("starting", default);

    private void SupervisorAt(string step) => _supervisor = new SupervisorStep(step, _timeProvider.GetUtcNow());

    private bool ConsumersLive => _consumers is { Count: > 0 } consumers && consumers.All(c => !c.CancelledByBroker);

    private bool ConsumersActive => _consumers.All(c => c.Active);

    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>The prefetch in force: <c>RabbitMq:Prefetch</c>, which the host sets from <c>Inference:Slots</c> when 0; 1 when nobody did.</summary>
    public int Prefetch => _options.Prefetch > 0 ? _options.Prefetch : 1;

    /// <summary>The consumer's channel, for tests that make the broker close it.</summary>
    internal IChannel? ConsumerChannel => _channel;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        if (_options.Prefetch <= 0)
            Log.PrefetchDefaulted(_logger);
        try
        {
            SupervisorAt("connecting");
            var connection = await _connection.GetConnectionAsync(stoppingToken).ConfigureAwait(false);
            SupervisorAt("declaring the queues");
            if (!await DeclareTopologyAsync(connection, stoppingToken).ConfigureAwait(false))
                return;
            await SuperviseAsync(connection, stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    /// <summary>Declares the queues, retrying transient failures; false (and the host stopped) when a queue exists with other settings.</summary>
    private async Task<bool> DeclareTopologyAsync(IConnection connection, CancellationToken stoppingToken)
    {
        if (!_options.DeclareTopology)
        {
            Log.TopologySkipped(_logger, _options.JobsQueue, _options.ResultsQueue);
            return true;
        }
        try
        {
            await _topologyPipeline.ExecuteAsync(
                static async (state, ct) => await Topology.DeclareAsync(state.Connection, state.Options, ct).ConfigureAwait(false),
                (Connection: connection, Options: _options), stoppingToken).ConfigureAwait(false);
            Log.TopologyDeclared(_logger, _options.JobsQueue, _options.DeliveryLimit, _options.EffectiveDeadLetterQueue, _options.ResultsQueue);
            return true;
        }
        catch (TopologyMismatchException ex)
        {
            // Retrying cannot help and consuming a queue of the wrong type would break the delivery promises: stop the worker.
            Log.TopologyMismatch(_logger, ex.Message);
            Environment.ExitCode = 1;
            _lifetime.StopApplication();
            return false;
        }
    }

    /// <summary>Keeps one consumer subscribed until stopped. Connection loss is the client's to recover; anything else is re-done here.</summary>
    private async Task SuperviseAsync(IConnection connection, CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            if (NeedsSubscription(connection))
            {
                SupervisorAt("subscribing");
                // Each try checks again: the service may be stopping, or recovery may have restored the consumer meanwhile.
                await _subscribePipeline.ExecuteAsync(static async (state, ct) =>
                {
                    if (state.Self.NeedsSubscription(state.Connection))
                        await state.Self.SubscribeAsync(state.Connection, ct).ConfigureAwait(false);
                }, (Self: this, Connection: connection), stoppingToken).ConfigureAwait(false);
            }
            if (_deadLetters is { } deadLetters && !_stopping && deadLetters.NeedsSubscription(connection, _connection.IsRecovering))
            {
                SupervisorAt("subscribing to the dead-letter queue");
                await deadLetters.TrySubscribeAsync(connection, stoppingToken).ConfigureAwait(false);
            }
            if (_supervisor.Step != "watching") SupervisorAt("watching");
            await _wake.WaitAsync(PollInterval, stoppingToken).ConfigureAwait(false);
        }
    }

    private bool NeedsSubscription(IConnection connection)
    {
        if (_stopping)
            return false;
        if (_channel is not { } channel)
            return true;
        if (!connection.IsOpen || _connection.IsRecovering)
            return false; // automatic recovery restores the channel, its prefetch and the consumer
        // Cancelled by us for a pause that is over (or was cut short by a lost channel): consume again.
        return !channel.IsOpen || !ConsumersLive || (!ConsumersActive && !_isolation.Isolating);
    }

    private async Task SubscribeAsync(IConnection connection, CancellationToken cancellationToken)
    {
        var prefetch = (ushort)Prefetch;
        var old = _channel;
        _channel = null;
        _consumers = [];
        if (old is not null)
            await DisposeChannelAsync(old).ConfigureAwait(false);
        _isolation.Reset();

        // The callback only hands deliveries over (see OnDelivered), so one dispatcher suffices; prefetch bounds the jobs held.
        var channel = await connection.CreateChannelAsync(new CreateChannelOptions(
            publisherConfirmationsEnabled: false, publisherConfirmationTrackingEnabled: false,
            consumerDispatchConcurrency: 1), cancellationToken).ConfigureAwait(false);
        try
        {
            channel.ChannelShutdownAsync += OnChannelShutdownAsync;
            // Per consumer (global: false): each lane has its own window, so the jobs a lower lane holds never stop a
            // higher lane's from being delivered; the engine then admits the higher lane's first.
            await channel.BasicQosAsync(0, prefetch, global: false, cancellationToken).ConfigureAwait(false);
            _channel = channel;
            await ConsumeAsync(channel, cancellationToken).ConfigureAwait(false);
            foreach (var lane in _options.LaneQueues) Log.Consuming(_logger, lane.Queue, prefetch);
        }
        catch
        {
            _channel = null;
            await DisposeChannelAsync(channel).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>One consumer per lane (highest first), under a new tag: a pause cancels them all, a resume consumes anew.</summary>
    private async Task ConsumeAsync(IChannel channel, CancellationToken cancellationToken)
    {
        await _consumeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // A resume racing the stop or a halt: registering now would take deliveries the stop must not see.
            if (_stopping) return;
            _consumerTag = NewConsumerTag();
            List<JobConsumer> consumers = [];
            try
            {
                foreach (var lane in _options.LaneQueues)
                {
                    var consumer = new JobConsumer(channel, this, lane, TagOf(lane));
                    await channel.BasicConsumeAsync(lane.Queue, autoAck: false, consumer.Tag, noLocal: false, exclusive: false,
                        arguments: null, consumer, cancellationToken).ConfigureAwait(false);
                    consumers.Add(consumer);
                }
            }
            finally
            {
                // Those registered so far, even when a later lane failed: a pause or the stop must be able to cancel them.
                _consumers = consumers;
            }
        }
        finally
        {
            _consumeLock.Release();
        }
        if (_stopping)
            await CancelConsumerAsync(CancellationToken.None).ConfigureAwait(false); // StopAsync ran meanwhile
    }

    /// <summary>Stops deliveries so a suspect can run alone; the consumer's cancel-ok tells <see cref="SuspectIsolation"/>.</summary>
    private async Task PauseAsync(IChannel channel)
    {
        try
        {
            // Each lane's cancel-ok follows that consumer's deliveries; the last one tells SuspectIsolation (OnCancelOk).
            // After a resume still registering its consumers: wait for the whole set.
            await _consumeLock.WaitAsync(CancellationToken.None).ConfigureAwait(false);
            try
            {
                var cancelled = 0;
                foreach (var consumer in _consumers)
                {
                    if (!consumer.Active || consumer.CancelledByBroker) continue;
                    await channel.BasicCancelAsync(consumer.Tag, noWait: false, CancellationToken.None).ConfigureAwait(false);
                    cancelled++;
                }
                // None left to cancel: every cancel-ok (and every delivery before it) was handled already.
                if (cancelled == 0) _isolation.Paused();
            }
            finally
            {
                _consumeLock.Release();
            }
        }
        catch (Exception ex)
        {
            // Whatever still arrives while the suspect runs is put back at the end of the queue: safe, if wasteful.
            Log.PauseFailed(_logger, ResiliencePipelines.Describe(ex));
            _isolation.Paused();
        }
    }

    /// <summary>The suspect is settled: consume again (or let the supervisor re-subscribe when that fails).</summary>
    private async Task ResumeAsync(IChannel channel, string? messageId)
    {
        if (_stopping)
            return;
        try
        {
            if (!ReferenceEquals(channel, _channel) || !channel.IsOpen || _connection.IsRecovering)
            {
                Wake();
                return;
            }
            await ConsumeAsync(channel, CancellationToken.None).ConfigureAwait(false);
            Log.ConsumptionResumed(_logger, messageId);
        }
        catch (Exception ex)
        {
            Log.SubscribeFailed(_logger, _options.JobsQueue, ResiliencePipelines.Describe(ex), PollInterval.TotalMilliseconds);
            Wake();
        }
    }

    private Task OnChannelShutdownAsync(object sender, ShutdownEventArgs args)
    {
        // Its unacked deliveries went back to the queue with it: nothing is held any more, a waiting suspect is not run.
        if (ReferenceEquals(sender, _channel))
            _isolation.Reset();
        if (!_stopping && args.Initiator == ShutdownInitiator.Peer && _connection.Current is { IsOpen: true })
            Log.ChannelClosedByBroker(_logger, args.ReplyCode, args.ReplyText);
        Wake();
        return Task.CompletedTask;
    }

    /// <summary>Every lane's consumer is cancelled: each delivery sent before has been admitted (one dispatcher, in order).</summary>
    private void OnCancelOk()
    {
        var consumers = _consumers;
        if (consumers.Count > 0 && consumers.All(c => !c.Active || c.CancelledByBroker))
            _isolation.Paused();
    }

    private string TagOf(LaneQueue lane) => lane.Lane.Length == 0 ? _consumerTag : _consumerTag + "/" + lane.Lane;

    private void OnCancelledByBroker(LaneQueue lane)
    {
        if (_stopping)
            return;
        Log.ConsumerCancelledByBroker(_logger, lane.Queue);
        Wake();
    }

    private void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already signalled.
        }
        catch (ObjectDisposedException)
        {
            // A late channel event after the service is gone.
        }
    }

    /// <summary>
    /// Runs in the client's consumer callback: copies the delivery (the client reuses its buffer afterwards) and starts the
    /// job on the thread pool, then returns at once so the client's dispatcher and frame loop never wait for a job.
    /// </summary>
    private void OnDelivered(IChannel channel, LaneQueue lane, ulong deliveryTag, bool redelivered, IReadOnlyBasicProperties properties, ReadOnlyMemory<byte> body)
    {
        Interlocked.Increment(ref _inFlight);
        IncomingJob job;
        IsolationAdmission admission;
        BasicProperties? copy = null;
        try
        {
            job = DeliveryMapper.ToIncomingJob(properties, body, redelivered, _timeProvider.GetUtcNow()) with { Lane = lane.Lane, LaneRank = lane.Rank, LaneWeight = lane.Weight };
            // Decided here, in delivery order, before the next delivery is seen (the pause depends on that order).
            admission = _isolation.Admit(job.PriorDeliveries);
            if (admission.Ticket.Action is DeliveryAction.Requeue or DeliveryAction.Park)
            {
                copy = DeadLetters.RequeueProperties(properties, 0);
                copy.Headers = properties.Headers is { } h ? new Dictionary<string, object?>(h, StringComparer.Ordinal) : null;
            }
        }
        catch (Exception ex)
        {
            // Never seen; but a delivery that cannot even be read must still be settled.
            Log.HandlerFailed(_logger, ex, properties.MessageId, 0);
            _ = InDeliveryOrder(() => FinishAsync(SettleAsync(channel, deliveryTag, ack: false, properties.MessageId), null, channel, null));
            return;
        }
        var ticket = admission.Ticket;
        if (admission.Pause)
        {
            Log.SuspectIsolated(_logger, job.MessageId, job.PriorDeliveries, _isolation.Held);
            _ = PauseAsync(channel);
        }
        Task Work() => ticket.Action switch
        {
            DeliveryAction.RunAlone => RunAloneAsync(channel, deliveryTag, job, ticket),
            DeliveryAction.Requeue => RequeueAtEndAsync(channel, deliveryTag, job, copy!),
            DeliveryAction.Park => ParkPoisonAsync(channel, deliveryTag, job, copy!),
            _ => ProcessAsync(channel, deliveryTag, job),
        };
        _ = InDeliveryOrder(() => FinishAsync(Work(), ticket, channel, job.MessageId));
    }

    /// <summary>
    /// Runs a delivery's work on the thread pool's global (first in, first out) queue. <c>Task.Run</c> from the
    /// dispatcher's pool thread queues to that thread's local queue, which it runs last in, first out: a burst of
    /// deliveries reached the engine nearly reversed (measured: 20 jobs published at once finished s4, a16, a14, a15, …),
    /// so within a lane, priority and tenant the newest job went first and the newcomer credit went to whichever tenant's
    /// job happened to come out first. Pool threads still race, so this is delivery order but not strictly: neighbours may
    /// swap, and a job whose thread is preempted before it reaches the engine falls behind (seen on a loaded CI machine).
    /// </summary>
    private static Task InDeliveryOrder(Func<Task> work) =>
        Task.Factory.StartNew(work, CancellationToken.None, TaskCreationOptions.PreferFairness | TaskCreationOptions.DenyChildAttach,
            TaskScheduler.Default).Unwrap();

    /// <summary>A suspect: waits until it is alone on the channel, then runs as any job.</summary>
    private async Task RunAloneAsync(IChannel channel, ulong deliveryTag, IncomingJob job, IsolationTicket ticket)
    {
        bool alone;
        try
        {
            alone = await ticket.Alone.WaitAsync(_jobsCts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            alone = true; // shutdown past its grace: ProcessAsync nacks it
        }
        if (!alone)
        {
            // Its channel closed while it waited: the broker has requeued it already.
            Log.SettleSkipped(_logger, job.MessageId, "run");
            return;
        }
        Log.SuspectRunsAlone(_logger, job.MessageId);
        await ProcessAsync(channel, deliveryTag, job).ConfigureAwait(false);
    }

    /// <summary>Another suspect while one is isolated: to the end of the jobs queue with its count, then acked.</summary>
    private async Task RequeueAtEndAsync(IChannel channel, ulong deliveryTag, IncomingJob job, BasicProperties properties)
    {
        if (_stopping)
        {
            await NackWhenHaltedAsync(channel, deliveryTag, job.MessageId).ConfigureAwait(false);
            return;
        }
        Log.SuspectRequeued(_logger, job.MessageId, job.PriorDeliveries);
        var moved = await _parking.RequeueAtEndAsync(job, properties, _publishCts.Token).ConfigureAwait(false);
        await SettleAsync(channel, deliveryTag, ack: moved, job.MessageId).ConfigureAwait(false);
    }

    /// <summary>
    /// Delivered more often than the limit without an answer: every worker that took it died. Not run again: answered
    /// <c>poison_job</c> and parked (with <c>RabbitMq:AnswerDeadLetters</c> off, rejected into the dead-letter queue).
    /// </summary>
    private async Task ParkPoisonAsync(IChannel channel, ulong deliveryTag, IncomingJob job, BasicProperties properties)
    {
        Log.PoisonDetected(_logger, job.MessageId, job.PriorDeliveries, _options.DeliveryLimit);
        if (!_options.AnswerDeadLetters)
        {
            await SettleAsync(channel, deliveryTag, ack: false, job.MessageId, deadLetter: true).ConfigureAwait(false);
            return;
        }
        var parked = await _parking.AnswerAndParkAsync(job, properties, DeadLetters.DeliveryLimit, DeadLetters.Poison(_options), _publishCts.Token)
            .ConfigureAwait(false);
        await SettleAsync(channel, deliveryTag, ack: parked, job.MessageId).ConfigureAwait(false);
    }

    private async Task NackWhenHaltedAsync(IChannel channel, ulong deliveryTag, string? messageId)
    {
        Log.NackedWhileStopping(_logger, messageId);
        if (Volatile.Read(ref _halt) is { } halting) await halting.ConfigureAwait(false);
        await SettleAsync(channel, deliveryTag, ack: false, messageId).ConfigureAwait(false);
    }

    /// <summary>
    /// Awaits one delivery's work, settles its isolation ticket (resuming consumption after an isolated job) and counts
    /// it out of <see cref="InFlight"/>; the work never throws.
    /// </summary>
    private async Task FinishAsync(Task work, IsolationTicket? ticket, IChannel channel, string? messageId)
    {
        try
        {
            await work.ConfigureAwait(false);
        }
        finally
        {
            if (ticket is not null && _isolation.Settle(ticket))
                await ResumeAsync(channel, messageId).ConfigureAwait(false);
            if (Interlocked.Decrement(ref _inFlight) == 0 && _stopping)
                _drained.TrySetResult();
        }
    }

    private async Task ProcessAsync(IChannel channel, ulong deliveryTag, IncomingJob job)
    {
        var messageId = job.MessageId;
        if (_stopping)
        {
            // Not before the consumer is cancelled: a nack while it still consumes hands the job straight back to it.
            await NackWhenHaltedAsync(channel, deliveryTag, messageId).ConfigureAwait(false);
            return;
        }
        Log.JobReceived(_logger, messageId, job.DeliveryCount, job.Redelivered, job.Body.Length);

        JobResult result;
        try
        {
            result = await _handler.HandleAsync(job, _jobsCts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_jobsCts.IsCancellationRequested)
        {
            Log.JobRequeuedOnShutdown(_logger, messageId);
            await SettleAsync(channel, deliveryTag, ack: false, messageId).ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException ex)
        {
            // Interrupted, not wrong (e.g. the engine stopped): another worker may finish it. Whatever interrupted it would
            // interrupt the next job too, so stop taking jobs before the nack: otherwise the broker hands the same jobs
            // straight back and each bounce spends one of their delivery attempts.
            Log.JobInterrupted(_logger, messageId, ex.Message);
            await HaltAsync().ConfigureAwait(false);
            await SettleAsync(channel, deliveryTag, ack: false, messageId).ConfigureAwait(false);
            return;
        }
        catch (Exception ex)
        {
            // The handler answers every job itself, so this is a bug in it. Answer the job anyway: a requeued job that
            // fails the same way would only run again until the delivery limit, and its producer would hear nothing.
            Log.HandlerFailed(_logger, ex, messageId, job.DeliveryCount);
            result = InternalError(job, null, ex);
        }

        string destination;
        try
        {
            destination = await _publisher.PublishAsync(result, job, _publishCts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (!ResiliencePipelines.IsTransient(ex))
        {
            // Not the broker: this result can never be written (it would fail the same way on every delivery). A
            // minimal result in its place keeps the promise of one answer per job; the broker deciding is the only requeue.
            Log.ResultUnpublishable(_logger, result.Id, messageId, ResiliencePipelines.Describe(ex));
            var fallback = InternalError(job, result.Id, ex);
            try
            {
                destination = await _publisher.PublishAsync(fallback, job, _publishCts.Token).ConfigureAwait(false);
            }
            catch (Exception fallbackEx)
            {
                Log.PublishFailed(_logger, fallback.Id, messageId, ResiliencePipelines.Describe(fallbackEx));
                await SettleAsync(channel, deliveryTag, ack: false, messageId).ConfigureAwait(false);
                return;
            }
        }
        catch (Exception ex)
        {
            Log.PublishFailed(_logger, result.Id, messageId, ResiliencePipelines.Describe(ex));
            await SettleAsync(channel, deliveryTag, ack: false, messageId).ConfigureAwait(false);
            return;
        }
        if (await SettleAsync(channel, deliveryTag, ack: true, messageId).ConfigureAwait(false))
            Log.JobAcked(_logger, messageId, result.Id, destination);
    }

    /// <summary>
    /// The answer to a job the worker failed on in a way nobody foresaw: nothing from the job but an id that can be
    /// published as an AMQP short string (the result's, else the message id, else a new one) and the exception's type.
    /// </summary>
    internal static JobResult InternalError(IncomingJob job, string? resultId, Exception ex)
    {
        return JobResult.Failed(AmqpShortString.EchoableIdOrNew(resultId, job.MessageId), JobError.Internal(ex));
    }

    /// <summary>
    /// Acks, or nacks with requeue (or, <paramref name="deadLetter"/>, rejects without requeue into the dead-letter queue).
    /// Never throws: when the channel is gone the broker has requeued the delivery already.
    /// </summary>
    private async Task<bool> SettleAsync(IChannel channel, ulong deliveryTag, bool ack, string? messageId, bool deadLetter = false)
    {
        var action = ack ? "ack" : deadLetter ? "reject" : "nack";
        try
        {
            // Checked inside the try: the channel may be disposed already (stopped, or replaced after the broker closed it).
            if (!channel.IsOpen)
            {
                Log.SettleSkipped(_logger, messageId, action);
                return false;
            }
            // Not cancellable: an ack or nack is one frame and must not be skipped because the host is stopping.
            if (ack)
                await channel.BasicAckAsync(deliveryTag, multiple: false, CancellationToken.None).ConfigureAwait(false);
            else if (deadLetter)
                await channel.BasicRejectAsync(deliveryTag, requeue: false, CancellationToken.None).ConfigureAwait(false);
            else
                await channel.BasicNackAsync(deliveryTag, multiple: false, requeue: true, CancellationToken.None).ConfigureAwait(false);
            return true;
        }
        catch (Exception)
        {
            Log.SettleSkipped(_logger, messageId, action);
            return false;
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        if (InFlight == 0)
            _drained.TrySetResult();

        await CancelConsumerAsync(cancellationToken).ConfigureAwait(false);
        Log.StopConsuming(_logger, InFlight, _options.ShutdownGraceSeconds);
        await WaitDrainedAsync(TimeSpan.FromSeconds(_options.ShutdownGraceSeconds), cancellationToken).ConfigureAwait(false);

        if (InFlight > 0)
        {
            Log.GraceExpired(_logger, InFlight);
            await _jobsCts.CancelAsync().ConfigureAwait(false);
            await WaitDrainedAsync(RequeueWait, cancellationToken).ConfigureAwait(false);
        }
        if (_deadLetters is { } deadLetters)
            await deadLetters.StopAsync(RequeueWait).ConfigureAwait(false);
        await _publishCts.CancelAsync().ConfigureAwait(false);
        await base.StopAsync(cancellationToken).ConfigureAwait(false);

        if (_channel is { } channel)
        {
            _channel = null;
            await DisposeChannelAsync(channel).ConfigureAwait(false);
        }
        Log.Stopped(_logger, InFlight);
    }

    /// <summary>
    /// Stops taking jobs for good (no resubscription) while the host goes on; readiness fails. Deliveries already
    /// prefetched are nacked as on shutdown, and go to other workers since this one no longer consumes.
    /// </summary>
    private Task HaltAsync()
    {
        // One cancellation, and every interrupted or stopping delivery waits for it before its nack (see ProcessAsync).
        if (Volatile.Read(ref _halt) is { } existing) return existing;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (Interlocked.CompareExchange(ref _halt, done.Task, null) is { } winner) return winner;
        _ = HaltCoreAsync(done);
        return done.Task;
    }

    private async Task HaltCoreAsync(TaskCompletionSource done)
    {
        _stopping = true;
        Log.ConsumerHalted(_logger);
        await CancelConsumerAsync(CancellationToken.None).ConfigureAwait(false);
        done.TrySetResult();
    }

    private async Task CancelConsumerAsync(CancellationToken cancellationToken)
    {
        // Under the consume lock: a resume registering its consumers finishes first (and sees _stopping next time),
        // so no consumer is left running after the stop.
        try
        {
            await _consumeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return; // the host's shutdown timeout fired: the channel's close cancels them anyway
        }
        try
        {
            if (_channel is not { IsOpen: true } channel)
                return;
            foreach (var consumer in _consumers)
            {
                if (consumer.CancelledByBroker || !consumer.Active) continue;
                try
                {
                    await channel.BasicCancelAsync(consumer.Tag, noWait: false, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    Log.CancelFailed(_logger, ResiliencePipelines.Describe(ex));
                }
            }
        }
        finally
        {
            _consumeLock.Release();
        }
    }

    private async Task WaitDrainedAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await _drained.Task.WaitAsync(timeout, _timeProvider, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Grace over: the caller decides.
        }
        catch (OperationCanceledException)
        {
            // The host's shutdown timeout fired first.
        }
    }

    private static async Task DisposeChannelAsync(IChannel channel)
    {
        try
        {
            if (channel.IsOpen)
                await channel.CloseAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Closing a channel whose connection is gone: nothing to release but the object.
        }
        await channel.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Hands deliveries to the service; remembers a cancel sent by the broker (queue deleted), which needs a new subscription.</summary>
    private sealed class JobConsumer(IChannel channel, JobConsumerService owner, LaneQueue lane, string tag) : AsyncDefaultBasicConsumer(channel)
    {
        private volatile bool _cancelledByBroker;
        private volatile bool _cancelled;

        /// <summary>Our own tag (not the broker's): it stays the same across automatic recovery, so the stop can always cancel it.</summary>
        public string Tag { get; } = tag;

        public bool CancelledByBroker => _cancelledByBroker;

        /// <summary>Subscribed: not yet cancelled by us (a pause, a halt, the stop).</summary>
        public bool Active => !_cancelled;

        /// <summary>
        /// Our cancel is done. The client dispatches it after every delivery the broker sent before it, so each of those
        /// has been admitted by now (<see cref="SuspectIsolation.Paused"/> relies on it).
        /// </summary>
        public override async Task HandleBasicCancelOkAsync(string consumerTag, CancellationToken cancellationToken = default)
        {
            _cancelled = true;
            await base.HandleBasicCancelOkAsync(consumerTag, cancellationToken).ConfigureAwait(false);
            owner.OnCancelOk();
        }

        public override Task HandleBasicDeliverAsync(string consumerTag, ulong deliveryTag, bool redelivered, string exchange,
            string routingKey, IReadOnlyBasicProperties properties, ReadOnlyMemory<byte> body, CancellationToken cancellationToken = default)
        {
            owner.OnDelivered(Channel, lane, deliveryTag, redelivered, properties, body);
            return Task.CompletedTask;
        }

        public override async Task HandleBasicCancelAsync(string consumerTag, CancellationToken cancellationToken = default)
        {
            _cancelledByBroker = true;
            await base.HandleBasicCancelAsync(consumerTag, cancellationToken).ConfigureAwait(false);
            owner.OnCancelledByBroker(lane);
        }
    }

    public override void Dispose()
    {
        base.Dispose();
        _jobsCts.Dispose();
        _publishCts.Dispose();
        _wake.Dispose();
        _consumeLock.Dispose();
    }
}
