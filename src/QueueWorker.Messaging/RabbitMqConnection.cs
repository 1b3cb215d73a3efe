using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace QueueWorker.Messaging;

/// <summary>
/// The worker's one AMQP connection. The first connect is retried with backoff until the broker is up (the host keeps
/// running meanwhile); after that the client's automatic recovery reconnects and restores channels, queues and consumers
/// (broker restart, <c>rabbitmqctl close_connection</c>, network loss).
/// </summary>
public sealed class RabbitMqConnection : IAsyncDisposable
{
    private readonly RabbitMqOptions _options;
    private readonly ILogger<RabbitMqConnection> _logger;
    private readonly ResiliencePipeline _connectPipeline;
    private readonly SemaphoreSlim _connectLock = new(1, 1);
    private readonly CancellationTokenSource _disposeCts = new();
    private volatile IConnection? _connection;
    private readonly BrokerEndpoints _endpoints;
    private volatile bool _recovering;

    public RabbitMqConnection(IOptions<RabbitMqOptions> options, ILogger<RabbitMqConnection> logger, TimeProvider timeProvider,
        RetryRandomizer randomizer)
    {
        _options = options.Value;
        _logger = logger;
        ClientName = string.IsNullOrWhiteSpace(_options.ClientName)
            ? $"queueworker@{Environment.MachineName}:{Environment.ProcessId}"
            : _options.ClientName;
        MaskedUri = SecretMasker.MaskUri(_options.Uri);
        _endpoints = BrokerEndpoints.Parse(_options.Uri);
        _connectPipeline = ResiliencePipelines.CreateConnect(timeProvider, logger, MaskedUri, randomizer.Next);
    }

    /// <summary>The connection name the broker shows.</summary>
    public string ClientName { get; }

    public string MaskedUri { get; }

    public bool IsConnected => _connection is { IsOpen: true } && !_recovering;

    /// <summary>True between a connection loss and the end of the client's recovery (channels and consumers restored).</summary>
    public bool IsRecovering => _recovering;

    /// <summary>The connection, once the first connect worked; null before.</summary>
    public IConnection? Current => _connection;

    /// <summary>Returns the connection, connecting first (retrying until <paramref name="cancellationToken"/> fires) when there is none.</summary>
    public async Task<IConnection> GetConnectionAsync(CancellationToken cancellationToken)
    {
        if (_connection is { } existing)
            return existing;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposeCts.Token);
        await _connectLock.WaitAsync(linked.Token).ConfigureAwait(false);
        try
        {
            if (_connection is { } raced)
                return raced;
            Log.Connecting(_logger, MaskedUri, ClientName);
            var factory = CreateFactory();
            var connection = await _connectPipeline.ExecuteAsync(
                static async (state, ct) => await state.Endpoints.ConnectAsync(state.Factory, ct).ConfigureAwait(false),
                (Factory: factory, Endpoints: _endpoints), linked.Token).ConfigureAwait(false);
            connection.ConnectionShutdownAsync += OnShutdownAsync;
            connection.RecoverySucceededAsync += OnRecoverySucceededAsync;
            connection.ConnectionRecoveryErrorAsync += OnRecoveryErrorAsync;
            connection.ConnectionBlockedAsync += OnBlockedAsync;
            connection.ConnectionUnblockedAsync += OnUnblockedAsync;
            _connection = connection;
            Log.Connected(_logger, MaskedUri, ClientName, _options.HeartbeatSeconds);
            return connection;
        }
        finally
        {
            _connectLock.Release();
        }
    }

    /// <summary>The nodes of <c>RabbitMq:Uri</c> (one, or a cluster's list): connect and recovery try them in turn.</summary>
    public BrokerEndpoints Endpoints => _endpoints;

    internal ConnectionFactory CreateFactory() => _endpoints.ApplyTo(new ConnectionFactory
    {
        ClientProvidedName = ClientName,
        RequestedHeartbeat = TimeSpan.FromSeconds(_options.HeartbeatSeconds),
        AutomaticRecoveryEnabled = true,
        TopologyRecoveryEnabled = true,
        // Retry recovery every 2 s (default 5 s): a worker should be back soon after the broker is.
        NetworkRecoveryInterval = TimeSpan.FromSeconds(2),
    });

    private Task OnShutdownAsync(object sender, ShutdownEventArgs args)
    {
        if (args.Initiator == ShutdownInitiator.Application)
            return Task.CompletedTask;
        _recovering = true;
        Log.ConnectionLost(_logger, args.ReplyCode, args.ReplyText, args.Initiator.ToString());
        return Task.CompletedTask;
    }

    private Task OnRecoverySucceededAsync(object sender, AsyncEventArgs args)
    {
        _recovering = false;
        Log.ConnectionRecovered(_logger);
        return Task.CompletedTask;
    }

    private Task OnRecoveryErrorAsync(object sender, ConnectionRecoveryErrorEventArgs args)
    {
        Log.RecoveryAttemptFailed(_logger, ResiliencePipelines.Describe(args.Exception));
        return Task.CompletedTask;
    }

    private Task OnBlockedAsync(object sender, ConnectionBlockedEventArgs args)
    {
        Log.ConnectionBlocked(_logger, args.Reason);
        return Task.CompletedTask;
    }

    private Task OnUnblockedAsync(object sender, AsyncEventArgs args)
    {
        Log.ConnectionUnblocked(_logger);
        return Task.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await _disposeCts.CancelAsync().ConfigureAwait(false);
        if (_connection is { } connection)
        {
            _connection = null;
            try
            {
                await connection.CloseAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Closing a connection that is already gone: nothing left to release but the object.
            }
            await connection.DisposeAsync().ConfigureAwait(false);
        }
        _disposeCts.Dispose();
        _connectLock.Dispose();
    }
}
