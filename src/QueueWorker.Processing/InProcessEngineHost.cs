using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using QueueWorker.Inference;

namespace QueueWorker.Processing;

/// <summary>How a tool's in-process engine logs.</summary>
/// <param name="Logs">Where the engine logs; null: nowhere (a terminal with progress bars must not be torn by it).</param>
/// <param name="MinimumLevel">The lowest level written to <paramref name="Logs"/>.</param>
public sealed record EngineHostLogging(ILoggerProvider? Logs = null, LogLevel MinimumLevel = LogLevel.Information)
{
    public static EngineHostLogging None { get; } = new();
}

/// <summary>The engine stopped (its background start failed) before the model was loaded; the engine's log says why.</summary>
public sealed class EngineStoppedException(string message) : Exception(message);

/// <summary>
/// The worker's engine inside a tool (<c>qw --local</c>, the bench), built the way the worker builds it: a Generic Host
/// with <see cref="InferenceHostingExtensions.AddInference"/> and only the configuration given (no appsettings.json,
/// no environment unless the caller's configuration has them), its hosted services started and the model loaded.
/// </summary>
public sealed class InProcessEngineHost : IAsyncDisposable
{
    private readonly IHost _host;
    private int _disposed;

    private InProcessEngineHost(IHost host)
    {
        _host = host;
        Engine = host.Services.GetRequiredService<IInferenceEngine>();
        Options = host.Services.GetRequiredService<IOptions<InferenceOptions>>().Value;
    }

    public IInferenceEngine Engine { get; }

    /// <summary>The engine's validated <c>Inference:*</c> settings.</summary>
    public InferenceOptions Options { get; }

    public IServiceProvider Services => _host.Services;

    /// <summary>
    /// Builds and starts the host, then waits until the engine is ready. A bad setting or model fails here with the
    /// engine's own exception (<see cref="OptionsValidationException"/>, <see cref="FileNotFoundException"/>, ...);
    /// an engine that stops before it is ready fails with <see cref="EngineStoppedException"/>. Nothing is left running.
    /// </summary>
    public static async Task<InProcessEngineHost> StartAsync(IConfiguration configuration, EngineHostLogging logging, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(logging);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            DisableDefaults = true,
            ContentRootPath = AppContext.BaseDirectory,
            Configuration = new ConfigurationManager(),
        });
        builder.Configuration.AddConfiguration(configuration);
        builder.Logging.ClearProviders();
        if (logging.Logs is { } logs)
        {
            builder.Logging.SetMinimumLevel(logging.MinimumLevel);
            builder.Logging.AddProvider(logs);
            // The host's own "failed to start" repeats the exception the caller reports anyway.
            if (logging.MinimumLevel > LogLevel.Debug) builder.Logging.AddFilter("Microsoft.Extensions.Hosting", LogLevel.None);
        }
        builder.AddInference();

        var host = builder.Build();
        try
        {
            await host.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // Not StopAsync: a host whose start failed has nothing to stop (and its StopAsync throws); disposing frees the engine.
            await DisposeOnlyAsync(host).ConfigureAwait(false);
            throw;
        }

        var started = new InProcessEngineHost(host);
        try
        {
            await started.WaitReadyAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await started.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        return started;
    }

    /// <summary>The model may load in the background: wait for it, or for the host giving up.</summary>
    private async Task WaitReadyAsync(CancellationToken cancellationToken)
    {
        var stopping = _host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        while (!Engine.IsReady)
        {
            if (stopping.IsCancellationRequested)
                throw new EngineStoppedException("The engine stopped before the model was loaded.");
            await Task.Delay(TimeSpan.FromMilliseconds(50), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Stops the engine (unfinished jobs are cancelled) and frees the model; safe to call more than once.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        try
        {
            await _host.StopAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        finally
        {
            await DisposeOnlyAsync(_host).ConfigureAwait(false);
        }
    }

    private static async Task DisposeOnlyAsync(IHost host)
    {
        // The engine is IAsyncDisposable only: the container's synchronous Dispose would throw.
        if (host is IAsyncDisposable async)
            await async.DisposeAsync().ConfigureAwait(false);
        else
            host.Dispose();
    }
}
