// TODO(lead): replace with AddInference when engine merges — delete this whole file, nothing else.
// LocalJobRunner calls `builder.AddInference()`. On this branch QueueWorker.Inference has no
// AddInference yet, so this stub stands in and makes `qw ... --local` fail with a clear message.
// Once the engine branch is merged both methods are in scope and the call is ambiguous (CS0121):
// that compile error is deliberate, so the stub cannot silently shadow the real engine.
global using QueueWorker.Cli.Local.PendingEngine;

using Microsoft.Extensions.Hosting;
using QueueWorker.Cli.Infrastructure;

namespace QueueWorker.Cli.Local.PendingEngine;

internal static class PendingEngineStub
{
    public static IHostApplicationBuilder AddInference(this IHostApplicationBuilder builder) =>
        throw new CliException("--local needs the inference engine, which this build of qw does not include yet (QueueWorker.Inference's AddInference is not merged).");
}
