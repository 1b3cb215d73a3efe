using System.Buffers;
using System.Text.Json;
using System.Text.Unicode;

namespace QueueWorker.Contracts;

/// <summary>
/// What a control message asks for: cancel these job ids and/or every job of this batch. Published on the control
/// fanout exchange (<c>RabbitMq:ControlExchange</c>, default <c>llm.control</c>) as
/// <c>{"cancel":{"job_ids":["a","b"]}}</c> or <c>{"cancel":{"batch_id":"b-1"}}</c> (both keys may be given).
/// </summary>
public sealed record CancelRequest(IReadOnlyList<string> JobIds, string? BatchId)
{
    /// <summary>Most job ids one control message may name (a batch is cancelled by its id, not by listing it).</summary>
    public const int MaxJobIds = 10_000;
}

/// <summary>Reads and writes control messages. Reading never throws: a bad message gets an error naming the rule.</summary>
public static class ControlMessage
{
    public static byte[] Cancel(CancelRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteStartObject("cancel");
            if (request.JobIds.Count > 0)
            {
                writer.WriteStartArray("job_ids");
                foreach (var id in request.JobIds) writer.WriteStringValue(id);
                writer.WriteEndArray();
            }
            if (request.BatchId is not null) writer.WriteString("batch_id", request.BatchId);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The cancel request, or null and why the message is not one.</summary>
    public static (CancelRequest? Request, string? Error) Parse(ReadOnlySpan<byte> body)
    {
        if (!Utf8.IsValid(body)) return (null, "The control message is not valid UTF-8.");
        try
        {
            using var doc = JsonDocument.Parse(body.ToArray(), new JsonDocumentOptions { MaxDepth = 8 });
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("cancel", out var cancel) || cancel.ValueKind != JsonValueKind.Object)
                return (null, "A control message is a JSON object with a \"cancel\" object.");
            List<string> ids = [];
            if (cancel.TryGetProperty("job_ids", out var jobIds) && jobIds.ValueKind != JsonValueKind.Null)
            {
                if (jobIds.ValueKind != JsonValueKind.Array) return (null, "\"cancel.job_ids\" must be an array of strings.");
                if (jobIds.GetArrayLength() > CancelRequest.MaxJobIds)
                    return (null, $"\"cancel.job_ids\" must hold at most {CancelRequest.MaxJobIds} ids, got {jobIds.GetArrayLength()}; cancel a batch by its batch_id.");
                foreach (var id in jobIds.EnumerateArray())
                {
                    if (id.ValueKind != JsonValueKind.String || id.GetString() is not { Length: > 0 } s)
                        return (null, "\"cancel.job_ids\" must hold non-empty strings.");
                    ids.Add(s);
                }
            }
            string? batch = null;
            if (cancel.TryGetProperty("batch_id", out var batchId) && batchId.ValueKind != JsonValueKind.Null)
            {
                if (batchId.ValueKind != JsonValueKind.String || batchId.GetString() is not { Length: > 0 } b)
                    return (null, "\"cancel.batch_id\" must be a non-empty string.");
                batch = b;
            }
            if (ids.Count == 0 && batch is null)
                return (null, "\"cancel\" must name \"job_ids\" (a non-empty array) or a \"batch_id\".");
            return (new CancelRequest(ids, batch), null);
        }
        catch (JsonException ex)
        {
            return (null, $"The control message is not valid JSON (line {ex.LineNumber + 1}, byte {ex.BytePositionInLine + 1}).");
        }
    }
}
