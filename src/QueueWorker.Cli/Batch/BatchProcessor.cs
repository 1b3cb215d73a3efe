using System.Threading.Channels;
using QueueWorker.Cli.Infrastructure;
using QueueWorker.Cli.Running;
using QueueWorker.Contracts;

namespace QueueWorker.Cli.Batch;

/// <summary>What <see cref="BatchProcessor"/> needs to know; the command fills it from flags and configuration.</summary>
/// <param name="BatchId">Every job's <c>batch_id</c>; null leaves the lines' own.</param>
/// <param name="Expiry">The end of the batch's completion window (<c>--completion-window</c>), set on every job; null: none.</param>
internal sealed record BatchOptions(string InputPath, string OutputPath, int MaxInFlight, JobLimits Limits, int MaxJobBytes, string? BatchId = null,
    JobExpiry? Expiry = null);

internal enum BatchOutcome
{
    /// <summary>Every input line has its output line.</summary>
    Finished,
    /// <summary>Stopped by cancellation; what was written is kept, and the next run resumes.</summary>
    Interrupted,
    /// <summary>A control message cancelled the batch (<c>qw cancel</c>): cancelled jobs are not written, so a new run resumes them.</summary>
    Cancelled,
}

/// <summary>
/// Streams a JSONL batch through an <see cref="IJobRunner"/>: the input is read line by line, at most
/// <see cref="BatchOptions.MaxInFlight"/> jobs run at once, and every result is appended and flushed
/// as one whole line the moment it arrives. Memory holds the in-flight jobs and a 16-byte key (~40 bytes in a set) per
/// custom_id (to catch duplicates and skip finished lines), never the file.
/// </summary>
internal sealed class BatchProcessor(IJobRunner runner, BatchOptions options, TimeProvider time)
{
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private FileStream? _output;
    private volatile bool _cancelledByControl;

    public BatchStats Stats { get; } = new(time);

    /// <summary>Set after the output file was checked: what the previous runs left.</summary>
    public ResumeState? Resume { get; private set; }

    /// <summary>Counts the input's non-blank lines: the progress total. A fast pass over the bytes, no JSON parsing.</summary>
    public static async Task<long> CountLinesAsync(string path, CancellationToken cancellationToken)
    {
        await using var stream = OpenInput(path);
        var buffer = new byte[256 * 1024];
        long lines = 0;
        var content = false;
        int read;
        while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            foreach (var b in buffer.AsSpan(0, read))
            {
                if (b == (byte)'\n')
                {
                    if (content) lines++;
                    content = false;
                }
                else if (b is not ((byte)' ' or (byte)'\t' or (byte)'\r')) content = true;
            }
        }
        return content ? lines + 1 : lines;
    }

    public async Task<BatchOutcome> RunAsync(CancellationToken cancellationToken)
    {
        if (!File.Exists(options.InputPath))
            throw new CliException($"input file {options.InputPath} does not exist.");
        Resume = await ResumeState.LoadAndRepairAsync(options.OutputPath, cancellationToken);
        Stats.AlreadyDone = Resume.Count;
        Stats.Total = await CountLinesAsync(options.InputPath, cancellationToken);

        try
        {
            _output = new FileStream(options.OutputPath, FileMode.Append, FileAccess.Write, FileShare.Read, 1, FileOptions.None);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"cannot write output file {options.OutputPath}: {ex.Message}", ExitCodes.Usage, ex);
        }
        await using var output = _output;
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var queue = Channel.CreateBounded<BatchRequest>(new BoundedChannelOptions(options.MaxInFlight) { SingleWriter = true });
        var workers = Enumerable.Range(0, options.MaxInFlight).Select(_ => WorkAsync(queue.Reader, failed)).ToArray();

        Exception? readFault = null;
        try
        {
            await ReadInputAsync(queue.Writer, failed.Token);
        }
        catch (Exception ex)
        {
            readFault = ex;
            // Stop the workers too: an interrupted run leaves the rest to the next one.
            await failed.CancelAsync();
        }
        queue.Writer.TryComplete();

        try
        {
            await Task.WhenAll(workers);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested || readFault is not null)
        {
            // Interrupted, or stopped because reading failed: handled below.
        }

        if (cancellationToken.IsCancellationRequested) return BatchOutcome.Interrupted;
        if (_cancelledByControl) return BatchOutcome.Cancelled;
        if (readFault is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(readFault);
        return BatchOutcome.Finished;
    }

    private async Task ReadInputAsync(ChannelWriter<BatchRequest> queue, CancellationToken cancellationToken)
    {
        var seen = new HashSet<UInt128>();
        await using var stream = OpenInput(options.InputPath);
        // A line holds a job body plus the OpenAI envelope around it.
        var reader = new Utf8LineReader(stream, options.MaxJobBytes + 64 * 1024);
        long lineNumber = 0;
        while (await reader.ReadLineAsync(cancellationToken) is { } raw)
        {
            lineNumber++;
            BatchLine line;
            if (raw.TooLong) line = BatchInputParser.TooLong(lineNumber, raw.Length, options.MaxJobBytes);
            else if (Utf8LineReader.IsBlank(raw.Bytes.Span)) continue;
            else line = BatchInputParser.Parse(raw.Bytes.Span, lineNumber, options.Limits, options.MaxJobBytes, options.BatchId);

            if (line.CustomId is { } customId && !seen.Add(IdKey.Of(customId)))
                line = BatchInputParser.Duplicate(lineNumber, customId);

            if (Resume!.IsDone(line.CustomId, lineNumber))
            {
                Stats.AddSkipped();
                continue;
            }

            switch (line)
            {
                case BatchLineError error:
                    await WriteAsync(OpenAiBatchMapper.FromError(error));
                    Stats.AddInvalidLine();
                    break;
                case BatchRequest request:
                    await queue.WriteAsync(request, cancellationToken);
                    break;
            }
        }
    }

    private async Task WorkAsync(ChannelReader<BatchRequest> queue, CancellationTokenSource failed)
    {
        try
        {
            await foreach (var request in queue.ReadAllAsync(failed.Token))
            {
                var started = time.GetTimestamp();
                var submission = options.Expiry is null ? request.Submission : request.Submission with { Expiry = options.Expiry };
                var result = await runner.RunAsync(submission, failed.Token);
                var latency = time.GetElapsedTime(started);
                if (result.Error?.Code == ErrorCodes.Cancelled)
                {
                    // Cancelled by a control message: not an answer to write (a resumed run must do it), and the rest of the
                    // batch is cancelled too, so stop.
                    _cancelledByControl = true;
                    await failed.CancelAsync();
                    return;
                }
                await WriteAsync(OpenAiBatchMapper.FromResult(request, result, time.GetUtcNow()));
                Stats.AddResult(result, latency);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // One fault (e.g. the output disk is full) stops the whole run, not just this worker.
            await failed.CancelAsync();
            throw;
        }
    }

    /// <summary>Appends one whole line and flushes it. Never cancelled half-way: the file stays valid JSONL.</summary>
    private async Task WriteAsync(BatchOutputLine line)
    {
        var bytes = OpenAiBatchMapper.ToJsonLine(line);
        await _writeLock.WaitAsync(CancellationToken.None);
        try
        {
            await _output!.WriteAsync(bytes, CancellationToken.None);
            await _output.FlushAsync(CancellationToken.None);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private static FileStream OpenInput(string path)
    {
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan | FileOptions.Asynchronous);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            throw new CliException($"cannot read input file {path}: {ex.Message}", ExitCodes.Usage, ex);
        }
    }
}
