using RabbitMQ.Client;

namespace QueueWorker.Messaging;

/// <summary>
/// <c>RabbitMq:Uri</c> as one URI or a comma-separated list of the nodes of one cluster
/// (<c>amqp://u:p@node1:5672/vhost, amqp://u:p@node2:5672/vhost</c>). The list goes to RabbitMQ.Client's endpoint list:
/// it connects to the first node that answers (in random order, so workers spread over the nodes) and its automatic
/// recovery tries the list again, so a worker whose node is lost reconnects to a surviving one. One connection has one
/// user, password and virtual host: every URI must carry the same ones (and the same scheme); only host and port differ.
/// </summary>
public sealed class BrokerEndpoints
{
    private BrokerEndpoints(Uri first, IReadOnlyList<AmqpTcpEndpoint> endpoints)
    {
        First = first;
        Endpoints = endpoints;
    }

    /// <summary>The first URI: the credentials, virtual host and scheme of every connection.</summary>
    public Uri First { get; }

    /// <summary>One endpoint (host, port, TLS) per URI, in the order given.</summary>
    public IReadOnlyList<AmqpTcpEndpoint> Endpoints { get; }

    /// <summary>The items of a list, trimmed; an empty item stays (empty) so validation can name it.</summary>
    public static IReadOnlyList<string> Split(string value) => value.Split(',', StringSplitOptions.TrimEntries);

    /// <summary>Parses <paramref name="value"/>; false with errors that name <paramref name="key"/> and the URI (password masked).</summary>
    public static bool TryParse(string? value, string key, out BrokerEndpoints? endpoints, out List<string> errors)
    {
        endpoints = null;
        errors = [];
        if (string.IsNullOrWhiteSpace(value))
        {
            errors.Add($"{key} is empty: expected amqp://user:password@host:5672/vhost, or several such URIs separated by commas.");
            return false;
        }
        var items = Split(value);
        var uris = new List<Uri>(items.Count);
        for (var i = 0; i < items.Count; i++)
        {
            var where = items.Count == 1 ? key : $"{key} (URI {i + 1} of {items.Count})";
            if (TryParseOne(items[i], where, errors) is { } uri)
                uris.Add(uri);
        }
        if (errors.Count > 0)
            return false;
        var first = uris[0];
        for (var i = 1; i < uris.Count; i++)
        {
            // One connection, one login: a list that mixes users, vhosts or schemes would connect differently per node.
            if (!string.Equals(uris[i].Scheme, first.Scheme, StringComparison.OrdinalIgnoreCase)
                || !string.Equals(uris[i].UserInfo, first.UserInfo, StringComparison.Ordinal)
                || !string.Equals(uris[i].AbsolutePath, first.AbsolutePath, StringComparison.Ordinal))
            {
                errors.Add($"{key} (URI {i + 1} of {uris.Count}) '{SecretMasker.MaskUri(items[i])}' differs from the first URI in scheme, user, password " +
                    "or virtual host: the URIs of a cluster list may differ only in host and port.");
            }
        }
        if (errors.Count > 0)
            return false;
        endpoints = new BrokerEndpoints(first, uris.Select(ToEndpoint).ToList());
        return true;
    }

    /// <summary>Parses a value validated before (options validation at startup); throws <see cref="FormatException"/> with the errors otherwise.</summary>
    public static BrokerEndpoints Parse(string? value, string key = "RabbitMq:Uri") =>
        TryParse(value, key, out var endpoints, out var errors) ? endpoints! : throw new FormatException(string.Join(" ", errors));

    /// <summary>A factory with the first URI's credentials and virtual host; connect it with <see cref="ConnectAsync"/>.</summary>
    public ConnectionFactory ApplyTo(ConnectionFactory factory)
    {
        factory.Uri = First;
        return factory;
    }

    /// <summary>Connects to the first endpoint that answers; recovery later tries the whole list again.</summary>
    public Task<IConnection> ConnectAsync(ConnectionFactory factory, CancellationToken cancellationToken) =>
        factory.CreateConnectionAsync(Endpoints, factory.ClientProvidedName!, cancellationToken);

    private static Uri? TryParseOne(string item, string where, List<string> errors)
    {
        var shown = SecretMasker.MaskUri(item);
        if (item.Length == 0)
        {
            errors.Add($"{where} is empty: remove the extra comma.");
            return null;
        }
        if (!Uri.TryCreate(item, UriKind.Absolute, out var uri))
        {
            errors.Add($"{where} '{shown}' is not an absolute URI: expected amqp://user:password@host:5672/vhost.");
            return null;
        }
        if (uri.Scheme is not ("amqp" or "amqps"))
        {
            errors.Add($"{where} '{shown}' has scheme '{uri.Scheme}': it must be amqp or amqps.");
            return null;
        }
        if (string.IsNullOrEmpty(uri.Host))
        {
            errors.Add($"{where} '{shown}' has no host.");
            return null;
        }
        try
        {
            // The client has its own rules (e.g. one path segment for the vhost): ask it.
            _ = new ConnectionFactory { Uri = uri };
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException)
        {
            errors.Add($"{where} '{shown}' is not accepted by the RabbitMQ client: {ex.Message}");
            return null;
        }
        return uri;
    }

    private static AmqpTcpEndpoint ToEndpoint(Uri uri)
    {
        // IdnHost drops an IPv6 address's brackets; port -1 = the scheme's default (5672, or 5671 with TLS).
        var tls = string.Equals(uri.Scheme, "amqps", StringComparison.OrdinalIgnoreCase);
        return new AmqpTcpEndpoint(uri.IdnHost, uri.Port <= 0 ? AmqpTcpEndpoint.UseDefaultPort : uri.Port,
            tls ? new SslOption(uri.IdnHost, enabled: true) : new SslOption());
    }
}
