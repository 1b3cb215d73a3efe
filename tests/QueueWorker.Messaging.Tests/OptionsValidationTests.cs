using Microsoft.Extensions.Options;

namespace QueueWorker.Messaging.Tests;

[Trait("Category", "Unit")]
public sealed class OptionsValidationTests
{
    private static ValidateOptionsResult Validate(Action<RabbitMqOptions> configure)
    {
        var options = new RabbitMqOptions();
        configure(options);
        return new RabbitMqOptionsValidator().Validate(null, options);
    }

    [Fact]
    public void Validate_Defaults_Succeeds()
    {
        Assert.True(Validate(_ => { }).Succeeded);
    }

    [Theory]
    [InlineData("amqps://user:pw@broker.example:5671/prod")]
    [InlineData("amqp://localhost")]
    public void Validate_AmqpUris_Succeeds(string uri)
    {
        Assert.True(Validate(o => o.Uri = uri).Succeeded);
    }

    [Fact]
    public void Validate_HttpScheme_NamesKeyAndMasksPassword()
    {
        var result = Validate(o => o.Uri = "http://worker:s3cret@localhost:5672/");

        Assert.True(result.Failed);
        Assert.Contains("RabbitMq:Uri 'http://worker:***@localhost:5672/'", result.FailureMessage);
        Assert.Contains("amqp or amqps", result.FailureMessage);
        Assert.DoesNotContain("s3cret", result.FailureMessage);
    }

    [Fact]
    public void Validate_NotAUri_NamesKeyAndValue()
    {
        var result = Validate(o => o.Uri = "localhost:5672");

        Assert.True(result.Failed);
        Assert.Contains("RabbitMq:Uri", result.FailureMessage);
    }

    [Fact]
    public void Validate_RelativeText_NamesKeyAndValue()
    {
        var result = Validate(o => o.Uri = "not a uri");

        Assert.True(result.Failed);
        Assert.Contains("RabbitMq:Uri 'not a uri' is not an absolute URI", result.FailureMessage);
    }

    [Fact]
    public void Validate_SameJobsAndResultsQueue_Fails()
    {
        var result = Validate(o => o.ResultsQueue = o.JobsQueue);

        Assert.True(result.Failed);
        Assert.Contains("RabbitMq:ResultsQueue 'llm.jobs' must differ from RabbitMq:JobsQueue", result.FailureMessage);
    }

    [Fact]
    public void Validate_DeadLetterQueueIsTheParkedQueue_Fails()
    {
        var result = Validate(o => o.DeadLetterQueue = "llm.jobs.parked");

        Assert.True(result.Failed);
        Assert.Contains("RabbitMq:JobsQueue + '.parked' 'llm.jobs.parked' must differ from RabbitMq:DeadLetterQueue", result.FailureMessage);
    }

    [Fact]
    public void Validate_ParkedQueueNameOver255Bytes_Fails()
    {
        var result = Validate(o => o.JobsQueue = new string('j', 250));

        Assert.True(result.Failed);
        Assert.Contains("RabbitMq:JobsQueue + '.parked'", result.FailureMessage);
    }

    [Fact]
    public void Validate_ReservedQueuePrefix_Fails()
    {
        var result = Validate(o => o.JobsQueue = "amq.jobs");

        Assert.True(result.Failed);
        Assert.Contains("RabbitMq:JobsQueue 'amq.jobs' starts with 'amq.'", result.FailureMessage);
    }

    [Theory]
    [InlineData("amqp://guest:guest@localhost:5672/", "amqp://guest:***@localhost:5672/")]
    [InlineData("amqps://u:p%40ss@h/vh", "amqps://u:***@h/vh")]
    [InlineData("amqp://localhost", "amqp://localhost")]
    [InlineData("amqp://user@localhost", "amqp://user@localhost")]
    public void MaskPassword_Uri_HidesOnlyThePassword(string uri, string expected)
    {
        Assert.Equal(expected, SecretMasker.MaskUri(uri));
    }

    [Fact]
    public async Task StartAsync_BadUri_FailsBeforeConnectingWithKeyInMessage()
    {
        var options = new RabbitMqOptions { Uri = "http://guest:topsecret@localhost/" };
        using var host = TestWorker.Build(options, new TestJobHandler(), output: null);

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("RabbitMq:Uri 'http://guest:***@localhost/'", ex.Message);
        Assert.DoesNotContain("topsecret", ex.Message);
    }

    [Fact]
    public async Task StartAsync_OutOfRangeDeliveryLimit_FailsNamingTheField()
    {
        var options = new RabbitMqOptions { DeliveryLimit = 0 };
        using var host = TestWorker.Build(options, new TestJobHandler(), output: null);

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("DeliveryLimit", ex.Message);
    }

    [Fact]
    public void Validate_ReplyToPatternDoesNotCompile_NamesKeyAndValue()
    {
        var result = Validate(o => o.ReplyToPattern = "reply\\.(");

        Assert.True(result.Failed);
        Assert.Contains("RabbitMq:ReplyToPattern 'reply\\.(' is not a valid .NET regular expression", result.FailureMessage);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData(@"reply\.[a-z0-9-]+")]
    public void Validate_ReplyToPatternEmptyOrValid_Succeeds(string? pattern)
    {
        Assert.True(Validate(o => o.ReplyToPattern = pattern).Succeeded);
    }
}
