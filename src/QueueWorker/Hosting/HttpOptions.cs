using System.ComponentModel.DataAnnotations;
using QueueWorker.Contracts;

namespace QueueWorker.Hosting;

/// <summary>Configuration section <c>Http</c>: the health and metrics endpoint.</summary>
public sealed class HttpOptions
{
    public const string Section = "Http";

    /// <summary>Port of <c>/healthz</c>, <c>/readyz</c> and <c>/metrics</c>; 0 turns the endpoint off.</summary>
    [ConfigRange(0, 65535)]
    public int Port { get; set; } = 8080;

    /// <summary>Address to listen on: <c>0.0.0.0</c> in a container, <c>127.0.0.1</c> for local-only.</summary>
    [Required]
    public string BindAddress { get; set; } = "0.0.0.0";
}
