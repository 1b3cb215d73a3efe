using QueueWorker.Hosting;
using QueueWorker.Inference;
using QueueWorker.Messaging;

// Configuration: appsettings.json beside the binary, then environment variables (RabbitMq__Uri, Model__Path, ...).
var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.ConfigureHttpEndpoint();
builder.AddWorkerTelemetry();
builder.AddInference();
builder.AddMessaging();
builder.AddQueueWorker();
builder.AddWorkerHealthChecks();

var app = builder.Build();
app.MapWorkerEndpoints();
return await app.RunWorkerAsync();
