// Does a burst of publishes reach a queue when the publishing channel closes right after it?
// Usage: dotnet run -c Release -- [bursts=150] [mode=close|open|confirm] [queue type=quorum|classic] [uri]
//   close:   60 unconfirmed publishes, then the channel is closed at once (what a fire-and-forget producer does)
//   open:    the same, but the channel stays open until the queue holds all 60
//   confirm: publishes on a confirming channel, each awaiting its confirm
// Prints each short burst and the total; exit code 1 when any burst was short.
using System.Globalization;
using RabbitMQ.Client;

const int Messages = 60;
var bursts = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 150;
var mode = args.Length > 1 ? args[1] : "close";
var queueType = args.Length > 2 ? args[2] : "quorum";
var uri = args.Length > 3 ? args[3] : "amqp://guest:guest@127.0.0.1:5672/";
if (mode is not ("close" or "open" or "confirm"))
{
    await Console.Error.WriteLineAsync($"mode must be close, open or confirm, not '{mode}'");
    return 2;
}

var factory = new ConnectionFactory { Uri = new Uri(uri), ClientProvidedName = "unconfirmed-publish-probe" };
await using var connection = await factory.CreateConnectionAsync();
var shortBursts = 0;
for (var burst = 0; burst < bursts; burst++)
{
    var queue = "probe.unconfirmed." + Guid.NewGuid().ToString("N");
    await using (var declare = await connection.CreateChannelAsync())
        await declare.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-queue-type"] = queueType });

    var confirm = mode == "confirm";
    var publisher = await connection.CreateChannelAsync(new CreateChannelOptions(confirm, confirm));
    for (var i = 0; i < Messages; i++)
        await publisher.BasicPublishAsync("", queue, mandatory: false,
            new BasicProperties { MessageId = i.ToString(CultureInfo.InvariantCulture), DeliveryMode = DeliveryModes.Persistent }, new byte[200]);
    if (mode != "open")
        await publisher.DisposeAsync();

    uint count = 0;
    var deadline = DateTime.UtcNow.AddSeconds(30);
    await using (var check = await connection.CreateChannelAsync())
    {
        while (DateTime.UtcNow < deadline && (count = (await check.QueueDeclarePassiveAsync(queue)).MessageCount) < Messages)
            await Task.Delay(50);
        await check.QueueDeleteAsync(queue);
    }
    if (mode == "open")
        await publisher.DisposeAsync();
    if (count < Messages)
    {
        shortBursts++;
        Console.WriteLine($"burst {burst}: {count} of {Messages} in the queue after 30 s");
    }
}
Console.WriteLine($"{mode}, {queueType} queue: {shortBursts} of {bursts} bursts short");
return shortBursts > 0 ? 1 : 0;
