using System.Text.Json;
using QueueWorker.Contracts;

namespace QueueWorker.Processing.Tests;

/// <summary>Who a job's CPU is billed to, and the bound on how many tenants become metric labels.</summary>
[Trait("Category", "Unit")]
public sealed class TenantTests
{
    private static readonly JobLimits Limits = new() { MaxTokens = 512, DefaultMaxTokens = 64 };

    private static JobRequest Parse(string json) => JobParser.Parse(json, Limits, "f").Job!;

    [Theory]
    [InlineData("""{"prompt":"x","metadata":{"tenant":"acme"},"user":"u1"}""", "acme")]
    [InlineData("""{"prompt":"x","user":"u1"}""", "u1")]
    [InlineData("""{"prompt":"x","metadata":{"tenant":""}}""", "default")]
    [InlineData("""{"prompt":"x"}""", "default")]
    public void Tenant_MetadataThenUserThenDefault(string json, string expected) => Assert.Equal(expected, Parse(json).Tenant);

    [Fact]
    public void Parse_TenantNotAString_FailsNamingMetadataTenant()
    {
        var error = JobParser.Parse("""{"prompt":"x","metadata":{"tenant":42},"user":"u1"}""", Limits, "f").Error!;
        Assert.Equal("metadata.tenant", error.Field);
    }

    [Fact]
    public void Parse_UserNotAString_FailsNamingUser()
    {
        var error = JobParser.Parse("""{"prompt":"x","user":7}""", Limits, "f").Error!;
        Assert.Equal("user", error.Field);
    }

    [Fact]
    public void Parse_UserTooLong_FailsNamingUserAndLimit()
    {
        var error = JobParser.Parse($$"""{"prompt":"x","user":"{{new string('u', Limits.MaxIdLength + 1)}}"}""", Limits, "f").Error!;
        Assert.Equal("user", error.Field);
        Assert.Contains(Limits.MaxIdLength.ToString(System.Globalization.CultureInfo.InvariantCulture), error.Message);
    }

    [Fact]
    public void Serialize_JobWithUser_WritesUserButNotTenant()
    {
        var json = JsonDocument.Parse(JobSerializer.Serialize(new JobRequest { Prompt = "x", User = "u1" })).RootElement;
        Assert.Equal("u1", json.GetProperty("user").GetString());
        Assert.False(json.TryGetProperty("tenant", out _));
    }

    [Fact]
    public void Label_MoreTenantsThanTheBound_LaterOnesAreOther()
    {
        var labels = new TenantLabels(3);
        Assert.Equal(["a", "b", "c", TenantLabels.Other, "a", TenantLabels.Other], new[] { "a", "b", "c", "d", "a", "e" }.Select(labels.Label));
    }

    [Fact]
    public void Label_LongTenant_CutToMaxLength()
    {
        var label = new TenantLabels(10).Label(new string('t', 300));
        Assert.Equal(TenantLabels.MaxLength, label.Length);
    }
}
