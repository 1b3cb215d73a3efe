using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace QueueWorker.Messaging.Tests;

/// <summary><c>RabbitMq:LaneWeights</c>: bound from configuration onto the lanes, and checked at start naming the key.</summary>
[Trait("Category", "Unit")]
public sealed class LaneWeightOptionsTests
{
    private static ValidateOptionsResult Validate(string[] lanes, Dictionary<string, int> weights)
    {
        var options = new RabbitMqOptions { Lanes = lanes, LaneWeights = weights };
        return new RabbitMqOptionsValidator().Validate(null, options);
    }

    [Fact]
    public void Bind_FromConfiguration_EachLaneCarriesItsWeight()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["RabbitMq:Lanes:0"] = "interactive",
            ["RabbitMq:Lanes:1"] = "batch",
            ["RabbitMq:LaneWeights:interactive"] = "4",
            ["RabbitMq:LaneWeights:batch"] = "1",
        }).Build();
        var options = new RabbitMqOptions();
        configuration.GetSection(RabbitMqOptions.Section).Bind(options);

        Assert.True(new RabbitMqOptionsValidator().Validate(null, options).Succeeded);
        Assert.Equal([("interactive", 0, 4), ("batch", 1, 1)], options.LaneQueues.Select(l => (l.Lane, l.Rank, l.Weight)));
    }

    [Fact]
    public void Defaults_NoWeights_StrictOrder()
    {
        var options = new RabbitMqOptions { Lanes = ["interactive", "batch"] };

        Assert.True(new RabbitMqOptionsValidator().Validate(null, options).Succeeded);
        Assert.All(options.LaneQueues, l => Assert.Equal(0, l.Weight));
    }

    [Fact]
    public void Validate_WeightForAnUnknownLane_NamesTheKey()
    {
        var result = Validate(["interactive", "batch"], new() { ["interactive"] = 3, ["batch"] = 1, ["bulk"] = 1 });

        Assert.True(result.Failed);
        Assert.Contains("RabbitMq:LaneWeights:bulk names no lane of RabbitMq:Lanes (interactive, batch)", result.FailureMessage);
    }

    [Fact]
    public void Validate_ALaneWithoutAWeight_AllOrNothing()
    {
        var result = Validate(["interactive", "batch", "bulk"], new() { ["interactive"] = 3 });

        Assert.True(result.Failed);
        Assert.Contains("RabbitMq:LaneWeights gives no weight to batch, bulk", result.FailureMessage);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(1001)]
    public void Validate_WeightOutOfRange_NamesKeyAndRule(int weight)
    {
        var result = Validate(["interactive", "batch"], new() { ["interactive"] = weight, ["batch"] = 1 });

        Assert.True(result.Failed);
        Assert.Contains($"RabbitMq:LaneWeights:interactive is {weight}; a weight must be from 1 to 1000", result.FailureMessage);
    }

    [Fact]
    public void Validate_WeightsWithoutLanes_Refused()
    {
        var result = Validate([], new() { ["interactive"] = 1 });

        Assert.True(result.Failed);
        Assert.Contains("RabbitMq:LaneWeights is set but RabbitMq:Lanes is empty", result.FailureMessage);
    }
}
