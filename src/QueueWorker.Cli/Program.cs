using System.Runtime.InteropServices;
using QueueWorker.Cli;
using QueueWorker.Cli.Infrastructure;

// `qw`: the producers' and batch users' tool. Each command lives in Commands/ and registers in CommandRegistry.
// Ctrl-C and SIGTERM cancel the running command, which stops cleanly (a batch resumes later); a second Ctrl-C kills.
using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    if (stop.IsCancellationRequested) return;
    e.Cancel = true;
    stop.Cancel();
};
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    stop.Cancel();
});
return await QwApp.RunAsync(args, CliConsole.FromProcess(), TimeProvider.System, stop.Token);
