using System.Text.Json;
using QueueWorker.Contracts;

namespace QueueWorker.Tests;

[Trait("Category", "Unit")]
public sealed class StructuredOutputParserTests
{
    private static ParseResult Parse(string fields) => JobParser.Parse("{\"prompt\":\"p\"," + fields + "}", JobLimits.Default, "f");

    private static JobError Error(string fields, string field)
    {
        var result = Parse(fields);
        Assert.False(result.IsValid, fields);
        Assert.Equal(ErrorCodes.InvalidField, result.Error!.Code);
        Assert.Equal(field, result.Error.Field);
        return result.Error;
    }

    [Theory]
    [InlineData("text")]
    [InlineData("json_object")]
    public void Parse_SimpleResponseFormat_Read(string type)
    {
        var job = Parse($$"""
            "response_format":{"type":"{{type}}"}
            """).Job!;
        Assert.Equal(type, job.ResponseFormat!.Type);
        Assert.Null(job.ResponseFormat.JsonSchema);
        Assert.Equal(type == "json_object", job.ResponseFormat.IsJson);
    }

    [Fact]
    public void Parse_JsonSchema_ReadWithSchemaAsJson()
    {
        var job = Parse("""
            "response_format":{"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":{"type":"object","properties":{"a":{"type":"string"}}}}}
            """).Job!;
        var js = job.ResponseFormat!.JsonSchema!;
        Assert.Equal("person", js.Name);
        Assert.True(js.Strict);
        Assert.Equal("object", js.Schema.GetProperty("type").GetString());
    }

    [Fact]
    public void Parse_JobWithSchema_SerializesBackInOpenAiShape()
    {
        var job = Parse("""
            "response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"boolean"}}}
            """).Job!;
        using var doc = JsonDocument.Parse(JobSerializer.Serialize(job));
        var format = doc.RootElement.GetProperty("response_format");
        Assert.Equal("json_schema", format.GetProperty("type").GetString());
        Assert.Equal("boolean", format.GetProperty("json_schema").GetProperty("schema").GetProperty("type").GetString());
    }

    [Fact]
    public void Parse_Grammar_Read()
    {
        var job = Parse("\"grammar\":\"root ::= \\\"yes\\\" | \\\"no\\\"\"").Job!;
        Assert.Equal("root ::= \"yes\" | \"no\"", job.Grammar);
    }

    [Theory]
    [InlineData("\"response_format\":\"json\"", "response_format")]
    [InlineData("\"response_format\":{}", "response_format.type")]
    [InlineData("\"response_format\":{\"type\":\"yaml\"}", "response_format.type")]
    [InlineData("\"response_format\":{\"type\":\"json_object\",\"schema\":{}}", "response_format.schema")]
    [InlineData("\"response_format\":{\"type\":\"json_object\",\"json_schema\":{\"schema\":{}}}", "response_format.json_schema")]
    [InlineData("\"response_format\":{\"type\":\"json_schema\"}", "response_format.json_schema")]
    [InlineData("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"n\"}}", "response_format.json_schema.schema")]
    [InlineData("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":true}}", "response_format.json_schema.schema")]
    [InlineData("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a b\",\"schema\":{}}}", "response_format.json_schema.name")]
    [InlineData("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"strict\":\"yes\",\"schema\":{}}}", "response_format.json_schema.strict")]
    [InlineData("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{},\"extra\":1}}", "response_format.json_schema.extra")]
    [InlineData("\"grammar\":\"\"", "grammar")]
    [InlineData("\"grammar\":7", "grammar")]
    [InlineData("\"grammar\":\"root ::= \\\"a\\\"\",\"response_format\":{\"type\":\"json_object\"}", "grammar")]
    public void Parse_BadStructuredOutput_InvalidFieldNamed(string fields, string field) => Error(fields, field);

    [Fact]
    public void Parse_GrammarBeyondLimit_Refused()
    {
        var big = new string('a', JobLimits.Default.MaxGrammarBytes + 1);
        var error = Error($$"""
            "grammar":"root ::= \"{{big}}\""
            """, "grammar");
        Assert.Contains("bytes", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_GrammarWithTextResponseFormat_Accepted()
    {
        var job = Parse("\"grammar\":\"root ::= \\\"a\\\"\",\"response_format\":{\"type\":\"text\"}").Job!;
        Assert.NotNull(job.Grammar);
    }
}
