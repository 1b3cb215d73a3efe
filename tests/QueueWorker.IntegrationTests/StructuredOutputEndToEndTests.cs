using System.Text.Json;
using QueueWorker.Contracts;

namespace QueueWorker.IntegrationTests;

/// <summary>A job with a JSON Schema through a real broker and the worker binary on stories260K.</summary>
[Trait("Category", "Integration")]
public class StructuredOutputEndToEndTests(WorkerFixture fixture) : IClassFixture<WorkerFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Job_WithJsonSchema_CompletedWithParsedJsonMatchingTheSchema()
    {
        var id = "schema-" + Guid.NewGuid().ToString("N")[..10];
        await fixture.Broker.PublishAsync(fixture.JobsQueue, """
            {"id":"ID","prompt":"Once upon a time","max_tokens":120,"temperature":0.8,"seed":7,
             "response_format":{"type":"json_schema","json_schema":{"name":"story","strict":true,"schema":{
               "type":"object","properties":{"hero":{"type":"string","maxLength":10},"happy":{"type":"boolean"},
               "mood":{"enum":["calm","sad"]}},"required":["hero","happy","mood"],"additionalProperties":false}}}}
            """.Replace("ID", id, StringComparison.Ordinal));

        var result = (await fixture.Results.WaitForIdAsync(id, Timeout)).Result;

        Assert.Equal(JobStatus.Completed, result.Status);
        Assert.Equal(FinishReasons.Stop, result.FinishReason);
        var parsed = result.Parsed!.Value;
        Assert.Equal(JsonValueKind.Object, parsed.ValueKind);
        Assert.InRange(parsed.GetProperty("hero").GetString()!.Length, 0, 10);
        Assert.Contains(parsed.GetProperty("happy").ValueKind, new[] { JsonValueKind.True, JsonValueKind.False });
        Assert.Contains(parsed.GetProperty("mood").GetString(), new[] { "calm", "sad" });
        Assert.Equal(3, parsed.EnumerateObject().Count());
        using var fromText = JsonDocument.Parse(result.Text!);
        // "parsed" is the text, parsed (the text keeps the whitespace the grammar allowed).
        Assert.Equal(parsed.GetProperty("hero").GetString(), fromText.RootElement.GetProperty("hero").GetString());
        Assert.Equal(parsed.GetProperty("mood").GetString(), fromText.RootElement.GetProperty("mood").GetString());
    }

    [Fact]
    public async Task Job_WithUnsupportedSchemaKeyword_FailedInvalidFieldAndWorkerKeepsServing()
    {
        var id = "badschema-" + Guid.NewGuid().ToString("N")[..10];
        await fixture.Broker.PublishAsync(fixture.JobsQueue, """
            {"id":"ID","prompt":"Once","response_format":{"type":"json_schema","json_schema":{"schema":{"type":"string","format":"email"}}}}
            """.Replace("ID", id, StringComparison.Ordinal));
        var failed = (await fixture.Results.WaitForIdAsync(id, Timeout)).Result;
        Assert.Equal(JobStatus.Failed, failed.Status);
        Assert.Equal(ErrorCodes.InvalidField, failed.Error!.Code);
        Assert.Equal("response_format.json_schema.schema", failed.Error.Field);
        Assert.Contains("format", failed.Error.Message, StringComparison.Ordinal);

        var next = "after-" + id;
        await fixture.Broker.PublishAsync(fixture.JobsQueue, $$"""{"id":"{{next}}","prompt":"Once","max_tokens":3}""");
        Assert.Equal(JobStatus.Completed, (await fixture.Results.WaitForIdAsync(next, Timeout)).Result.Status);
    }
}
