using System.Net;
using QueueWorker.Inference.Models;

namespace QueueWorker.Tests;

/// <summary>The download path of the default model, served from 127.0.0.1 (these machines reach no model hub).</summary>
[Trait("Category", "Integration")]
public sealed class ModelDownloaderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qw-dl-").FullName;

    private static string SharedModel => TestModels.Stories260K;

    [Fact]
    public async Task DownloadAsync_MatchingSha_WritesTheFile()
    {
        var bytes = await File.ReadAllBytesAsync(SharedModel);
        using var server = LocalServer.Serve(bytes);
        var source = ModelSource.Stories260K with { Url = server.Url };
        long reported = 0;
        var path = await new ModelDownloader(new HttpClient()).DownloadAsync(source, _dir, new SyncProgress(p => reported = p.Done), CancellationToken.None);
        Assert.Equal(Path.Combine(_dir, "stories260K.gguf"), path);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(path));
        Assert.Equal(bytes.Length, reported);
    }

    [Fact]
    public async Task DownloadAsync_WrongSha_ThrowsAndLeavesNoFile()
    {
        var bytes = await File.ReadAllBytesAsync(SharedModel);
        bytes[1000] ^= 0xFF; // tampered in transit
        using var server = LocalServer.Serve(bytes);
        var source = ModelSource.Stories260K with { Url = server.Url };
        var ex = await Assert.ThrowsAsync<IOException>(() => new ModelDownloader(new HttpClient()).DownloadAsync(source, _dir, null, CancellationToken.None));
        Assert.Contains("SHA-256", ex.Message);
        Assert.Empty(Directory.GetFiles(_dir));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private sealed class SyncProgress(Action<(long Done, long? Total)> report) : IProgress<(long Done, long? Total)>
    {
        public void Report((long Done, long? Total) value) => report(value);
    }

    /// <summary>An HttpListener on a free loopback port that serves one body.</summary>
    private sealed class LocalServer : IDisposable
    {
        private readonly HttpListener _listener = new();
        public Uri Url { get; }

        private LocalServer(byte[] body)
        {
            var port = FreePort.Next();
            Url = new Uri($"http://127.0.0.1:{port}/stories260K.gguf");
            _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            _listener.Start();
            _ = Task.Run(async () =>
            {
                while (_listener.IsListening)
                {
                    HttpListenerContext ctx;
                    try { ctx = await _listener.GetContextAsync(); } catch { return; }
                    ctx.Response.ContentLength64 = body.Length;
                    await ctx.Response.OutputStream.WriteAsync(body);
                    ctx.Response.Close();
                }
            });
        }

        public static LocalServer Serve(byte[] body) => new(body);
        public void Dispose() => _listener.Close();
    }
}
