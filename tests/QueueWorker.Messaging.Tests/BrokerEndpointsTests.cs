using CsCheck;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;

namespace QueueWorker.Messaging.Tests;

/// <summary>RabbitMq:Uri as one URI or a cluster's comma-separated list: parsing, the endpoint list, and errors naming the key.</summary>
[Trait("Category", "Unit")]
public sealed class BrokerEndpointsTests
{
    [Fact]
    public void Parse_OneUri_OneEndpointWithItsHostAndPort()
    {
        var endpoints = BrokerEndpoints.Parse("amqp://u:p@broker:5673/vh");

        var endpoint = Assert.Single(endpoints.Endpoints);
        Assert.Equal("broker", endpoint.HostName);
        Assert.Equal(5673, endpoint.Port);
        Assert.False(endpoint.Ssl.Enabled);
    }

    [Fact]
    public void Parse_ThreeUrisWithSpaces_ThreeEndpointsInOrder_CredentialsAndVhostOfTheFirst()
    {
        var endpoints = BrokerEndpoints.Parse("amqp://w:s3cret@n1:5701/prod, amqp://w:s3cret@n2:5702/prod ,amqp://w:s3cret@n3/prod");

        Assert.Equal(["n1:5701", "n2:5702", "n3:5672"], endpoints.Endpoints.Select(e => $"{e.HostName}:{e.Port}"));
        var factory = endpoints.ApplyTo(new ConnectionFactory());
        Assert.Equal("w", factory.UserName);
        Assert.Equal("s3cret", factory.Password);
        Assert.Equal("prod", factory.VirtualHost);
    }

    [Fact]
    public void Parse_AmqpsWithoutPort_TlsOnEveryEndpointWithItsOwnServerName()
    {
        var endpoints = BrokerEndpoints.Parse("amqps://u:p@a.example/,amqps://u:p@b.example/");

        Assert.All(endpoints.Endpoints, e => Assert.True(e.Ssl.Enabled));
        Assert.Equal(["a.example", "b.example"], endpoints.Endpoints.Select(e => e.Ssl.ServerName));
        Assert.All(endpoints.Endpoints, e => Assert.Equal(5671, e.Port));
    }

    [Fact]
    public void Parse_Ipv6Host_WithoutBrackets()
    {
        Assert.Equal("::1", Assert.Single(BrokerEndpoints.Parse("amqp://u:p@[::1]:5672/").Endpoints).HostName);
    }

    [Fact]
    public void Validate_ClusterList_Succeeds()
    {
        var options = new RabbitMqOptions { Uri = "amqp://guest:guest@127.0.0.1:5701/,amqp://guest:guest@127.0.0.1:5702/,amqp://guest:guest@127.0.0.1:5703/" };
        Assert.True(new RabbitMqOptionsValidator().Validate(null, options).Succeeded);
    }

    [Fact]
    public void Validate_ListWithOtherPassword_NamesKeyAndPosition_MasksEveryPassword()
    {
        var result = Validate("amqp://w:first-secret@n1/, amqp://w:second-secret@n2/");

        Assert.True(result.Failed);
        Assert.Contains("RabbitMq:Uri (URI 2 of 2) 'amqp://w:***@n2/' differs from the first URI", result.FailureMessage);
        Assert.DoesNotContain("first-secret", result.FailureMessage);
        Assert.DoesNotContain("second-secret", result.FailureMessage);
    }

    [Theory]
    [InlineData("amqp://u:p@n1/,,amqp://u:p@n2/", "RabbitMq:Uri (URI 2 of 3) is empty")]
    [InlineData("amqp://u:p@n1/,", "RabbitMq:Uri (URI 2 of 2) is empty")]
    [InlineData("amqp://u:p@n1/,http://u:pw@n2/", "RabbitMq:Uri (URI 2 of 2) 'http://u:***@n2/' has scheme 'http'")]
    [InlineData("amqp://u:p@n1/a,amqp://u:p@n2/b", "RabbitMq:Uri (URI 2 of 2) 'amqp://u:***@n2/b' differs from the first URI")]
    [InlineData("amqp://u:p@n1/,amqps://u:p@n2/", "(URI 2 of 2)")]
    [InlineData("amqp://u:p@n1/,n2:5672", "RabbitMq:Uri (URI 2 of 2) 'n2:5672'")]
    public void Validate_BadList_NamesKeyAndWhichUri(string uri, string expected)
    {
        var result = Validate(uri);

        Assert.True(result.Failed);
        Assert.Contains(expected, result.FailureMessage);
    }

    [Fact]
    public void Parse_AnyNumberOfNodes_OneEndpointPerUriInOrder()
    {
        Gen.Int[1, 7].SelectMany(n => Gen.Int[1, 65535].Array[n]).Sample(ports =>
        {
            var value = string.Join(",", ports.Select((p, i) => $"amqp://u:p@node{i}:{p}/"));
            var endpoints = BrokerEndpoints.Parse(value);
            Assert.Equal(ports.Select((p, i) => $"node{i}:{p}"), endpoints.Endpoints.Select(e => $"{e.HostName}:{e.Port}"));
        });
    }

    private static ValidateOptionsResult Validate(string uri) =>
        new RabbitMqOptionsValidator().Validate(null, new RabbitMqOptions { Uri = uri });
}
