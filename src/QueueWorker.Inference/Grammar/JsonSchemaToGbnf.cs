using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace QueueWorker.Inference.Grammar;

/// <summary>
/// Converts a JSON Schema into a GBNF grammar whose every sentence is a JSON text valid against the schema, following
/// the semantics (and the rule names) of llama.cpp's <c>json_schema_to_grammar</c>. Unlike llama.cpp, a keyword the
/// grammar cannot honour is refused with <see cref="SchemaNotSupportedException"/> instead of being ignored, and a
/// string <c>pattern</c> is generated as JSON-escaped text (llama.cpp emits a raw <c>"</c> for a quote in a pattern).
/// The README's "Structured output" section lists the subset.
/// </summary>
public static partial class JsonSchemaToGbnf
{
    /// <summary>Whitespace between tokens: bounded, so a model cannot spend its tokens on spaces.</summary>
    public const string SpaceRule = "| \" \" | \"\\n\"{1,2} [ \\t]{0,20}";

    /// <summary>
    /// The largest repetition count written into a grammar (llama.cpp's grammar parser refuses more than 2000). A larger
    /// maximum (<c>maxLength</c>, <c>maxItems</c>, <c>{m,n}</c>) is generated up to this count, a subset of what the schema
    /// allows; a larger minimum is refused.
    /// </summary>
    public const int MaxRepetition = 2000;

    /// <summary>The grammar of <c>response_format: {"type": "json_object"}</c>: any JSON object.</summary>
    public static string JsonObject => JsonObjectGrammar.Value;

    // Lazy: static initializers run in textual order, and this one needs the rule tables below.
    private static readonly Lazy<string> JsonObjectGrammar = new(() => Convert("{\"type\":\"object\"}"));

    /// <summary>Converts the schema text; throws <see cref="SchemaNotSupportedException"/> naming the keyword at fault.</summary>
    public static string Convert(string schemaJson)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(schemaJson, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException ex)
        {
            throw new SchemaNotSupportedException("schema", $"The schema is not valid JSON: {ex.Message}");
        }
        using (doc) return Convert(doc.RootElement);
    }

    public static string Convert(JsonElement schema) => new Converter(schema).Run();

    private sealed record Builtin(string Content, params string[] Deps);

    private static readonly Dictionary<string, Builtin> Primitives = new(StringComparer.Ordinal)
    {
        ["boolean"] = new("(\"true\" | \"false\") space"),
        ["decimal-part"] = new("[0-9]{1,16}"),
        ["integral-part"] = new("[0] | [1-9] [0-9]{0,15}"),
        ["number"] = new("(\"-\"? integral-part) (\".\" decimal-part)? ([eE] [-+]? integral-part)? space", "integral-part", "decimal-part"),
        ["integer"] = new("(\"-\"? integral-part) space", "integral-part"),
        ["value"] = new("object | array | string | number | boolean | null", "object", "array", "string", "number", "boolean", "null"),
        ["object"] = new("\"{\" space ( string \":\" space value (\",\" space string \":\" space value)* )? \"}\" space", "string", "value"),
        ["array"] = new("\"[\" space ( value (\",\" space value)* )? \"]\" space", "value"),
        ["uuid"] = new("\"\\\"\" [0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{12} \"\\\"\" space"),
        ["char"] = new("[^\"\\\\\\x7F\\x00-\\x1F] | [\\\\] ([\"\\\\bfnrt] | \"u\" [0-9a-fA-F]{4})"),
        ["string"] = new("\"\\\"\" char* \"\\\"\" space", "char"),
        ["null"] = new("\"null\" space"),
    };

    private static readonly Dictionary<string, Builtin> Formats = new(StringComparer.Ordinal)
    {
        ["date"] = new("[0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [1-2] [0-9] | \"3\" [0-1] )"),
        ["time"] = new("([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{3} )? ( \"Z\" | ( \"+\" | \"-\" ) ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )"),
        ["date-time"] = new("date \"T\" time", "date", "time"),
        ["date-string"] = new("\"\\\"\" date \"\\\"\" space", "date"),
        ["time-string"] = new("\"\\\"\" time \"\\\"\" space", "time"),
        ["date-time-string"] = new("\"\\\"\" date-time \"\\\"\" space", "date-time"),
    };

    /// <summary>Keywords that annotate and constrain nothing: accepted anywhere.</summary>
    private static readonly HashSet<string> Annotations = new(StringComparer.Ordinal)
    {
        "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly", "$defs", "definitions",
    };

    /// <summary>The constraining keywords the converter understands, by the type they apply to.</summary>
    private static readonly Dictionary<string, string[]> TypeKeywords = new(StringComparer.Ordinal)
    {
        ["string"] = ["minLength", "maxLength", "pattern", "format"],
        ["integer"] = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"],
        ["number"] = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"],
        ["object"] = ["properties", "required", "additionalProperties"],
        ["array"] = ["items", "prefixItems", "minItems", "maxItems"],
        ["boolean"] = [],
        ["null"] = [],
    };

    private static readonly HashSet<string> Known = new(
        TypeKeywords.Values.SelectMany(k => k).Concat(["type", "enum", "const", "anyOf", "oneOf", "$ref"]), StringComparer.Ordinal);

    private static readonly HashSet<string> Reserved = new(Primitives.Keys.Concat(Formats.Keys).Append("root"), StringComparer.Ordinal);

    [GeneratedRegex("^uuid[1-5]?$")]
    private static partial Regex UuidFormat();

    [GeneratedRegex("[^a-zA-Z0-9-]+")]
    private static partial Regex InvalidRuleChars();

    private static SchemaNotSupportedException Refuse(string keyword, string path, string why) =>
        new(keyword, $"\"{keyword}\" at {(path.Length == 0 ? "the schema's root" : path)}: {why}");

    private static bool IsAnnotation(string key) => Annotations.Contains(key) || key.StartsWith("x-", StringComparison.Ordinal);

    private sealed class Converter(JsonElement root)
    {
        private const string AdditionalKey = "\0additional";
        private readonly SortedDictionary<string, string> _rules = new(StringComparer.Ordinal) { ["space"] = SpaceRule };
        private readonly HashSet<string> _resolving = new(StringComparer.Ordinal);

        public string Run()
        {
            Visit(root, "", "");
            var sb = new StringBuilder();
            foreach (var (name, rule) in _rules) sb.Append(name).Append(" ::= ").Append(rule).Append('\n');
            return sb.ToString();
        }


        private string AddRule(string name, string rule)
        {
            var escaped = InvalidRuleChars().Replace(name, "-");
            if (!_rules.TryGetValue(escaped, out var existing) || existing == rule)
            {
                _rules[escaped] = rule;
                return escaped;
            }
            var i = 0;
            while (_rules.TryGetValue(escaped + i.ToString(CultureInfo.InvariantCulture), out var other) && other != rule) i++;
            var key = escaped + i.ToString(CultureInfo.InvariantCulture);
            _rules[key] = rule;
            return key;
        }

        private string AddPrimitive(string name, Builtin rule)
        {
            var n = AddRule(name, rule.Content);
            foreach (var dep in rule.Deps)
            {
                if (_rules.ContainsKey(dep)) continue;
                AddPrimitive(dep, Primitives.TryGetValue(dep, out var p) ? p : Formats[dep]);
            }
            return n;
        }

        private static string Join(string name, string part) => name.Length == 0 ? part : name + "-" + part;

        private string Visit(JsonElement schema, string name, string path)
        {
            var ruleName = Reserved.Contains(name) ? name + "-" : name.Length == 0 ? "root" : name;
            if (schema.ValueKind == JsonValueKind.True) return AddRule(ruleName, AddPrimitive("value", Primitives["value"]));
            if (schema.ValueKind != JsonValueKind.Object)
                throw Refuse("type", path, $"a schema must be an object, got {schema.ValueKind.ToString().ToLowerInvariant()}.");

            var keys = new List<string>();
            foreach (var p in schema.EnumerateObject())
            {
                if (IsAnnotation(p.Name)) continue;
                if (!Known.Contains(p.Name))
                    throw Refuse(p.Name, path, "this keyword is not supported by the grammar converter (see the README's supported subset); it is refused rather than ignored.");
                keys.Add(p.Name);
            }

            if (schema.TryGetProperty("$ref", out var reference))
            {
                OnlyWith(keys, path, "$ref");
                if (reference.ValueKind != JsonValueKind.String) throw Refuse("$ref", path, "must be a string.");
                return AddRule(ruleName, ResolveRef(reference.GetString()!, path));
            }
            if (schema.TryGetProperty("anyOf", out _) || schema.TryGetProperty("oneOf", out _))
            {
                var keyword = schema.TryGetProperty("anyOf", out _) ? "anyOf" : "oneOf";
                OnlyWith(keys, path, keyword);
                var alternatives = schema.GetProperty(keyword);
                if (alternatives.ValueKind != JsonValueKind.Array || alternatives.GetArrayLength() == 0)
                    throw Refuse(keyword, path, "must be a non-empty array of schemas.");
                return AddRule(ruleName, Union(name, alternatives.EnumerateArray().ToList(), i => $"{path}/{keyword}/{i}"));
            }

            var types = ReadTypes(schema, path);
            if (schema.TryGetProperty("const", out var constant))
            {
                OnlyWith(keys, path, "const", "type");
                CheckType(constant, types, "const", path);
                return AddRule(ruleName, FormatLiteral(JsonText(constant)) + " space");
            }
            if (schema.TryGetProperty("enum", out var values))
            {
                OnlyWith(keys, path, "enum", "type");
                if (values.ValueKind != JsonValueKind.Array || values.GetArrayLength() == 0)
                    throw Refuse("enum", path, "must be a non-empty array.");
                foreach (var v in values.EnumerateArray()) CheckType(v, types, "enum", path);
                return AddRule(ruleName, "(" + string.Join(" | ", values.EnumerateArray().Select(v => FormatLiteral(JsonText(v)))) + ") space");
            }
            if (types is { Count: > 1 })
            {
                // One alternative per type, each with the keywords that apply to it.
                foreach (var k in keys)
                {
                    if (k != "type" && !types.Any(t => TypeKeywords[t].Contains(k)))
                        throw Refuse(k, path, $"applies to none of the types {string.Join(", ", types)}.");
                }
                var copies = types.Select(t => WithType(schema, t)).ToList();
                return AddRule(ruleName, Union(name, copies.Select(c => c.RootElement).ToList(), _ => path));
            }

            var type = types?[0];
            if (type is null or "object" && (Has(schema, "properties") || Has(schema, "required") ||
                (schema.TryGetProperty("additionalProperties", out var ap) && ap.ValueKind != JsonValueKind.True)))
            {
                OnlyWith(keys, path, "type", "properties", "required", "additionalProperties");
                return AddRule(ruleName, ObjectRule(schema, name, path));
            }
            if (type is null or "array" && (Has(schema, "items") || Has(schema, "prefixItems")))
            {
                OnlyWith(keys, path, "type", "items", "prefixItems", "minItems", "maxItems");
                return AddRule(ruleName, ArrayRule(schema, name, path));
            }
            if (type is null or "array" && (Has(schema, "minItems") || Has(schema, "maxItems")))
            {
                OnlyWith(keys, path, "type", "minItems", "maxItems");
                var (min, max) = Bounds(schema, "minItems", "maxItems", path);
                var value = AddPrimitive("value", Primitives["value"]);
                return AddRule(ruleName, "\"[\" space " + Repetition(value, min, max, "\",\" space") + " \"]\" space");
            }
            if (type is null or "string" && Has(schema, "pattern"))
            {
                OnlyWith(keys, path, "type", "pattern");
                var pattern = schema.GetProperty("pattern");
                if (pattern.ValueKind != JsonValueKind.String) throw Refuse("pattern", path, "must be a string.");
                return new PatternConverter(AddRule, pattern.GetString()!, path).Convert(ruleName);
            }
            if (type is null or "string" && schema.TryGetProperty("format", out var formatValue))
            {
                OnlyWith(keys, path, "type", "format");
                var format = formatValue.ValueKind == JsonValueKind.String ? formatValue.GetString()! : "";
                if (UuidFormat().IsMatch(format))
                    return AddPrimitive(ruleName == "root" ? "root" : format, Primitives["uuid"]);
                if (Formats.TryGetValue(format + "-string", out var formatRule))
                    return AddRule(ruleName, AddPrimitive(format + "-string", formatRule));
                throw Refuse("format", path, $"format \"{format}\" is not supported (supported: date, time, date-time, uuid).");
            }
            if (type is null or "string" && (Has(schema, "minLength") || Has(schema, "maxLength")))
            {
                OnlyWith(keys, path, "type", "minLength", "maxLength");
                var (min, max) = Bounds(schema, "minLength", "maxLength", path);
                var charRule = AddPrimitive("char", Primitives["char"]);
                return AddRule(ruleName, "\"\\\"\" " + Repetition(charRule, min, max) + " \"\\\"\" space");
            }
            if (type is "integer" or "number" && (Has(schema, "minimum") || Has(schema, "maximum") || Has(schema, "exclusiveMinimum") || Has(schema, "exclusiveMaximum")))
            {
                var bound = keys.First(k => k is "minimum" or "maximum" or "exclusiveMinimum" or "exclusiveMaximum");
                if (type == "number")
                    throw Refuse(bound, path, "bounds on \"type\": \"number\" cannot be expressed by the grammar; use \"type\": \"integer\" or drop the bound.");
                OnlyWith(keys, path, "type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum");
                return AddRule(ruleName, "(" + IntegerRange(schema, path) + ") space");
            }
            if (type is null or "object" && Has(schema, "additionalProperties"))
            {
                OnlyWith(keys, path, "type", "additionalProperties");
                return AddRule(ruleName, AddPrimitive("object", Primitives["object"]));
            }
            // Anything left over applies to a type the schema does not have, or has no meaning alone.
            foreach (var k in keys)
            {
                if (k != "type")
                    throw Refuse(k, path, type is null ? "has no effect without a \"type\" it applies to." : $"does not apply to \"type\": \"{type}\".");
            }
            if (type is null)
                return schema.EnumerateObject().Any()
                    ? AddRule(ruleName, AddPrimitive("value", Primitives["value"]))
                    : AddRule(ruleName, AddPrimitive("object", Primitives["object"]));
            if (type == "object") return AddRule(ruleName, AddPrimitive("object", Primitives["object"]));
            return AddPrimitive(ruleName == "root" ? "root" : type, Primitives[type]);
        }

        private static bool Has(JsonElement schema, string key) => schema.TryGetProperty(key, out _);

        /// <summary>Refuses the first keyword in <paramref name="keys"/> that the chosen reading of the schema would not honour.</summary>
        private static void OnlyWith(List<string> keys, string path, string main, params string[] allowed)
        {
            foreach (var k in keys)
            {
                if (k != main && !allowed.Contains(k))
                    throw Refuse(k, path, $"cannot be combined with \"{main}\" here: the grammar would not honour it.");
            }
        }

        private static List<string>? ReadTypes(JsonElement schema, string path)
        {
            if (!schema.TryGetProperty("type", out var t)) return null;
            List<string> types = [];
            if (t.ValueKind == JsonValueKind.String) types.Add(t.GetString()!);
            else if (t.ValueKind == JsonValueKind.Array && t.GetArrayLength() > 0 && t.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String))
                types.AddRange(t.EnumerateArray().Select(e => e.GetString()!));
            else throw Refuse("type", path, "must be a type name or a non-empty array of type names.");
            foreach (var name in types)
            {
                if (!TypeKeywords.ContainsKey(name))
                    throw Refuse("type", path, $"unknown type \"{name}\" (string, number, integer, boolean, null, object, array).");
            }
            if (types.Distinct(StringComparer.Ordinal).Count() != types.Count) throw Refuse("type", path, "lists a type twice.");
            return types;
        }

        private static void CheckType(JsonElement value, List<string>? types, string keyword, string path)
        {
            if (types is null) return;
            var ok = value.ValueKind switch
            {
                JsonValueKind.String => types.Contains("string"),
                JsonValueKind.Number => types.Contains("number") || (types.Contains("integer") && value.TryGetDecimal(out var d) && d == decimal.Truncate(d)),
                JsonValueKind.True or JsonValueKind.False => types.Contains("boolean"),
                JsonValueKind.Null => types.Contains("null"),
                JsonValueKind.Object => types.Contains("object"),
                JsonValueKind.Array => types.Contains("array"),
                _ => false,
            };
            if (!ok) throw Refuse(keyword, path, $"the value {Shorten(value.GetRawText())} is not of \"type\" {string.Join(" or ", types)}.");
        }

        private static string Shorten(string s) => s.Length <= 40 ? s : s[..40] + "…";

        /// <summary>The schema with "type" set to one type and only the keywords that apply to it.</summary>
        private static JsonDocument WithType(JsonElement schema, string type)
        {
            using var stream = new MemoryStream();
            using (var w = new Utf8JsonWriter(stream))
            {
                w.WriteStartObject();
                w.WriteString("type", type);
                foreach (var p in schema.EnumerateObject())
                {
                    if (p.Name == "type" || !(IsAnnotation(p.Name) || TypeKeywords[type].Contains(p.Name))) continue;
                    p.WriteTo(w);
                }
                w.WriteEndObject();
            }
            return JsonDocument.Parse(stream.ToArray());
        }

        private string Union(string name, List<JsonElement> alternatives, Func<int, string> pathOf)
        {
            var rules = new List<string>(alternatives.Count);
            for (var i = 0; i < alternatives.Count; i++)
                rules.Add(Visit(alternatives[i], name + (name.Length == 0 ? "alternative-" : "-") + i.ToString(CultureInfo.InvariantCulture), pathOf(i)));
            return string.Join(" | ", rules);
        }

        private string ResolveRef(string reference, string path)
        {
            if (!reference.StartsWith('#'))
                throw Refuse("$ref", path, $"only local references (\"#/$defs/name\") are supported, got \"{Shorten(reference)}\".");
            var fragment = Uri.UnescapeDataString(reference[1..]);
            var refName = "ref" + InvalidRuleChars().Replace(fragment, "-");
            if (_rules.ContainsKey(refName) || _resolving.Contains(reference)) return refName;

            var target = root;
            if (fragment.Length > 0)
            {
                if (!fragment.StartsWith('/')) throw Refuse("$ref", path, $"\"{Shorten(reference)}\" is not a JSON pointer (\"#/...\").");
                foreach (var raw in fragment[1..].Split('/'))
                {
                    var token = raw.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
                    if (target.ValueKind == JsonValueKind.Object && target.TryGetProperty(token, out var child)) target = child;
                    else if (target.ValueKind == JsonValueKind.Array && int.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out var index) && index < target.GetArrayLength())
                        target = target[index];
                    else throw Refuse("$ref", path, $"\"{Shorten(reference)}\" points to nothing in this schema.");
                }
            }
            _resolving.Add(reference);
            refName = Visit(target, refName, fragment);
            _resolving.Remove(reference);
            return refName;
        }

        private string ObjectRule(JsonElement schema, string name, string path)
        {
            var properties = new List<(string Name, JsonElement Schema)>();
            if (schema.TryGetProperty("properties", out var props))
            {
                if (props.ValueKind != JsonValueKind.Object) throw Refuse("properties", path, "must be an object of schemas.");
                properties.AddRange(props.EnumerateObject().Select(p => (p.Name, p.Value)));
            }
            var required = new HashSet<string>(StringComparer.Ordinal);
            if (schema.TryGetProperty("required", out var req))
            {
                if (req.ValueKind != JsonValueKind.Array || req.EnumerateArray().Any(r => r.ValueKind != JsonValueKind.String))
                    throw Refuse("required", path, "must be an array of property names.");
                foreach (var r in req.EnumerateArray())
                {
                    var n = r.GetString()!;
                    if (!properties.Any(p => p.Name == n))
                        throw Refuse("required", path, $"names \"{Shorten(n)}\", which is not in \"properties\": the grammar could not generate it.");
                    required.Add(n);
                }
            }

            var requiredProps = new List<string>();
            var optionalProps = new List<string>();
            var kvRules = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (propName, propSchema) in properties)
            {
                var child = Join(name, propName.Length == 0 ? "empty-name" : propName);
                var propRule = Visit(propSchema, child, $"{path}/properties/{propName}");
                kvRules[propName] = AddRule(child + "-kv", FormatLiteral(JsonString(propName)) + " space \":\" space " + propRule);
                (required.Contains(propName) ? requiredProps : optionalProps).Add(propName);
            }

            if (schema.TryGetProperty("additionalProperties", out var additional) && additional.ValueKind is JsonValueKind.True or JsonValueKind.Object)
            {
                var subName = Join(name, "additional");
                var valueRule = additional.ValueKind == JsonValueKind.Object
                    ? Visit(additional, subName + "-value", path + "/additionalProperties")
                    : AddPrimitive("value", Primitives["value"]);
                var keyRule = properties.Count == 0
                    ? AddPrimitive("string", Primitives["string"])
                    : AddRule(subName + "-k", NotStrings(properties.Select(p => p.Name).ToList(), path));
                kvRules[AdditionalKey] = AddRule(subName + "-kv", keyRule + " \":\" space " + valueRule);
                optionalProps.Add(AdditionalKey);
            }
            else if (additional.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.False))
            {
                throw Refuse("additionalProperties", path, "must be a boolean or a schema.");
            }

            var rule = new StringBuilder("\"{\" space ");
            rule.AppendJoin(" \",\" space ", requiredProps.Select(p => kvRules[p]));
            if (optionalProps.Count > 0)
            {
                rule.Append(" (");
                if (requiredProps.Count > 0) rule.Append(" \",\" space ( ");
                rule.AppendJoin(" | ", Enumerable.Range(0, optionalProps.Count).Select(i => Rest(optionalProps.Skip(i).ToList(), false)));
                if (requiredProps.Count > 0) rule.Append(" )");
                rule.Append(" )?");
            }
            rule.Append(" \"}\" space");
            return rule.ToString();

            // The optional properties from ks[0] on, each at most once and in order; the additional ones any number of times, last.
            string Rest(List<string> ks, bool firstIsOptional)
            {
                var k = ks[0];
                var kv = kvRules[k];
                var many = k == AdditionalKey;
                var comma = "( \",\" space " + kv + " )";
                var res = firstIsOptional ? comma + (many ? "*" : "?") : kv + (many ? " " + comma + "*" : "");
                if (ks.Count > 1) res += " " + AddRule(Join(name, k) + "-rest", Rest(ks.Skip(1).ToList(), true));
                return res;
            }
        }

        /// <summary>A JSON string that is none of <paramref name="strings"/> (the keys an additional property may not take).</summary>
        private string NotStrings(List<string> strings, string path)
        {
            var trie = new Trie();
            foreach (var s in strings)
            {
                if (s.Any(c => c is '"' or '\\' || char.IsControl(c) || char.IsSurrogate(c)))
                    throw Refuse("additionalProperties", path, "cannot be combined with property names holding quotes, backslashes, control characters or characters beyond U+FFFF.");
                trie.Insert(s);
            }
            var charRule = AddPrimitive("char", Primitives["char"]);
            var sb = new StringBuilder("[\"] ( ");
            Walk(trie);
            sb.Append(" )");
            if (!trie.IsEnd) sb.Append('?');
            sb.Append(" [\"] space");
            return sb.ToString();

            void Walk(Trie node)
            {
                var first = true;
                var rejects = new StringBuilder();
                foreach (var (c, child) in node.Children)
                {
                    rejects.Append(ClassChar(c));
                    if (!first) sb.Append(" | ");
                    first = false;
                    sb.Append('[').Append(ClassChar(c)).Append(']');
                    if (child.Children.Count > 0)
                    {
                        sb.Append(" (");
                        Walk(child);
                        sb.Append(')');
                    }
                    else if (child.IsEnd)
                    {
                        sb.Append(' ').Append(charRule).Append('+');
                    }
                }
                if (node.Children.Count > 0)
                {
                    if (!first) sb.Append(" | ");
                    sb.Append("[^\"").Append(rejects).Append("] ").Append(charRule).Append('*');
                }
            }
        }

        private sealed class Trie
        {
            public SortedDictionary<char, Trie> Children { get; } = [];
            public bool IsEnd { get; private set; }

            public void Insert(string s)
            {
                var node = this;
                foreach (var c in s)
                {
                    if (!node.Children.TryGetValue(c, out var next)) node.Children[c] = next = new Trie();
                    node = next;
                }
                node.IsEnd = true;
            }
        }

        private string ArrayRule(JsonElement schema, string name, string path)
        {
            var hasPrefix = schema.TryGetProperty("prefixItems", out var prefix);
            var hasItems = schema.TryGetProperty("items", out var items);
            if (hasPrefix && hasItems)
                throw Refuse("prefixItems", path, "cannot be combined with \"items\" (items after a tuple) by the grammar converter.");
            var tuple = hasPrefix ? prefix : items;
            if (hasPrefix && prefix.ValueKind != JsonValueKind.Array) throw Refuse("prefixItems", path, "must be an array of schemas.");
            if (tuple.ValueKind == JsonValueKind.Array)
            {
                foreach (var k in new[] { "minItems", "maxItems" })
                {
                    if (Has(schema, k)) throw Refuse(k, path, "cannot be combined with a tuple (\"prefixItems\"): the tuple fixes the length.");
                }
                var keyword = hasPrefix ? "prefixItems" : "items";
                var parts = tuple.EnumerateArray()
                    .Select((s, i) => Visit(s, Join(name, "tuple-" + i.ToString(CultureInfo.InvariantCulture)), $"{path}/{keyword}/{i}"));
                return "\"[\" space " + string.Join(" \",\" space ", parts) + " \"]\" space";
            }
            if (items.ValueKind == JsonValueKind.False)
            {
                foreach (var k in new[] { "minItems", "maxItems" })
                {
                    if (Has(schema, k)) throw Refuse(k, path, "cannot be combined with \"items\": false.");
                }
                return "\"[\" space \"]\" space";
            }
            var itemRule = Visit(items, Join(name, "item"), path + "/items");
            var (min, max) = Bounds(schema, "minItems", "maxItems", path);
            return "\"[\" space " + Repetition(itemRule, min, max, "\",\" space") + " \"]\" space";
        }

        private static (int Min, int Max) Bounds(JsonElement schema, string minKey, string maxKey, string path)
        {
            var min = ReadCount(schema, minKey, path) ?? 0;
            var max = ReadCount(schema, maxKey, path) ?? int.MaxValue;
            if (min > max) throw Refuse(minKey, path, $"{min} is greater than \"{maxKey}\" {max}: no value can satisfy both.");
            if (min > MaxRepetition) throw Refuse(minKey, path, $"at most {MaxRepetition} can be expressed by a grammar, got {min}.");
            return (min, max == int.MaxValue ? max : Math.Min(max, MaxRepetition));
        }

        private static int? ReadCount(JsonElement schema, string key, string path)
        {
            if (!schema.TryGetProperty(key, out var v)) return null;
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetDecimal(out var d) || d < 0 || d != decimal.Truncate(d))
                throw Refuse(key, path, "must be a non-negative integer.");
            return d > int.MaxValue - 1 ? int.MaxValue - 1 : (int)d;
        }

        private static string IntegerRange(JsonElement schema, string path)
        {
            const long limit = 999_999_999_999_999; // 15 digits: the grammar's integers have at most 16
            long? Read(string key)
            {
                if (!schema.TryGetProperty(key, out var v)) return null;
                if (v.ValueKind != JsonValueKind.Number || !v.TryGetDecimal(out var d) || d != decimal.Truncate(d))
                    throw Refuse(key, path, "must be an integer for \"type\": \"integer\" (a fractional or boolean bound is not supported).");
                if (Math.Abs(d) > limit) throw Refuse(key, path, $"must be within ±{limit}.");
                return (long)d;
            }
            var minimum = Read("minimum");
            var exclusiveMin = Read("exclusiveMinimum") + 1;
            var maximum = Read("maximum");
            var exclusiveMax = Read("exclusiveMaximum") - 1;
            long? min = minimum is { } a && exclusiveMin is { } b ? Math.Max(a, b) : minimum ?? exclusiveMin;
            long? max = maximum is { } c && exclusiveMax is { } e ? Math.Min(c, e) : maximum ?? exclusiveMax;
            if (min > max) throw Refuse(Has(schema, "minimum") ? "minimum" : "exclusiveMinimum", path, "no integer lies within the bounds.");
            var sb = new StringBuilder();
            MinMaxInt(min ?? long.MinValue, max ?? long.MaxValue, sb);
            return sb.ToString();
        }
    }

    private static string Repetition(string item, int min, int max, string separator = "")
    {
        var hasMax = max != int.MaxValue;
        if (max == 0) return "";
        if (min == 0 && max == 1) return item + "?";
        if (separator.Length == 0)
        {
            if (min == 1 && !hasMax) return item + "+";
            if (min == 0 && !hasMax) return item + "*";
            return item + "{" + min.ToString(CultureInfo.InvariantCulture) + "," + (hasMax ? max.ToString(CultureInfo.InvariantCulture) : "") + "}";
        }
        var result = item + " " + Repetition("(" + separator + " " + item + ")", min == 0 ? 0 : min - 1, hasMax ? max - 1 : max);
        return min == 0 ? "(" + result + ")?" : result;
    }

    /// <summary>Integers within [min, max] (long.MinValue / long.MaxValue: unbounded), as llama.cpp's build_min_max_int writes them.</summary>
    private static void MinMaxInt(long min, long max, StringBuilder o, int decimalsLeft = 16, bool topLevel = true)
    {
        var hasMin = min != long.MinValue;
        var hasMax = max != long.MaxValue;
        string S(long v) => v.ToString(CultureInfo.InvariantCulture);
        void Digits(char from, char to) => o.Append('[').Append(from == to ? $"{from}" : $"{from}-{to}").Append(']');
        void MoreDigits(int minDigits, int maxDigits)
        {
            o.Append("[0-9]");
            if (minDigits == maxDigits && minDigits == 1) return;
            o.Append('{').Append(minDigits);
            if (maxDigits != minDigits)
            {
                o.Append(',');
                if (maxDigits != int.MaxValue) o.Append(maxDigits);
            }
            o.Append('}');
        }
        void Uniform(string from, string to)
        {
            var i = 0;
            while (i < from.Length && i < to.Length && from[i] == to[i]) i++;
            if (i > 0) o.Append('"').Append(from[..i]).Append('"');
            if (i >= from.Length || i >= to.Length) return;
            if (i > 0) o.Append(' ');
            var subLen = from.Length - i - 1;
            if (subLen <= 0)
            {
                o.Append('[').Append(from[i]).Append('-').Append(to[i]).Append(']');
                return;
            }
            var fromSub = from[(i + 1)..];
            var toSub = to[(i + 1)..];
            var zeros = new string('0', subLen);
            var nines = new string('9', subLen);
            var toReached = false;
            o.Append('(');
            if (fromSub == zeros)
            {
                Digits(from[i], (char)(to[i] - 1));
                o.Append(' ');
                MoreDigits(subLen, subLen);
            }
            else
            {
                o.Append('[').Append(from[i]).Append("] (");
                Uniform(fromSub, nines);
                o.Append(')');
                if (from[i] < to[i] - 1)
                {
                    o.Append(" | ");
                    if (toSub == nines)
                    {
                        Digits((char)(from[i] + 1), to[i]);
                        toReached = true;
                    }
                    else
                    {
                        Digits((char)(from[i] + 1), (char)(to[i] - 1));
                    }
                    o.Append(' ');
                    MoreDigits(subLen, subLen);
                }
            }
            if (!toReached)
            {
                o.Append(" | ");
                Digits(to[i], to[i]);
                o.Append(' ');
                Uniform(zeros, toSub);
            }
            o.Append(')');
        }

        if (hasMin && hasMax)
        {
            if (min < 0 && max < 0)
            {
                o.Append("\"-\" (");
                MinMaxInt(-max, -min, o, decimalsLeft, true);
                o.Append(')');
                return;
            }
            if (min < 0)
            {
                o.Append("\"-\" (");
                MinMaxInt(0, -min, o, decimalsLeft, true);
                o.Append(") | ");
                min = 0;
            }
            var minS = S(min);
            var maxS = S(max);
            for (var digits = minS.Length; digits < maxS.Length; digits++)
            {
                Uniform(minS, new string('9', digits));
                minS = "1" + new string('0', digits);
                o.Append(" | ");
            }
            Uniform(minS, maxS);
            return;
        }

        var lessDecimals = Math.Max(decimalsLeft - 1, 1);
        if (hasMin)
        {
            if (min < 0)
            {
                o.Append("\"-\" (");
                MinMaxInt(long.MinValue, -min, o, decimalsLeft, false);
                o.Append(") | [0] | [1-9] ");
                MoreDigits(0, decimalsLeft - 1);
            }
            else if (min == 0)
            {
                if (topLevel)
                {
                    o.Append("[0] | [1-9] ");
                    MoreDigits(0, lessDecimals);
                }
                else
                {
                    MoreDigits(1, decimalsLeft);
                }
            }
            else if (min <= 9)
            {
                var c = (char)('0' + min);
                var rangeStart = topLevel ? '1' : '0';
                if (c > rangeStart)
                {
                    Digits(rangeStart, (char)(c - 1));
                    o.Append(' ');
                    MoreDigits(1, lessDecimals);
                    o.Append(" | ");
                }
                Digits(c, '9');
                o.Append(' ');
                MoreDigits(0, lessDecimals);
            }
            else
            {
                var minS = S(min);
                var len = minS.Length;
                var c = minS[0];
                if (c > '1')
                {
                    Digits(topLevel ? '1' : '0', (char)(c - 1));
                    o.Append(' ');
                    MoreDigits(len, lessDecimals);
                    o.Append(" | ");
                }
                Digits(c, c);
                o.Append(" (");
                MinMaxInt(long.Parse(minS[1..], CultureInfo.InvariantCulture), long.MaxValue, o, lessDecimals, false);
                o.Append(')');
                if (c < '9')
                {
                    o.Append(" | ");
                    Digits((char)(c + 1), '9');
                    o.Append(' ');
                    MoreDigits(len - 1, lessDecimals);
                }
            }
            return;
        }

        if (hasMax)
        {
            if (max >= 0)
            {
                if (topLevel)
                {
                    o.Append("\"-\" [1-9] ");
                    MoreDigits(0, lessDecimals);
                    o.Append(" | ");
                }
                MinMaxInt(0, max, o, decimalsLeft, true);
            }
            else
            {
                o.Append("\"-\" (");
                MinMaxInt(-max, long.MaxValue, o, decimalsLeft, false);
                o.Append(')');
            }
            return;
        }
        throw new ArgumentException("At least one of min and max must be set.");
    }

    /// <summary>A GBNF literal matching exactly <paramref name="text"/>.</summary>
    internal static string FormatLiteral(string text)
    {
        var sb = new StringBuilder(text.Length + 2).Append('"');
        foreach (var c in text)
        {
            sb.Append(c switch
            {
                '\r' => "\\r",
                '\n' => "\\n",
                '"' => "\\\"",
                '\\' => "\\\\",
                _ => c.ToString(),
            });
        }
        return sb.Append('"').ToString();
    }

    /// <summary>A character inside a GBNF character class: alphanumerics and harmless punctuation as they are, the rest escaped.</summary>
    internal static string ClassChar(int codePoint) => codePoint switch
    {
        >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' => ((char)codePoint).ToString(),
        '"' or ' ' or '_' or ',' or '.' or ':' or ';' or '!' or '#' or '%' or '&' or '\'' or '@' or '=' or '<' or '>' or '~' or '`' or '/' or '+' or '*' or '?' or '(' or ')' or '{' or '}' or '|' or '$'
            => ((char)codePoint).ToString(),
        < 0x100 => "\\x" + codePoint.ToString("X2", CultureInfo.InvariantCulture),
        < 0x10000 => "\\u" + codePoint.ToString("X4", CultureInfo.InvariantCulture),
        _ => "\\U" + codePoint.ToString("X8", CultureInfo.InvariantCulture),
    };

    /// <summary>A JSON value as compact text, strings escaped the way llama.cpp writes them (non-ASCII left as is).</summary>
    internal static string JsonText(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => JsonString(value.GetString()!),
        JsonValueKind.Object => "{" + string.Join(",", value.EnumerateObject().Select(p => JsonString(p.Name) + ":" + JsonText(p.Value))) + "}",
        JsonValueKind.Array => "[" + string.Join(",", value.EnumerateArray().Select(JsonText)) + "]",
        _ => value.GetRawText(),
    };

    internal static string JsonString(string s)
    {
        var sb = new StringBuilder(s.Length + 2).Append('"');
        foreach (var c in s) sb.Append(JsonEscape(c));
        return sb.Append('"').ToString();
    }

    /// <summary>How <paramref name="c"/> is written inside a JSON string.</summary>
    internal static string JsonEscape(char c) => c switch
    {
        '"' => "\\\"",
        '\\' => "\\\\",
        '\b' => "\\b",
        '\f' => "\\f",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        < ' ' => "\\u" + ((int)c).ToString("x4", CultureInfo.InvariantCulture),
        _ => c.ToString(),
    };
}
