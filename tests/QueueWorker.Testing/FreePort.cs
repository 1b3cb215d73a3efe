using System.Net;
using System.Net.Sockets;

namespace QueueWorker.Testing;

/// <summary>Free TCP ports on the loopback interface, for servers the tests start (HTTP endpoints, private brokers).</summary>
public static class FreePort
{
    /// <summary>A port nothing listens on now (the OS picks it; another process could take it before the caller binds).</summary>
    public static int Next()
    {
        // Never the same port twice in one test process: the kernel may hand a just-released port out again, and two
        // servers started back to back would then both be told it.
        lock (Given)
        {
            while (true)
            {
                using var listener = new TcpListener(IPAddress.Loopback, 0);
                listener.Start();
                var port = ((IPEndPoint)listener.LocalEndpoint).Port;
                listener.Stop();
                if (Given.Add(port)) return port;
            }
        }
    }

    private static readonly HashSet<int> Given = [];

    /// <summary>A free port p with p + 20000 free too: RabbitMQ puts its Erlang distribution port there.</summary>
    public static int ForRabbitMq()
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            var port = Next();
            if (port + 20000 > 65535)
                continue;
            try
            {
                using var distribution = new TcpListener(IPAddress.Loopback, port + 20000);
                distribution.Start();
                distribution.Stop();
                return port;
            }
            catch (SocketException)
            {
                // Taken: try another pair.
            }
        }
        throw new InvalidOperationException("No free pair of loopback ports for a private broker.");
    }
}
