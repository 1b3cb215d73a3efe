using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Reflection;

namespace QueueWorker.Contracts;

/// <summary>
/// A <see cref="RangeAttribute"/> whose message names the configuration key and the bad value
/// (e.g. <c>Inference:Slots = 0 is out of range: must be from 1 to 64.</c>), so a misconfigured
/// worker stops with a line an operator can act on.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class ConfigRangeAttribute(int minimum, int maximum) : RangeAttribute(minimum, maximum)
{
    protected override ValidationResult? IsValid(object? value, ValidationContext validationContext)
    {
        if (IsValid(value)) return ValidationResult.Success;
        var section = validationContext.ObjectType.GetField("Section", BindingFlags.Public | BindingFlags.Static)?.GetValue(null) as string;
        var key = section is null ? validationContext.MemberName : $"{section}:{validationContext.MemberName}";
        var shown = Convert.ToString(value, CultureInfo.InvariantCulture);
        return new ValidationResult(
            $"{key} = {shown} is out of range: must be from {Minimum} to {Maximum}.",
            validationContext.MemberName is null ? null : [validationContext.MemberName]);
    }
}
