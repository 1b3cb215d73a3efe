namespace QueueWorker.Inference.Tests.Grammar;

/// <summary>
/// llama.cpp's tests/test-json-schema-to-grammar.cpp cases that fall in the supported subset, with the grammar it
/// expects (rule order and text equal). Where this converter deliberately differs, the case says how and why.
/// </summary>
internal static class SchemaCases
{
    public const string Space = "space ::= | \" \" | \"\\n\"{1,2} [ \\t]{0,20}";
    private const string Char = "char ::= [^\"\\\\\\x7F\\x00-\\x1F] | [\\\\] ([\"\\\\bfnrt] | \"u\" [0-9a-fA-F]{4})";
    private const string Str = "string ::= \"\\\"\" char* \"\\\"\" space";
    private const string Decimal = "decimal-part ::= [0-9]{1,16}";
    private const string Integral = "integral-part ::= [0] | [1-9] [0-9]{0,15}";
    private const string Number = "number ::= (\"-\"? integral-part) (\".\" decimal-part)? ([eE] [-+]? integral-part)? space";
    private const string Integer = "integer ::= (\"-\"? integral-part) space";
    private const string Boolean = "boolean ::= (\"true\" | \"false\") space";

    private static readonly string[] AnyValue =
    [
        "array ::= \"[\" space ( value (\",\" space value)* )? \"]\" space",
        Boolean,
        Char,
        Decimal,
        Integral,
        "null ::= \"null\" space",
        Number,
        "object ::= \"{\" space ( string \":\" space value (\",\" space string \":\" space value)* )? \"}\" space",
    ];

    private static readonly string[] AnyValueTail = [Str, "value ::= object | array | string | number | boolean | null"];

    public sealed record Case(string Name, string Schema, string Grammar)
    {
        public override string ToString() => Name;
    }

    private static Case Int(string name, string bounds, string root) =>
        new(name, "{\"type\": \"integer\", " + bounds + "}", Lines("root ::= (" + root + ") space", Space));

    public static string Lines(params string[] lines) => string.Join("\n", lines) + "\n";

    public static IReadOnlyList<Case> All { get; } =
    [
        Int("min 0", "\"minimum\": 0", "[0] | [1-9] [0-9]{0,15}"),
        Int("min 1", "\"minimum\": 1", "[1-9] [0-9]{0,15}"),
        Int("min 3", "\"minimum\": 3", "[1-2] [0-9]{1,15} | [3-9] [0-9]{0,15}"),
        Int("min 9", "\"minimum\": 9", "[1-8] [0-9]{1,15} | [9] [0-9]{0,15}"),
        Int("min 10", "\"minimum\": 10", "[1] ([0-9]{1,15}) | [2-9] [0-9]{1,15}"),
        Int("min 25", "\"minimum\": 25", "[1] [0-9]{2,15} | [2] ([0-4] [0-9]{1,14} | [5-9] [0-9]{0,14}) | [3-9] [0-9]{1,15}"),
        Int("max 30", "\"maximum\": 30", "\"-\" [1-9] [0-9]{0,15} | [0-9] | ([1-2] [0-9] | [3] \"0\")"),
        Int("min -5", "\"minimum\": -5", "\"-\" ([0-5]) | [0] | [1-9] [0-9]{0,15}"),
        Int("min -123", "\"minimum\": -123", "\"-\" ([0-9] | ([1-8] [0-9] | [9] [0-9]) | \"1\" ([0-1] [0-9] | [2] [0-3])) | [0] | [1-9] [0-9]{0,15}"),
        Int("max -5", "\"maximum\": -5", "\"-\" ([0-4] [0-9]{1,15} | [5-9] [0-9]{0,15})"),
        Int("max 1", "\"maximum\": 1", "\"-\" [1-9] [0-9]{0,15} | [0-1]"),
        Int("max 100", "\"maximum\": 100", "\"-\" [1-9] [0-9]{0,15} | [0-9] | ([1-8] [0-9] | [9] [0-9]) | \"100\""),
        Int("min 0 max 23", "\"minimum\": 0, \"maximum\": 23", "[0-9] | ([1] [0-9] | [2] [0-3])"),
        Int("min 15 max 300", "\"minimum\": 15, \"maximum\": 300", "([1] ([5-9]) | [2-9] [0-9]) | ([1-2] [0-9]{2} | [3] \"00\")"),
        Int("min 5 max 30", "\"minimum\": 5, \"maximum\": 30", "[5-9] | ([1-2] [0-9] | [3] \"0\")"),
        Int("min -123 max 42", "\"minimum\": -123, \"maximum\": 42",
            "\"-\" ([0-9] | ([1-8] [0-9] | [9] [0-9]) | \"1\" ([0-1] [0-9] | [2] [0-3])) | [0-9] | ([1-3] [0-9] | [4] [0-2])"),
        Int("min -10 max 10", "\"minimum\": -10, \"maximum\": 10", "\"-\" ([0-9] | \"10\") | [0-9] | \"10\""),
        new("empty schema (object)", "{}", Lines([.. AnyValue, "root ::= object", Space, .. AnyValueTail])),
        new("exotic formats", """{"items": [{ "format": "date" }, { "format": "uuid" }, { "format": "time" }, { "format": "date-time" }]}""", Lines(
            "date ::= [0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [1-2] [0-9] | \"3\" [0-1] )",
            "date-string ::= \"\\\"\" date \"\\\"\" space",
            "date-time ::= date \"T\" time",
            "date-time-string ::= \"\\\"\" date-time \"\\\"\" space",
            "root ::= \"[\" space tuple-0 \",\" space uuid \",\" space tuple-2 \",\" space tuple-3 \"]\" space",
            Space,
            "time ::= ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{3} )? ( \"Z\" | ( \"+\" | \"-\" ) ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )",
            "time-string ::= \"\\\"\" time \"\\\"\" space",
            "tuple-0 ::= date-string",
            "tuple-2 ::= time-string",
            "tuple-3 ::= date-time-string",
            "uuid ::= \"\\\"\" [0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{12} \"\\\"\" space")),
        new("string", """{"type": "string"}""", Lines(Char, "root ::= \"\\\"\" char* \"\\\"\" space", Space)),
        new("string w/ min length 1", """{"type": "string", "minLength": 1}""", Lines(Char, "root ::= \"\\\"\" char+ \"\\\"\" space", Space)),
        new("string w/ min length 3", """{"type": "string", "minLength": 3}""", Lines(Char, "root ::= \"\\\"\" char{3,} \"\\\"\" space", Space)),
        new("string w/ max length", """{"type": "string", "maxLength": 3}""", Lines(Char, "root ::= \"\\\"\" char{0,3} \"\\\"\" space", Space)),
        new("string w/ min & max length", """{"type": "string", "minLength": 1, "maxLength": 4}""", Lines(Char, "root ::= \"\\\"\" char{1,4} \"\\\"\" space", Space)),
        new("boolean", """{"type": "boolean"}""", Lines("root ::= (\"true\" | \"false\") space", Space)),
        new("integer", """{"type": "integer"}""", Lines(Integral, "root ::= (\"-\"? integral-part) space", Space)),
        new("string const", """{"const": "foo"}""", Lines("root ::= \"\\\"foo\\\"\" space", Space)),
        new("non-string const", """{"const": 123}""", Lines("root ::= \"123\" space", Space)),
        new("non-string enum", """{"enum": ["red", "amber", "green", null, 42, ["foo"]]}""",
            Lines("root ::= (\"\\\"red\\\"\" | \"\\\"amber\\\"\" | \"\\\"green\\\"\" | \"null\" | \"42\" | \"[\\\"foo\\\"]\") space", Space)),
        new("tuple1", """{"prefixItems": [{ "type": "string" }]}""", Lines(Char, "root ::= \"[\" space string \"]\" space", Space, Str)),
        new("tuple2", """{"prefixItems": [{ "type": "string" }, { "type": "number" }]}""",
            Lines(Char, Decimal, Integral, Number, "root ::= \"[\" space string \",\" space number \"]\" space", Space, Str)),
        new("array with empty items", """{"type": "array", "items": {}}""", Lines([.. AnyValue[..5], "item ::= object", .. AnyValue[5..],
            "root ::= \"[\" space (item (\",\" space item)*)? \"]\" space", Space, .. AnyValueTail])),
        new("number", """{"type": "number"}""", Lines(Decimal, Integral, "root ::= (\"-\"? integral-part) (\".\" decimal-part)? ([eE] [-+]? integral-part)? space", Space)),
        new("minItems", """{"items": {"type": "boolean"}, "minItems": 2}""", Lines(Boolean, "root ::= \"[\" space boolean (\",\" space boolean)+ \"]\" space", Space)),
        new("maxItems 0", """{"items": {"type": "boolean"}, "maxItems": 0}""", Lines(Boolean, "root ::= \"[\" space  \"]\" space", Space)),
        new("maxItems 1", """{"items": {"type": "boolean"}, "maxItems": 1}""", Lines(Boolean, "root ::= \"[\" space boolean? \"]\" space", Space)),
        new("maxItems 2", """{"items": {"type": "boolean"}, "maxItems": 2}""", Lines(Boolean, "root ::= \"[\" space (boolean (\",\" space boolean)?)? \"]\" space", Space)),
        new("min + maxItems", """{"items": {"type": ["number", "integer"]}, "minItems": 3, "maxItems": 5}""",
            Lines(Decimal, Integer, Integral, "item ::= number | integer", Number, "root ::= \"[\" space item (\",\" space item){2,4} \"]\" space", Space)),
        new("min + max items with min + max values across zero", """{"items": {"type": "integer", "minimum": -12, "maximum": 207}, "minItems": 3, "maxItems": 5}""",
            Lines("item ::= (\"-\" ([0-9] | \"1\" [0-2]) | [0-9] | ([1-8] [0-9] | [9] [0-9]) | ([1] [0-9]{2} | [2] \"0\" [0-7])) space",
                "root ::= \"[\" space item (\",\" space item){2,4} \"]\" space", Space)),
        new("min + max items with min + max values", """{"items": {"type": "integer", "minimum": 12, "maximum": 207}, "minItems": 3, "maxItems": 5}""",
            Lines("item ::= (([1] ([2-9]) | [2-9] [0-9]) | ([1] [0-9]{2} | [2] \"0\" [0-7])) space",
                "root ::= \"[\" space item (\",\" space item){2,4} \"]\" space", Space)),
        new("simple regexp", """{"type": "string", "pattern": "^abc?d*efg+(hij)?kl$"}""",
            Lines("root ::= \"\\\"\" (\"ab\" \"c\"? \"d\"* \"ef\" \"g\"+ (\"hij\")? \"kl\") \"\\\"\" space", Space)),
        new("regexp escapes", """{"type": "string", "pattern": "^\\[\\]\\{\\}\\(\\)\\|\\+\\*\\?$"}""",
            Lines("root ::= \"\\\"\" (\"[]{}()|+*?\") \"\\\"\" space", Space)),
        // llama.cpp generates a bare quote here, which ends the JSON string early; the quote is generated escaped.
        new("regexp quote (escaped in the JSON output)", """{"type": "string", "pattern": "^\"$"}""",
            Lines("root ::= \"\\\"\" (\"\\\\\\\"\") \"\\\"\" space", Space)),
        new("regexp with top-level alternation", """{"type": "string", "pattern": "^A|B|C|D$"}""",
            Lines("root ::= \"\\\"\" (\"A\" | \"B\" | \"C\" | \"D\") \"\\\"\" space", Space)),
        // Equivalent to llama.cpp's: it repeats a class through a helper rule (root-1 ::= [0-9]); its "dot" lets a quote,
        // a backslash or a control character into the JSON string, which would end or break it.
        new("regexp (class repeated in place, dot JSON-safe)", """{"type": "string", "pattern": "^(\\([0-9]{1,3}\\))?[0-9]{3}-[0-9]{4} a{3,5}nd...$"}""",
            Lines("dot ::= [^\"\\\\\\x7F\\x00-\\x1F]",
                "root ::= \"\\\"\" ((\"(\" [0-9]{1,3} \")\")? [0-9]{3,3} \"-\" [0-9]{4,4} \" \" \"a\"{3,5} \"nd\" dot dot dot) \"\\\"\" space", Space)),
        new("regexp with non-capturing group", """{"type": "string", "pattern": "^(?:foo|bar)baz$"}""",
            Lines("root ::= \"\\\"\" ((\"foo\" | \"bar\") \"baz\") \"\\\"\" space", Space)),
        new("regexp with nested non-capturing groups", """{"type": "string", "pattern": "^(?:(?:ab)+c)?d$"}""",
            Lines("root ::= \"\\\"\" (((\"ab\")+ \"c\")? \"d\") \"\\\"\" space", Space)),
        new("required props in original order", """
            {"type": "object", "properties": {"b": {"type": "string"}, "c": {"type": "string"}, "a": {"type": "string"}},
             "required": ["a", "b", "c"], "additionalProperties": false, "definitions": {}}
            """, Lines("a-kv ::= \"\\\"a\\\"\" space \":\" space string", "b-kv ::= \"\\\"b\\\"\" space \":\" space string",
            "c-kv ::= \"\\\"c\\\"\" space \":\" space string", Char, "root ::= \"{\" space b-kv \",\" space c-kv \",\" space a-kv \"}\" space", Space, Str)),
        new("1 optional prop", """{"properties": {"a": {"type": "string"}}, "additionalProperties": false}""",
            Lines("a-kv ::= \"\\\"a\\\"\" space \":\" space string", Char, "root ::= \"{\" space  (a-kv )? \"}\" space", Space, Str)),
        new("N optional props", """{"properties": {"a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string"}}, "additionalProperties": false}""",
            Lines("a-kv ::= \"\\\"a\\\"\" space \":\" space string", "a-rest ::= ( \",\" space b-kv )? b-rest",
                "b-kv ::= \"\\\"b\\\"\" space \":\" space string", "b-rest ::= ( \",\" space c-kv )?",
                "c-kv ::= \"\\\"c\\\"\" space \":\" space string", Char,
                "root ::= \"{\" space  (a-kv a-rest | b-kv b-rest | c-kv )? \"}\" space", Space, Str)),
        new("required + optional props each in original order", """
            {"properties": {"b": {"type": "string"}, "a": {"type": "string"}, "d": {"type": "string"}, "c": {"type": "string"}},
             "required": ["a", "b"], "additionalProperties": false}
            """, Lines("a-kv ::= \"\\\"a\\\"\" space \":\" space string", "b-kv ::= \"\\\"b\\\"\" space \":\" space string",
            "c-kv ::= \"\\\"c\\\"\" space \":\" space string", Char, "d-kv ::= \"\\\"d\\\"\" space \":\" space string",
            "d-rest ::= ( \",\" space c-kv )?", "root ::= \"{\" space b-kv \",\" space a-kv ( \",\" space ( d-kv d-rest | c-kv ) )? \"}\" space", Space, Str)),
        new("additional props", """{"type": "object", "additionalProperties": {"type": "array", "items": {"type": "number"}}}""",
            Lines("additional-kv ::= string \":\" space additional-value",
                "additional-value ::= \"[\" space (number (\",\" space number)*)? \"]\" space", Char, Decimal, Integral, Number,
                "root ::= \"{\" space  (additional-kv ( \",\" space additional-kv )* )? \"}\" space", Space, Str)),
        new("additional props (true)", """{"type": "object", "additionalProperties": true}""", Lines([.. AnyValue, "root ::= object", Space, .. AnyValueTail])),
        new("additional props (implicit)", """{"type": "object"}""", Lines([.. AnyValue, "root ::= object", Space, .. AnyValueTail])),
        new("empty w/o additional props", """{"type": "object", "additionalProperties": false}""", Lines("root ::= \"{\" space  \"}\" space", Space)),
        new("required + additional props", """{"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"], "additionalProperties": {"type": "string"}}""",
            Lines("a-kv ::= \"\\\"a\\\"\" space \":\" space number", "additional-k ::= [\"] ( [a] char+ | [^\"a] char* )? [\"] space",
                "additional-kv ::= additional-k \":\" space string", Char, Decimal, Integral, Number,
                "root ::= \"{\" space a-kv ( \",\" space ( additional-kv ( \",\" space additional-kv )* ) )? \"}\" space", Space, Str)),
        new("optional + additional props", """{"type": "object", "properties": {"a": {"type": "number"}}, "additionalProperties": {"type": "number"}}""",
            Lines("a-kv ::= \"\\\"a\\\"\" space \":\" space number", "a-rest ::= ( \",\" space additional-kv )*",
                "additional-k ::= [\"] ( [a] char+ | [^\"a] char* )? [\"] space", "additional-kv ::= additional-k \":\" space number",
                Char, Decimal, Integral, Number, "root ::= \"{\" space  (a-kv a-rest | additional-kv ( \",\" space additional-kv )* )? \"}\" space", Space)),
        new("required + optional + additional props", """
            {"type": "object", "properties": {"and": {"type": "number"}, "also": {"type": "number"}}, "required": ["and"], "additionalProperties": {"type": "number"}}
            """, Lines("additional-k ::= [\"] ( [a] ([l] ([s] ([o] char+ | [^\"o] char*) | [^\"s] char*) | [n] ([d] char+ | [^\"d] char*) | [^\"ln] char*) | [^\"a] char* )? [\"] space",
            "additional-kv ::= additional-k \":\" space number", "also-kv ::= \"\\\"also\\\"\" space \":\" space number",
            "also-rest ::= ( \",\" space additional-kv )*", "and-kv ::= \"\\\"and\\\"\" space \":\" space number", Char, Decimal, Integral, Number,
            "root ::= \"{\" space and-kv ( \",\" space ( also-kv also-rest | additional-kv ( \",\" space additional-kv )* ) )? \"}\" space", Space)),
        new("optional props with nested names", """{"properties": {"a": {"type": "integer"}, "aa": {"type": "integer"}}, "additionalProperties": {"type": "integer"}}""",
            Lines("a-kv ::= \"\\\"a\\\"\" space \":\" space integer", "a-rest ::= ( \",\" space aa-kv )? aa-rest",
                "aa-kv ::= \"\\\"aa\\\"\" space \":\" space integer", "aa-rest ::= ( \",\" space additional-kv )*",
                "additional-k ::= [\"] ( [a] ([a] char+ | [^\"a] char*) | [^\"a] char* )? [\"] space",
                "additional-kv ::= additional-k \":\" space integer", Char, Integer, Integral,
                "root ::= \"{\" space  (a-kv a-rest | aa-kv aa-rest | additional-kv ( \",\" space additional-kv )* )? \"}\" space", Space)),
        new("optional props with common prefix", """{"properties": {"ab": {"type": "integer"}, "ac": {"type": "integer"}}, "additionalProperties": {"type": "integer"}}""",
            Lines("ab-kv ::= \"\\\"ab\\\"\" space \":\" space integer", "ab-rest ::= ( \",\" space ac-kv )? ac-rest",
                "ac-kv ::= \"\\\"ac\\\"\" space \":\" space integer", "ac-rest ::= ( \",\" space additional-kv )*",
                "additional-k ::= [\"] ( [a] ([b] char+ | [c] char+ | [^\"bc] char*) | [^\"a] char* )? [\"] space",
                "additional-kv ::= additional-k \":\" space integer", Char, Integer, Integral,
                "root ::= \"{\" space  (ab-kv ab-rest | ac-kv ac-rest | additional-kv ( \",\" space additional-kv )* )? \"}\" space", Space)),
        new("top-level $ref", """
            {"$ref": "#/definitions/foo", "definitions": {"foo": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": false}}}
            """, Lines(Char, "ref-definitions-foo ::= \"{\" space ref-definitions-foo-a-kv \"}\" space",
            "ref-definitions-foo-a-kv ::= \"\\\"a\\\"\" space \":\" space string", "root ::= ref-definitions-foo", Space, Str)),
        // llama.cpp's case also has "type": "object" beside anyOf, which it ignores; here that combination is refused.
        new("anyOf", """
            {"anyOf": [{"$ref": "#/definitions/foo"}, {"$ref": "#/definitions/bar"}],
             "definitions": {"foo": {"properties": {"a": {"type": "number"}}}, "bar": {"properties": {"b": {"type": "number"}}}}}
            """, Lines("alternative-0 ::= ref-definitions-foo", "alternative-1 ::= ref-definitions-bar", Decimal, Integral, Number,
            "ref-definitions-bar ::= \"{\" space  (ref-definitions-bar-b-kv )? \"}\" space", "ref-definitions-bar-b-kv ::= \"\\\"b\\\"\" space \":\" space number",
            "ref-definitions-foo ::= \"{\" space  (ref-definitions-foo-a-kv )? \"}\" space", "ref-definitions-foo-a-kv ::= \"\\\"a\\\"\" space \":\" space number",
            "root ::= alternative-0 | alternative-1", Space)),
        new("anyOf $ref", """
            {"properties": {"a": {"anyOf": [{"type": "string"}, {"type": "number"}]}, "b": {"anyOf": [{"$ref": "#/properties/a/anyOf/0"}, {"type": "boolean"}]}}, "type": "object"}
            """, Lines("a ::= string | number", "a-kv ::= \"\\\"a\\\"\" space \":\" space a", "a-rest ::= ( \",\" space b-kv )?",
            "b ::= b-0 | boolean", "b-0 ::= string", "b-kv ::= \"\\\"b\\\"\" space \":\" space b", Boolean, Char, Decimal, Integral, Number,
            "root ::= \"{\" space  (a-kv a-rest | b-kv )? \"}\" space", Space, Str)),
        new("conflicting names", """
            {"type": "object", "properties": {"number": {"type": "object", "properties": {"number": {"type": "object", "properties": {"root": {"type": "number"}},
             "required": ["root"], "additionalProperties": false}}, "required": ["number"], "additionalProperties": false}},
             "required": ["number"], "additionalProperties": false, "definitions": {}}
            """, Lines(Decimal, Integral, Number, "number- ::= \"{\" space number-number-kv \"}\" space",
            "number-kv ::= \"\\\"number\\\"\" space \":\" space number-", "number-number ::= \"{\" space number-number-root-kv \"}\" space",
            "number-number-kv ::= \"\\\"number\\\"\" space \":\" space number-number", "number-number-root-kv ::= \"\\\"root\\\"\" space \":\" space number",
            "root ::= \"{\" space number-kv \"}\" space", Space)),
        new("description only (no type) treated as unconstrained", """{"description": "The 0-based index of the last line to be retrieved."}""",
            Lines([.. AnyValue, "root ::= value", Space, .. AnyValueTail])),
        new("literal string with escapes", """
            {"properties": {"code": {"const": " \r \n \" \\ ", "description": "Generated code", "title": "Code", "type": "string"}},
             "required": ["code"], "title": "DecoderResponse", "type": "object"}
            """, Lines("code ::= \"\\\" \\\\r \\\\n \\\\\\\" \\\\\\\\ \\\"\" space", "code-kv ::= \"\\\"code\\\"\" space \":\" space code",
            "root ::= \"{\" space code-kv \"}\" space", Space)),
    ];
}
