using System.Text.Json;
using Json.Schema;
using LLama;
using LLama.Common;
using QueueWorker.Contracts;
using QueueWorker.Inference.Grammar;

namespace QueueWorker.Inference.Tests.Grammar;

/// <summary>
/// Grammar-constrained generation on the real models: whatever the seed, the output validates against the schema
/// (checked by JsonSchema.Net, an independent validator), or the job says honestly that it was cut short.
/// </summary>
[Trait("Category", "Integration")]
public sealed class StructuredOutputTests
{
    public static readonly string[] Schemas =
    [
        """
        {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer", "minimum": 0, "maximum": 120},
         "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3}}, "required": ["name", "age"], "additionalProperties": false}
        """,
        """
        {"$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}, "required": ["x", "y"]}},
         "type": "object", "properties": {"from": {"$ref": "#/$defs/point"}, "to": {"anyOf": [{"$ref": "#/$defs/point"}, {"type": "null"}]}},
         "required": ["from", "to"]}
        """,
        """{"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{2}-\\d{3}$"}, "day": {"type": "string", "format": "date"}, "ok": {"type": "boolean"}}, "required": ["code", "day", "ok"]}""",
        """{"type": "array", "items": {"type": "integer", "minimum": -5, "maximum": 500}, "minItems": 1, "maxItems": 4}""",
        """{"enum": ["red", "green", "blue", 42, null]}""",
        """{"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}, "n": {"type": "number"}}, "required": ["id", "n"]}""",
    ];

    [Theory]
    [InlineData("stories260K")]
    [InlineData("llama-2-tiny-random")]
    public async Task Generate_SchemasTimesSeeds_ValidJsonOrLengthReported(string model)
    {
        var path = model == "stories260K" ? TestModels.Stories260K : TestModels.Llama2TinyRandom;
        await using var engine = await TestModels.StartAsync(TestModels.Options(slots: 4, contextSize: 2048, maxTokens: 160), path);
        var runs = new List<(string Schema, uint Seed, Task<GenerationResult> Result)>();
        foreach (var schema in Schemas)
        {
            var job = Job(schema);
            foreach (var seed in new uint[] { 1, 2, 3 })
            {
                var request = JobMapping.ToGeneration(Guid.NewGuid().ToString("N"), job, DateTimeOffset.UtcNow.AddMinutes(5)) with
                {
                    Sampling = new SamplingParams { Temperature = 1.0f, TopK = 0, TopP = 1, MinP = 0, Seed = seed },
                };
                runs.Add((schema, seed, engine.GenerateAsync(request, CancellationToken.None)));
            }
        }
        await Task.WhenAll(runs.Select(r => r.Result));

        var stopped = 0;
        foreach (var (schemaText, seed, task) in runs)
        {
            var result = await task;
            var (parsed, warning) = JobMapping.ParseJson(result);
            if (result.FinishReason == FinishReasons.Stop)
            {
                stopped++;
                Assert.True(parsed is not null, $"seed {seed}: output ended but is not JSON: {result.Text}\nschema: {schemaText}");
                var schema = JsonSchema.FromText(schemaText, new BuildOptions { SchemaRegistry = new SchemaRegistry() });
                var evaluation = schema.Evaluate(parsed.Value, new EvaluationOptions { OutputFormat = OutputFormat.List });
                Assert.True(evaluation.IsValid, $"seed {seed}: {result.Text}\nis not valid against {schemaText}");
            }
            else
            {
                Assert.Equal(FinishReasons.Length, result.FinishReason);
                Assert.Equal(160, result.CompletionTokens);
                // Cut short: reported as such, never passed off as data (unless the prefix happens to be complete JSON).
                if (parsed is null) Assert.Contains("max_tokens", warning, StringComparison.Ordinal);
            }
        }
        // Most outputs complete: a test where every job ran out of tokens would check nothing.
        Assert.True(stopped >= runs.Count / 2, $"only {stopped} of {runs.Count} jobs completed their JSON");
    }

    [Fact]
    public async Task Generate_JsonObjectGreedy_ParsesAsObject()
    {
        await using var engine = await TestModels.StartAsync(TestModels.Options(slots: 2, maxTokens: 200));
        var job = new JobRequest { Prompt = "Once upon a time", MaxTokens = 200, Temperature = 0, ResponseFormat = new ResponseFormat { Type = ResponseFormat.JsonObject } };
        var result = await engine.GenerateAsync(JobMapping.ToGeneration("j", job, DateTimeOffset.UtcNow.AddMinutes(1)), CancellationToken.None);

        var (parsed, warning) = JobMapping.ParseJson(result);
        if (result.FinishReason == FinishReasons.Stop)
        {
            Assert.Null(warning);
            Assert.Equal(JsonValueKind.Object, parsed!.Value.ValueKind);
        }
        else
        {
            Assert.StartsWith("{", result.Text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Generate_RawGrammar_OutputFollowsIt()
    {
        await using var engine = await TestModels.StartAsync(TestModels.Options(slots: 2));
        var job = new JobRequest { Prompt = "Once upon a time", MaxTokens = 20, Temperature = 0, Grammar = "root ::= (\"yes\" | \"no\") \".\"" };
        var result = await engine.GenerateAsync(JobMapping.ToGeneration("g", job, DateTimeOffset.UtcNow.AddMinutes(1)), CancellationToken.None);

        Assert.Contains(result.Text, new[] { "yes.", "no." });
        Assert.Equal(FinishReasons.Stop, result.FinishReason);
    }

    [Fact]
    public async Task Generate_GrammarThatDoesNotCompile_InvalidFieldNamingGrammar()
    {
        await using var engine = await TestModels.StartAsync(TestModels.Options(slots: 1));
        var job = new JobRequest { Prompt = "Once", MaxTokens = 5, Grammar = "root ::= undefined-rule" };
        var ex = await Assert.ThrowsAsync<InferenceException>(() =>
            engine.GenerateAsync(JobMapping.ToGeneration("bad", job, DateTimeOffset.UtcNow.AddMinutes(1)), CancellationToken.None));

        Assert.Equal(ErrorCodes.InvalidField, ex.Code);
        Assert.Equal("grammar", ex.Field);
        // The engine keeps serving.
        var ok = await engine.GenerateAsync(TestModels.Greedy("Once", 3), CancellationToken.None);
        Assert.Equal(3, ok.CompletionTokens);
    }

    [Fact]
    public async Task Generate_GreedyWithRepeatPenaltyAndSchema_PromptNotFedToGrammar()
    {
        await using var engine = await TestModels.StartAsync(TestModels.Options(slots: 1));
        var job = Job("""{"type": "boolean"}""") with { Temperature = 0, RepeatPenalty = 1.3f, MaxTokens = 10 };
        var result = await engine.GenerateAsync(JobMapping.ToGeneration("p", job, DateTimeOffset.UtcNow.AddMinutes(1)), CancellationToken.None);

        Assert.Contains(result.Text.Trim(), new[] { "true", "false" });
    }

    [Fact]
    public void Compile_EveryConverterGrammar_AcceptedByLlamaCpp()
    {
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(TestModels.Llama2TinyRandom));
        foreach (var c in SchemaCases.All)
        {
            using var compiled = GrammarNative.Compile(weights.NativeHandle, JsonSchemaToGbnf.Convert(c.Schema), "root");
            Assert.True(compiled is not null, $"llama.cpp refused the grammar of \"{c.Name}\"");
        }
        foreach (var schema in Schemas)
        {
            using var compiled = GrammarNative.Compile(weights.NativeHandle, JsonSchemaToGbnf.Convert(schema), "root");
            Assert.NotNull(compiled);
        }
        Assert.Null(GrammarNative.Compile(weights.NativeHandle, "root ::= (", "root"));
    }

    private static JobRequest Job(string schema) => new()
    {
        Prompt = "Once upon a time",
        MaxTokens = 160,
        ResponseFormat = new ResponseFormat
        {
            Type = ResponseFormat.JsonSchemaType,
            JsonSchema = new JsonSchemaFormat { Name = "t", Schema = JsonDocument.Parse(schema).RootElement.Clone() },
        },
    };
}
