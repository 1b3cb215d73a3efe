using System.Text;
using QueueWorker.Contracts;

namespace QueueWorker.Tests;

/// <summary>The job fields of issue 14 (batch_id, priority, user, metadata.tenant) and the control message.</summary>
[Trait("Category", "Unit")]
public class SchedulingFieldsTests
{
    private static ParseResult Parse(string json) => JobParser.Parse(json, JobLimits.Default, "fallback");

    [Fact]
    public void Parse_SchedulingFields_Read()
    {
        var job = Parse("""{"prompt":"x","batch_id":"b-1","priority":-3,"user":"u-9"}""").Job!;

        Assert.Equal("b-1", job.BatchId);
        Assert.Equal(-3, job.Priority);
        Assert.Equal("u-9", job.User);
        Assert.Equal("u-9", job.Tenant);
    }

    [Fact]
    public void Tenant_MetadataTenantGiven_WinsOverUser()
    {
        var job = Parse("""{"prompt":"x","user":"u-9","metadata":{"tenant":"acme"}}""").Job!;

        Assert.Equal("acme", job.Tenant);
    }

    [Theory]
    [InlineData("""{"prompt":"x","priority":101}""", "priority")]
    [InlineData("""{"prompt":"x","priority":1.5}""", "priority")]
    [InlineData("""{"prompt":"x","batch_id":""}""", "batch_id")]
    [InlineData("""{"prompt":"x","batch_id":7}""", "batch_id")]
    [InlineData("""{"prompt":"x","user":false}""", "user")]
    [InlineData("""{"prompt":"x","metadata":{"tenant":3}}""", "metadata.tenant")]
    public void Parse_BadSchedulingField_InvalidFieldNamingIt(string json, string field)
    {
        var result = Parse(json);

        Assert.False(result.IsValid);
        Assert.Equal(ErrorCodes.InvalidField, result.Error!.Code);
        Assert.Equal(field, result.Error.Field);
    }

    [Fact]
    public void ControlMessage_CancelRoundTrip_SameRequest()
    {
        var bytes = ControlMessage.Cancel(new CancelRequest(["a", "b"], "batch-1"));

        var (request, error) = ControlMessage.Parse(bytes);

        Assert.Null(error);
        Assert.Equal(["a", "b"], request!.JobIds);
        Assert.Equal("batch-1", request.BatchId);
        Assert.Equal("""{"cancel":{"job_ids":["a","b"],"batch_id":"batch-1"}}""", Encoding.UTF8.GetString(bytes));
    }

    [Theory]
    [InlineData("""{"cancel":{"batch_id":"b"}}""", 0, "b")]
    [InlineData("""{"cancel":{"job_ids":["x"]}}""", 1, null)]
    public void ControlMessage_Parse_ReadsEitherForm(string json, int ids, string? batch)
    {
        var (request, _) = ControlMessage.Parse(Encoding.UTF8.GetBytes(json));

        Assert.Equal(ids, request!.JobIds.Count);
        Assert.Equal(batch, request.BatchId);
    }

    [Theory]
    [InlineData("not json", "not valid JSON")]
    [InlineData("""{"stop":{}}""", "\"cancel\" object")]
    [InlineData("""{"cancel":{}}""", "must name")]
    [InlineData("""{"cancel":{"job_ids":"x"}}""", "array of strings")]
    [InlineData("""{"cancel":{"job_ids":[1]}}""", "non-empty strings")]
    [InlineData("""{"cancel":{"batch_id":""}}""", "non-empty string")]
    public void ControlMessage_Bad_ErrorNamesTheRule(string json, string expected)
    {
        var (request, error) = ControlMessage.Parse(Encoding.UTF8.GetBytes(json));

        Assert.Null(request);
        Assert.Contains(expected, error);
    }
}
