using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace QueueWorker.Ops.Tests;

[Trait("Category", "Unit")]
public sealed partial class DockerfileTests
{
    private readonly Dockerfile _dockerfile = Dockerfile.Load();

    /// <summary>The directory the image mounts the model into (the directory of its Model__Path).</summary>
    internal static string ModelDirectory(Dockerfile dockerfile)
    {
        var path = dockerfile.FinalEnv()["Model__Path"];
        return path[..path.LastIndexOf('/')];
    }

    [Fact]
    public void Dockerfile_BuildAndRuntimeStages_UseDotnet10SdkAndAspNetImages()
    {
        Assert.True(_dockerfile.Stages.Count >= 2, "multi-stage: SDK build stage, runtime stage");
        Assert.Contains("mcr.microsoft.com/dotnet/sdk:10.0", _dockerfile.Stages[0][0].Arguments, StringComparison.Ordinal);
        Assert.StartsWith("mcr.microsoft.com/dotnet/aspnet:10.0", _dockerfile.Final[0].Arguments, StringComparison.Ordinal);
        Assert.Contains(_dockerfile.FinalArgs("COPY"), a => a.StartsWith("--from=build ", StringComparison.Ordinal));
    }

    [Fact]
    public void Dockerfile_Expose_EqualsHttpPortOfAppSettings()
    {
        Assert.Equal(Repo.HttpPort.ToString(CultureInfo.InvariantCulture), Assert.Single(_dockerfile.FinalArgs("EXPOSE")));
        Assert.Equal(Repo.HttpPort.ToString(CultureInfo.InvariantCulture), _dockerfile.FinalEnv()["Http__Port"]);
    }

    [Fact]
    public void Dockerfile_ConfigurationEnv_NamesKeysOfAppSettings()
    {
        var unknown = _dockerfile.FinalEnv().Keys.Where(Repo.IsConfigurationVariable)
            .Where(name => !Repo.ConfigKeys.Contains(Repo.ConfigKeyOf(name))).ToList();
        Assert.True(unknown.Count == 0, $"ENV names no key of appsettings.json: {string.Join(", ", unknown)}");
    }

    [Fact]
    public void Dockerfile_ModelPath_IsAFileInTheModelsMount()
    {
        Assert.Equal("/models/model.gguf", _dockerfile.FinalEnv()["Model__Path"]);
        Assert.Equal("/models", ModelDirectory(_dockerfile));
    }

    [Fact]
    public void Dockerfile_User_IsNumericAndNotRoot()
    {
        var user = Assert.Single(_dockerfile.FinalArgs("USER"));
        var parts = user.Split(':');
        Assert.All(parts, p => Assert.True(int.TryParse(p, out var id) && id > 0, $"USER '{user}' must be a numeric non-root uid[:gid] (Kubernetes runAsNonRoot checks it)"));
    }

    [Fact]
    public void Dockerfile_Entrypoint_RunsTheWorkerDll()
    {
        Assert.Equal("""["dotnet", "QueueWorker.dll"]""", Assert.Single(_dockerfile.FinalArgs("ENTRYPOINT")));
        Assert.Equal("/app", Assert.Single(_dockerfile.FinalArgs("WORKDIR")));
    }

    [Fact]
    public void Dockerfile_HealthCheck_DefaultsToHttpPortOfAppSettings()
    {
        var command = string.Join(' ', _dockerfile.HealthCheckCommand());
        var match = DefaultPortPattern().Match(command);
        Assert.True(match.Success, "the health check should read the port from Http__Port with a default");
        Assert.Equal(Repo.HttpPort, int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture));
        Assert.Contains("/healthz", command, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(200, true)]
    [InlineData(503, false)]
    [InlineData(404, false)]
    public async Task HealthCheck_AgainstKestrel_PassesOnlyOn200(int status, bool healthy)
    {
        await using var server = await HealthzServer.StartAsync(status);
        var (exitCode, output) = await RunHealthCheckAsync(_dockerfile.HealthCheckCommand(), server.Port);
        Assert.True(healthy == (exitCode == 0), $"/healthz {status}: exit code {exitCode}, output: {output}");
        Assert.Equal(1, server.Requests);
    }

    [Fact]
    public async Task HealthCheck_NothingListening_Fails()
    {
        int port;
        await using (var server = await HealthzServer.StartAsync(200)) port = server.Port;
        var (exitCode, _) = await RunHealthCheckAsync(_dockerfile.HealthCheckCommand(), port);
        Assert.NotEqual(0, exitCode);
    }

    /// <summary>
    /// llama.cpp's native libraries link system libraries; every one that the ASP.NET runtime image
    /// (Ubuntu, runtime-deps: libc6, libgcc-s1, libstdc++6, ...) lacks must be installed by the Dockerfile.
    /// Catches a LLamaSharp upgrade that adds a dependency before an image dies at model load.
    /// </summary>
    [Fact]
    public void NativeLibraries_SystemDependencies_AreInTheRuntimeImage()
    {
        var nativeRoot = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native");
        var libraries = Directory.Exists(nativeRoot) ? Directory.GetFiles(nativeRoot, "*.so", SearchOption.AllDirectories) : [];
        Assert.True(libraries.Length > 0, $"no LLamaSharp native libraries under {nativeRoot}");

        // Shipped by the base image's packages (libc6, libgcc-s1, libstdc++6).
        string[] inBaseImage = ["libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "libstdc++.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2"];
        // Debian/Ubuntu package that provides each further library.
        var packages = new Dictionary<string, string> { ["libgomp.so.1"] = "libgomp1" };

        var installed = _dockerfile.FinalArgs("RUN").Where(r => r.Contains("apt-get install", StringComparison.Ordinal))
            .SelectMany(r => r.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToHashSet(StringComparer.Ordinal);

        var problems = new List<string>();
        foreach (var library in libraries)
        {
            var shippedAlongside = Directory.GetFiles(Path.GetDirectoryName(library)!, "*.so*").Select(Path.GetFileName).ToHashSet();
            foreach (var needed in Elf.Needed(library))
            {
                if (shippedAlongside.Contains(needed) || inBaseImage.Contains(needed)) continue;
                if (!packages.TryGetValue(needed, out var package))
                    problems.Add($"{Path.GetFileName(library)} needs {needed}: no package known for it (add one to this test and the Dockerfile)");
                else if (!installed.Contains(package))
                    problems.Add($"{Path.GetFileName(library)} needs {needed}: the Dockerfile's runtime stage must apt-get install {package}");
            }
        }
        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems.Distinct()));
    }

    internal static async Task<(int ExitCode, string Output)> RunHealthCheckAsync(IReadOnlyList<string> command, int port)
    {
        var start = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in command.Skip(1)) start.ArgumentList.Add(arg);
        start.Environment["Http__Port"] = port.ToString(CultureInfo.InvariantCulture);
        using var process = Process.Start(start)!;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }

    [GeneratedRegex(@"\$\{Http__Port:-(\d+)\}")]
    private static partial Regex DefaultPortPattern();

    /// <summary>Kestrel on a free loopback port answering GET /healthz with a fixed status.</summary>
    internal sealed class HealthzServer : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private int _requests;

        private HealthzServer(WebApplication app) => _app = app;

        public int Port { get; private set; }

        public int Requests => _requests;

        public static async Task<HealthzServer> StartAsync(int status)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            var app = builder.Build();
            var server = new HealthzServer(app);
            app.MapGet("/healthz", () =>
            {
                Interlocked.Increment(ref server._requests);
                return Results.Text("state", statusCode: status);
            });
            await app.StartAsync();
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
            server.Port = new Uri(address).Port;
            return server;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
