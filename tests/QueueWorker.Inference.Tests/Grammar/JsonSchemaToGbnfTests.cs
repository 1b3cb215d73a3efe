using QueueWorker.Inference.Grammar;

namespace QueueWorker.Inference.Tests.Grammar;

[Trait("Category", "Unit")]
public sealed class JsonSchemaToGbnfTests
{
    public static TheoryData<string> LlamaCppCases()
    {
        var data = new TheoryData<string>();
        foreach (var c in SchemaCases.All) data.Add(c.Name);
        return data;
    }

    [Theory]
    [MemberData(nameof(LlamaCppCases))]
    public void Convert_LlamaCppCase_ExpectedGrammar(string name)
    {
        var c = SchemaCases.All.Single(x => x.Name == name);
        Assert.Equal(c.Grammar, JsonSchemaToGbnf.Convert(c.Schema));
    }

    [Theory]
    [InlineData("""{"type": "kaboom"}""", "type")]
    [InlineData("""{"type": 123}""", "type")]
    [InlineData("""{"allOf": [{"type": "string"}]}""", "allOf")]
    [InlineData("""{"not": {"type": "string"}}""", "not")]
    [InlineData("""{"type": "object", "patternProperties": {"^a": {}}}""", "patternProperties")]
    [InlineData("""{"type": "array", "items": {"type": "string"}, "uniqueItems": true}""", "uniqueItems")]
    [InlineData("""{"type": "number", "minimum": 0}""", "minimum")]
    [InlineData("""{"type": "number", "multipleOf": 2}""", "multipleOf")]
    [InlineData("""{"type": "string", "format": "email"}""", "format")]
    [InlineData("""{"type": "string", "pattern": "[a-z]+"}""", "pattern")]
    [InlineData("""{"type": "string", "pattern": "^(?=a)b$"}""", "pattern")]
    [InlineData("""{"type": "string", "pattern": "^(a)\\1$"}""", "pattern")]
    [InlineData("""{"type": "string", "pattern": "^\\bword$"}""", "pattern")]
    [InlineData("""{"type": "string", "pattern": "^\\p{L}$"}""", "pattern")]
    [InlineData("""{"type": "string", "pattern": "^a", "minLength": 2}""", "minLength")]
    [InlineData("""{"type": "string", "minLength": 5000}""", "minLength")]
    [InlineData("""{"type": "string", "minLength": 5, "maxLength": 2}""", "minLength")]
    [InlineData("""{"type": "object", "properties": {"a": {}}, "required": ["b"]}""", "required")]
    [InlineData("""{"$ref": "https://example.com/schema.json"}""", "$ref")]
    [InlineData("""{"$ref": "#/$defs/missing"}""", "$ref")]
    [InlineData("""{"type": "object", "anyOf": [{"type": "object"}]}""", "type")]
    [InlineData("""{"type": "string", "enum": ["a", 1]}""", "enum")]
    [InlineData("""{"enum": ["a"], "maxLength": 3}""", "maxLength")]
    [InlineData("""{"type": "string", "minimum": 3}""", "minimum")]
    [InlineData("""{"type": "integer", "minimum": 2.5}""", "minimum")]
    [InlineData("""{"type": "integer", "minimum": 5, "maximum": 4}""", "minimum")]
    [InlineData("""{"prefixItems": [{"type": "string"}], "items": {"type": "string"}}""", "prefixItems")]
    [InlineData("""{"foo": 1}""", "foo")]
    [InlineData("""{"type": "object", "if": {}, "then": {}}""", "if")]
    public void Convert_UnsupportedKeyword_RefusedNamingIt(string schema, string keyword)
    {
        var ex = Assert.Throws<SchemaNotSupportedException>(() => JsonSchemaToGbnf.Convert(schema));
        Assert.Equal(keyword, ex.Keyword);
        Assert.Contains(keyword, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Convert_AnnotationsAndVendorKeys_Accepted()
    {
        var grammar = JsonSchemaToGbnf.Convert("""
            {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "T", "description": "d", "x-order": 1,
             "type": "boolean", "default": true, "examples": [false], "deprecated": false}
            """);
        Assert.Equal(SchemaCases.Lines("root ::= (\"true\" | \"false\") space", SchemaCases.Space), grammar);
    }

    [Fact]
    public void Convert_NullableViaTypeArray_KeywordsGoToTheirType()
    {
        var grammar = JsonSchemaToGbnf.Convert("""{"type": ["string", "null"], "maxLength": 3}""");
        Assert.Contains("alternative-0 ::= \"\\\"\" char{0,3} \"\\\"\" space", grammar, StringComparison.Ordinal);
        Assert.Contains("root ::= alternative-0 | null", grammar, StringComparison.Ordinal);
    }

    [Fact]
    public void Convert_RecursiveRef_RecursiveRule()
    {
        var grammar = JsonSchemaToGbnf.Convert("""
            {"$ref": "#/$defs/node", "$defs": {"node": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}}}
            """);
        Assert.Contains("ref-defs-node ::= \"{\" space  (ref-defs-node-children-kv )? \"}\" space", grammar, StringComparison.Ordinal);
        Assert.Contains("ref-defs-node-children-item ::= ref-defs-node", grammar, StringComparison.Ordinal);
    }

    [Theory]
    // A quote or backslash inside a class is generated escaped; control characters are left out.
    [InlineData("^[a\"]$", "([a] | \"\\\\\\\"\")")]
    [InlineData("^[\\\\x]$", "([x] | \"\\\\\\\\\")")]
    // Negated classes and \D never produce what JSON must escape.
    [InlineData("^[^,]+$", "[^,\"\\\\\\x7F\\x00-\\x1F]+")]
    [InlineData("^\\D$", "[^0-9\"\\\\\\x7F\\x00-\\x1F]")]
    [InlineData("^\\d{2}-\\w+$", "[0-9]{2,2} \"-\" [a-zA-Z0-9_]+")]
    [InlineData("^a\\nb$", "\"a\\\\nb\"")]
    [InlineData("^a{2,}?$", "\"a\"{2,}")]
    [InlineData("^x{1,5000}$", "\"x\"{1,2000}")]
    public void Convert_Pattern_JsonSafeGrammar(string pattern, string body)
    {
        var grammar = JsonSchemaToGbnf.Convert($$"""{"type": "string", "pattern": {{JsonSchemaToGbnf.JsonString(pattern)}}}""");
        Assert.Contains("root ::= \"\\\"\" (" + body + ") \"\\\"\" space", grammar, StringComparison.Ordinal);
    }

    [Fact]
    public void JsonObject_IsAnyObject()
    {
        Assert.Contains("root ::= object", JsonSchemaToGbnf.JsonObject, StringComparison.Ordinal);
        Assert.Contains(SchemaCases.Space, JsonSchemaToGbnf.JsonObject, StringComparison.Ordinal);
    }

    [Fact]
    public void Convert_NotJson_RefusedAsSchema()
    {
        var ex = Assert.Throws<SchemaNotSupportedException>(() => JsonSchemaToGbnf.Convert("{nope"));
        Assert.Equal("schema", ex.Keyword);
    }
}
