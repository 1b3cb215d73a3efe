using System.Globalization;
using System.Text;

namespace QueueWorker.Inference.Grammar;

public static partial class JsonSchemaToGbnf
{
    /// <summary>
    /// A string <c>pattern</c> (anchored with <c>^…$</c>) as a grammar of the JSON string's text. The pattern matches the
    /// decoded string, the grammar generates its JSON encoding: a quote or backslash is generated escaped, and the
    /// characters a JSON string must escape (quote, backslash, control characters) are left out of <c>.</c>, negated
    /// classes and <c>\D \W \S</c>, so the output stays valid JSON (a subset of what the pattern allows).
    /// Supported: literals, <c>.</c>, classes with ranges, <c>\d \w \s \D \W \S</c>, groups and <c>(?:…)</c>,
    /// alternation, <c>* + ? {m} {m,} {m,n}</c> (lazy forms too). Refused: lookarounds, backreferences, word
    /// boundaries, anchors inside the pattern, Unicode property escapes.
    /// </summary>
    private sealed class PatternConverter(Func<string, string, string> addRule, string pattern, string path)
    {
        private const string Keyword = "pattern";
        private const string JsonUnsafe = "\"\\\\\\x7F\\x00-\\x1F";
        private const string Dot = "[^" + JsonUnsafe + "]";
        private string _p = "";
        private int _i;

        private sealed record Atom(string? Gbnf, string? Literal);

        public string Convert(string ruleName)
        {
            if (pattern.Length < 2 || pattern[0] != '^' || pattern[^1] != '$' || TrailingBackslashes(pattern, pattern.Length - 1) % 2 == 1)
                throw Refuse(Keyword, path, "must be anchored: start with '^' and end with '$' (an unanchored pattern matches any text around it, which the grammar cannot generate).");
            _p = pattern[1..^1];
            _i = 0;
            var body = Alternation();
            if (_i < _p.Length) throw Fail("has an unbalanced ')'.");
            return addRule(ruleName, "\"\\\"\" (" + body + ") \"\\\"\" space");
        }

        private static int TrailingBackslashes(string s, int end)
        {
            var n = 0;
            while (end - n - 1 >= 0 && s[end - n - 1] == '\\') n++;
            return n;
        }

        private SchemaNotSupportedException Fail(string why) => Refuse(Keyword, path, $"\"{(pattern.Length > 60 ? pattern[..60] + "…" : pattern)}\" {why}");

        private bool More => _i < _p.Length;

        private string Alternation()
        {
            var alternatives = new List<string> { Sequence() };
            while (More && _p[_i] == '|')
            {
                _i++;
                alternatives.Add(Sequence());
            }
            return string.Join(" | ", alternatives);
        }

        private string Sequence()
        {
            var parts = new List<(string Text, bool IsLiteral)>();
            while (More && _p[_i] is not ('|' or ')'))
            {
                var atom = ParseAtom();
                if (Quantifier() is { } q)
                {
                    var item = atom.Literal is { } lit ? FormatLiteral(lit) : atom.Gbnf!;
                    var repeated = Repetition(item, q.Min, q.Max);
                    if (repeated.Length > 0) parts.Add((repeated, false));
                }
                else
                {
                    parts.Add(atom.Literal is { } lit ? (lit, true) : (atom.Gbnf!, false));
                }
            }
            // Consecutive literal characters become one literal.
            var rendered = new List<string>();
            var literal = new StringBuilder();
            foreach (var (text, isLiteral) in parts)
            {
                if (isLiteral)
                {
                    literal.Append(text);
                    continue;
                }
                if (literal.Length > 0) rendered.Add(FormatLiteral(literal.ToString()));
                literal.Clear();
                rendered.Add(text);
            }
            if (literal.Length > 0) rendered.Add(FormatLiteral(literal.ToString()));
            return string.Join(" ", rendered);
        }

        private (int Min, int Max)? Quantifier()
        {
            if (!More) return null;
            (int Min, int Max)? q = _p[_i] switch
            {
                '*' => (0, int.MaxValue),
                '+' => (1, int.MaxValue),
                '?' => (0, 1),
                _ => null,
            };
            if (q is not null) _i++;
            else if (_p[_i] == '{') q = Braces();
            if (q is null) return null;
            if (More && _p[_i] == '?') _i++; // lazy: the same strings
            else if (More && _p[_i] == '+') throw Fail("uses a possessive quantifier, which is not supported.");
            if (More && (_p[_i] is '*' or '+' or '?' || (_p[_i] == '{' && Peek() is not null)))
                throw Fail("repeats a quantifier (nothing to repeat).");
            var (min, max) = q.Value;
            if (min > max) throw Fail($"has a repetition {{{min},{max}}} whose minimum exceeds its maximum.");
            if (min > MaxRepetition) throw Fail($"repeats at least {min} times; a grammar can express at most {MaxRepetition}.");
            return (min, max == int.MaxValue ? max : Math.Min(max, MaxRepetition));
        }

        /// <summary>A <c>{m}</c>, <c>{m,}</c> or <c>{m,n}</c> at the cursor, consumed; null (nothing consumed) when the brace is a literal.</summary>
        private (int Min, int Max)? Braces()
        {
            var q = Peek();
            if (q is { } found) _i = found.End;
            return q is { } r ? (r.Min, r.Max) : null;
        }

        private (int Min, int Max, int End)? Peek()
        {
            var close = _p.IndexOf('}', _i);
            if (close < 0) return null;
            var inner = _p[(_i + 1)..close];
            var comma = inner.IndexOf(',', StringComparison.Ordinal);
            var minText = comma < 0 ? inner : inner[..comma];
            var maxText = comma < 0 ? inner : inner[(comma + 1)..];
            if (!int.TryParse(minText, NumberStyles.None, CultureInfo.InvariantCulture, out var min)) return null;
            var max = int.MaxValue;
            if (maxText.Length > 0 && !int.TryParse(maxText, NumberStyles.None, CultureInfo.InvariantCulture, out max)) return null;
            return (min, max, close + 1);
        }

        private Atom ParseAtom()
        {
            var c = _p[_i];
            switch (c)
            {
                case '(':
                    _i++;
                    if (More && _p[_i] == '?')
                    {
                        if (_i + 1 < _p.Length && _p[_i + 1] == ':') _i += 2;
                        else throw Fail("uses a lookaround or a named group, which a grammar cannot express.");
                    }
                    var inner = Alternation();
                    if (!More || _p[_i] != ')') throw Fail("has an unbalanced '('.");
                    _i++;
                    return new Atom("(" + inner + ")", null);
                case '[':
                    return new Atom(Class(), null);
                case '.':
                    _i++;
                    return new Atom(addRule("dot", Dot), null);
                case '\\':
                    return Escape();
                case '^' or '$':
                    throw Fail("uses '^' or '$' inside the pattern; only a leading '^' and a trailing '$' are supported.");
                case '*' or '+' or '?':
                    throw Fail($"has '{c}' with nothing to repeat.");
                case '{' when Peek() is not null:
                    throw Fail("has a '{m,n}' with nothing to repeat.");
                default:
                    return Literal(NextCodePoint());
            }
        }

        private int NextCodePoint()
        {
            if (char.IsHighSurrogate(_p[_i]) && _i + 1 < _p.Length && char.IsLowSurrogate(_p[_i + 1]))
            {
                var cp = char.ConvertToUtf32(_p[_i], _p[_i + 1]);
                _i += 2;
                return cp;
            }
            return _p[_i++];
        }

        private static Atom Literal(int codePoint) =>
            new(null, codePoint < 0x10000 ? JsonEscape((char)codePoint) : char.ConvertFromUtf32(codePoint));

        private static readonly (int, int)[] Digits = [('0', '9')];
        private static readonly (int, int)[] Word = [('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')];
        private static readonly (int, int)[] Space = [(0x09, 0x0D), (' ', ' ')];

        private Atom Escape()
        {
            _i++;
            if (!More) throw Fail("ends with a lone backslash.");
            var e = _p[_i];
            if (ClassEscape(e) is { } set)
            {
                _i++;
                // \s generates a space: the other whitespace characters are control characters, escaped in JSON.
                return e == 's' ? Literal(' ') : new Atom(Render(set, negated: false), null);
            }
            switch (e)
            {
                case 'D' or 'W' or 'S':
                    _i++;
                    return new Atom("[^" + RenderRanges(e == 'D' ? Digits : e == 'W' ? Word : Space) + JsonUnsafe + "]", null);
                default:
                    return Literal(CharEscape());
            }
        }

        private static (int, int)[]? ClassEscape(char e) => e switch
        {
            'd' => Digits,
            'w' => Word,
            's' => Space,
            _ => null,
        };

        /// <summary>An escape standing for one character, the cursor on the character after the backslash.</summary>
        private int CharEscape()
        {
            var e = _p[_i++];
            switch (e)
            {
                case 'n': return '\n';
                case 't': return '\t';
                case 'r': return '\r';
                case 'f': return '\f';
                case 'v': return '\v';
                case '0': return 0;
                case 'x': return Hex(2);
                case 'u': return Hex(4);
                case 'b' or 'B':
                    throw Fail("uses a word boundary (\\b, \\B), which a grammar cannot express.");
                case >= '1' and <= '9':
                    throw Fail("uses a backreference, which a grammar cannot express.");
                case >= 'a' and <= 'z' or >= 'A' and <= 'Z':
                    throw Fail($"uses the escape \\{e}, which is not supported.");
                default:
                    _i--;
                    return NextCodePoint();
            }
        }

        private int Hex(int digits)
        {
            if (_i + digits > _p.Length || !int.TryParse(_p.AsSpan(_i, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value))
                throw Fail($"has an escape that needs {digits} hex digits.");
            _i += digits;
            return value;
        }

        private string Class()
        {
            _i++;
            var negated = More && _p[_i] == '^';
            if (negated) _i++;
            var ranges = new List<(int Lo, int Hi)>();
            while (More && _p[_i] != ']')
            {
                if (_p[_i] == '\\' && _i + 1 < _p.Length && ClassEscape(_p[_i + 1]) is { } set)
                {
                    _i += 2;
                    ranges.AddRange(set);
                    continue;
                }
                var lo = ClassChar();
                if (_i + 1 < _p.Length && _p[_i] == '-' && _p[_i + 1] != ']')
                {
                    _i++;
                    var hi = ClassChar();
                    if (hi < lo) throw Fail("has a class range out of order.");
                    ranges.Add((lo, hi));
                }
                else
                {
                    ranges.Add((lo, lo));
                }
            }
            if (!More) throw Fail("has an unbalanced '['.");
            _i++;
            if (ranges.Count == 0) throw Fail("has an empty class '[]'.");
            return Render(ranges, negated);
        }

        private int ClassChar()
        {
            if (_p[_i] != '\\') return NextCodePoint();
            _i++;
            if (!More) throw Fail("ends with a lone backslash.");
            if (_p[_i] is 'D' or 'W' or 'S') throw Fail($"uses \\{_p[_i]} inside a class, which is not supported.");
            return _p[_i] == 'b' ? Backspace() : CharEscape();
        }

        private int Backspace()
        {
            _i++;
            return '\b';
        }

        private string Render(IReadOnlyList<(int Lo, int Hi)> ranges, bool negated)
        {
            if (negated) return "[^" + RenderRanges(ranges) + JsonUnsafe + "]";
            // A quote or a backslash is generated escaped; control characters are left out.
            var quote = ranges.Any(r => r.Lo <= '"' && '"' <= r.Hi);
            var backslash = ranges.Any(r => r.Lo <= '\\' && '\\' <= r.Hi);
            var safe = new List<(int, int)>();
            foreach (var r in ranges)
            {
                foreach (var piece in Subtract(r, [(0, 0x1F), ('"', '"'), ('\\', '\\')])) safe.Add(piece);
            }
            var alternatives = new List<string>();
            if (safe.Count > 0) alternatives.Add("[" + RenderRanges(safe) + "]");
            if (quote) alternatives.Add(FormatLiteral("\\\""));
            if (backslash) alternatives.Add(FormatLiteral("\\\\"));
            if (alternatives.Count == 0) throw Fail("has a class of control characters only, which a JSON string holds escaped; not supported.");
            return alternatives.Count == 1 ? alternatives[0] : "(" + string.Join(" | ", alternatives) + ")";
        }

        private static IEnumerable<(int, int)> Subtract((int Lo, int Hi) range, (int Lo, int Hi)[] holes)
        {
            var pieces = new List<(int Lo, int Hi)> { range };
            foreach (var h in holes)
            {
                pieces = pieces.SelectMany(p => p.Hi < h.Lo || p.Lo > h.Hi
                    ? [p]
                    : new[] { (p.Lo, h.Lo - 1), (h.Hi + 1, p.Hi) }.Where(x => x.Item1 <= x.Item2)).ToList();
            }
            return pieces.Select(p => (p.Lo, p.Hi));
        }

        private static string RenderRanges(IEnumerable<(int Lo, int Hi)> ranges) =>
            string.Concat(ranges.Select(r => r.Lo == r.Hi ? JsonSchemaToGbnf.ClassChar(r.Lo) : JsonSchemaToGbnf.ClassChar(r.Lo) + "-" + JsonSchemaToGbnf.ClassChar(r.Hi)));
    }
}
