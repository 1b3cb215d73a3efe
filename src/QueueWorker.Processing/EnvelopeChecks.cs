using QueueWorker.Contracts;

namespace QueueWorker.Processing;

/// <summary>What the envelope says about the body, checked before the body is read.</summary>
internal static class EnvelopeChecks
{
    /// <summary>The first reason the body must not be parsed, or null.</summary>
    public static JobError? Check(JobInput input)
    {
        if (input.BodyLimit is { } limit && input.Body.Length > limit.MaxBytes)
            return new JobError(ErrorCodes.BodyTooLarge,
                $"The body is {input.Body.Length} bytes; the limit {limit.Setting} is {limit.MaxBytes}.", "body");
        if (!IsJsonContentType(input.ContentType))
            return new JobError(ErrorCodes.UnsupportedContentType,
                $"content_type must be application/json (or absent), got \"{input.ContentType}\".", "content_type");
        if (!string.IsNullOrEmpty(input.ContentEncoding) && !input.ContentEncoding.Equals("utf-8", StringComparison.OrdinalIgnoreCase)
            && !input.ContentEncoding.Equals("identity", StringComparison.OrdinalIgnoreCase))
            return new JobError(ErrorCodes.UnsupportedContentType,
                $"content_encoding must be absent, utf-8 or identity, got \"{input.ContentEncoding}\".", "content_encoding");
        return null;
    }

    /// <summary>Absent, <c>application/json</c>, <c>text/json</c> or any <c>application/*+json</c>, parameters ignored.</summary>
    public static bool IsJsonContentType(string? contentType)
    {
        if (string.IsNullOrWhiteSpace(contentType)) return true;
        var media = contentType.Split(';', 2)[0].Trim();
        return media.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            || media.Equals("text/json", StringComparison.OrdinalIgnoreCase)
            || (media.StartsWith("application/", StringComparison.OrdinalIgnoreCase) && media.EndsWith("+json", StringComparison.OrdinalIgnoreCase));
    }
}
