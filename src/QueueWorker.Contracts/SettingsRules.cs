using System.ComponentModel.DataAnnotations;
using System.Globalization;

namespace QueueWorker.Contracts;

/// <summary>
/// Checks a settings object's data annotations and words each failure as an operator needs it:
/// the configuration key, the value given, and the rule — e.g.
/// <c>Inference:Slots = 0: must be between 1 and 64</c>. (The stock DataAnnotations validator names
/// only the property.) Shared by every options class; BCL only, so Contracts stays dependency-free.
/// </summary>
public static class SettingsRules
{
    public static IReadOnlyList<string> Check(object settings, string section)
    {
        var results = new List<ValidationResult>();
        Validator.TryValidateObject(settings, new ValidationContext(settings), results, validateAllProperties: true);
        return results.Select(r =>
        {
            var member = r.MemberNames.FirstOrDefault() ?? "";
            var value = settings.GetType().GetProperty(member)?.GetValue(settings);
            var rule = (r.ErrorMessage ?? "is invalid").Replace($"The field {member} ", "", StringComparison.Ordinal)
                                                          .Replace($"The {member} field ", "", StringComparison.Ordinal);
            return $"{section}:{member} = {Format(value)}: {rule.TrimEnd('.')}";
        }).ToList();
    }

    public static string Format(object? value) => value switch
    {
        null => "(empty)",
        string s when s.Length == 0 => "(empty)",
        string s => $"\"{s}\"",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
