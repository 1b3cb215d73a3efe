using System.Text.RegularExpressions;

namespace QueueWorker.Ops.Tests;

/// <summary>The broker definitions agree with the topology the worker declares, and the users get only what they need.</summary>
[Trait("Category", "Unit")]
public sealed class DefinitionsTests
{
    [Fact]
    public void JobsQueue_Arguments_EqualWhatTheWorkerDeclares()
    {
        var options = Definitions.WorkerOptions();
        var jobs = Definitions.Queue(options.JobsQueue);
        Assert.True(jobs.GetProperty("durable").GetBoolean());
        Assert.False(jobs.GetProperty("auto_delete").GetBoolean());

        var arguments = jobs.GetProperty("arguments");
        Assert.Equal("quorum", arguments.GetProperty("x-queue-type").GetString());
        Assert.Equal(options.DeliveryLimit, arguments.GetProperty("x-delivery-limit").GetInt32());
        Assert.Equal("", arguments.GetProperty("x-dead-letter-exchange").GetString());
        Assert.Equal(options.EffectiveDeadLetterQueue, arguments.GetProperty("x-dead-letter-routing-key").GetString());
        Assert.Equal("at-least-once", arguments.GetProperty("x-dead-letter-strategy").GetString());
        Assert.Equal("reject-publish", arguments.GetProperty("x-overflow").GetString());
        // Exactly the worker's arguments: the same keys and values, nothing more.
        var wanted = Messaging.Topology.JobsQueueArguments(options);
        Assert.Equal(wanted.Keys.Order(), arguments.EnumerateObject().Select(a => a.Name).Order());
    }

    [Fact]
    public void ResultsAndDeadLetterQueues_AreDurableQuorumQueues()
    {
        var options = Definitions.WorkerOptions();
        foreach (var name in new[] { options.ResultsQueue, options.EffectiveDeadLetterQueue })
        {
            var queue = Definitions.Queue(name);
            Assert.True(queue.GetProperty("durable").GetBoolean(), $"{name} durable");
            Assert.False(queue.GetProperty("auto_delete").GetBoolean(), $"{name} not auto-delete");
            var arguments = queue.GetProperty("arguments");
            Assert.Equal("quorum", arguments.GetProperty("x-queue-type").GetString());
            Assert.Single(arguments.EnumerateObject());
        }
        Assert.Equal(4, Definitions.Root.GetProperty("queues").GetArrayLength());
    }

    [Fact]
    public void ParkedQueue_IsTheDurableQuorumQueueTheWorkerDeclares()
    {
        var options = Definitions.WorkerOptions();
        Assert.True(options.AnswerDeadLetters);
        var parked = Definitions.Queue(options.EffectiveParkedQueue);
        Assert.True(parked.GetProperty("durable").GetBoolean());
        Assert.False(parked.GetProperty("auto_delete").GetBoolean());
        var arguments = parked.GetProperty("arguments").EnumerateObject().ToDictionary(a => a.Name, a => a.Value.GetString());
        Assert.Equal(Messaging.Topology.ParkedQueueArguments.ToDictionary(a => a.Key, a => (string?)a.Value), arguments);
    }

    [Fact]
    public void Users_AreTheFourDocumentedOnes_WithoutGuest()
    {
        var names = Definitions.Root.GetProperty("users").EnumerateArray().Select(u => u.GetProperty("name").GetString()).Order().ToList();
        Assert.Equal([Definitions.AdminUser, Definitions.KedaUser, Definitions.ProducerUser, Definitions.WorkerUser], names);
        Assert.Equal(["administrator"], Tags(Definitions.AdminUser));
        Assert.Equal(["management"], Tags(Definitions.KedaUser));
        Assert.Empty(Tags(Definitions.WorkerUser));
        Assert.Empty(Tags(Definitions.ProducerUser));
    }

    [Theory]
    [InlineData(Definitions.AdminUser, "ChangeMeAdmin1")]
    [InlineData(Definitions.WorkerUser, "ChangeMeWorker1")]
    [InlineData(Definitions.ProducerUser, "ChangeMeProducer1")]
    [InlineData(Definitions.KedaUser, "ChangeMeKeda1")]
    public void PasswordHash_MatchesTheDocumentedExamplePassword(string user, string password)
    {
        Assert.True(Definitions.PasswordMatches(user, password));
        Assert.False(Definitions.PasswordMatches(user, password + "x"));
    }

    /// <summary>
    /// RabbitMQ checks queue.declare against configure (and, with a dead-letter exchange, write on that
    /// exchange and read on the queue), basic.publish against write on the EXCHANGE (the default exchange
    /// is "amq.default"), basic.get/consume against read on the queue.
    /// </summary>
    [Fact]
    public void WorkerPermissions_CoverItsOwnQueuesOnly()
    {
        var o = Definitions.WorkerOptions();
        var (configure, write, read) = Definitions.Permissions(Definitions.WorkerUser);

        Assert.All(new[] { o.JobsQueue, o.ResultsQueue, o.EffectiveDeadLetterQueue, o.EffectiveParkedQueue }, q => Assert.Matches(configure, q));
        Assert.All(new[] { "other", o.JobsQueue + "x", "x" + o.ResultsQueue, "amq.gen-abc" }, q => Assert.DoesNotMatch(configure, q));

        Assert.Matches(write, "amq.default");
        Assert.All(new[] { "amq.topic", "amq.direct", o.JobsQueue, o.ResultsQueue }, x => Assert.DoesNotMatch(write, x));

        // The jobs queue, and the dead-letter queue whose jobs it answers and parks (RabbitMq:AnswerDeadLetters).
        Assert.Matches(read, o.JobsQueue);
        Assert.Matches(read, o.EffectiveDeadLetterQueue);
        Assert.All(new[] { o.ResultsQueue, o.EffectiveParkedQueue, "amq.gen-abc", "amq.default", o.JobsQueue + "x" }, q => Assert.DoesNotMatch(read, q));
    }

    [Fact]
    public void ProducerPermissions_PublishJobsAndReadResultsAndItsReplyQueuesOnly()
    {
        var o = Definitions.WorkerOptions();
        var (configure, write, read) = Definitions.Permissions(Definitions.ProducerUser);

        Assert.Matches(configure, "amq.gen-JzTY20BRgKO-HjmUJj0wLg");
        Assert.All(new[] { o.JobsQueue, o.ResultsQueue, o.EffectiveDeadLetterQueue, o.EffectiveParkedQueue }, q => Assert.DoesNotMatch(configure, q));

        Assert.Matches(write, "amq.default");
        Assert.DoesNotMatch(write, "amq.topic");

        Assert.Matches(read, o.ResultsQueue);
        Assert.Matches(read, "amq.gen-JzTY20BRgKO-HjmUJj0wLg");
        Assert.All(new[] { o.JobsQueue, o.EffectiveDeadLetterQueue, o.EffectiveParkedQueue }, q => Assert.DoesNotMatch(read, q));
    }

    [Fact]
    public void KedaPermissions_GrantNoAmqpRights()
    {
        var (configure, write, read) = Definitions.Permissions(Definitions.KedaUser);
        foreach (var pattern in new[] { configure, write, read })
        {
            Assert.Equal("^$", pattern);
            Assert.DoesNotMatch(pattern, Definitions.WorkerOptions().JobsQueue);
        }
    }

    [Fact]
    public void ApplyUsersScript_SetsTheSamePermissionRegexesAsDefinitions()
    {
        // The script builds the regexes from the queue names; with the defaults they must equal definitions.json's.
        var script = Repo.Read("ops/rabbitmq/apply-users.sh");
        var o = Definitions.WorkerOptions();
        string Escape(string name) => Regex.Replace(name, @"[][\.|$(){}?+*^\\]", @"\$0");
        var j = Escape(o.JobsQueue);
        var r = Escape(o.ResultsQueue);
        var d = Escape(o.EffectiveDeadLetterQueue);
        var p = Escape(o.EffectiveParkedQueue);
        var c = Escape(o.ControlExchange);
        // The control exchange and each worker's own control queue (cancels), on top of the four queues.
        Assert.Equal(($@"^({j}|{d}|{p}|{r}|{c}|{c}\.worker-[0-9a-f]+)$", $@"^(amq\.default|{c}\.worker-[0-9a-f]+)$", $@"^({j}|{d}|{c}|{c}\.worker-[0-9a-f]+)$"),
            Definitions.Permissions(Definitions.WorkerUser));
        Assert.Equal((@"^amq\.gen-.*$", $@"^(amq\.default|{c})$", $@"^({r}|amq\.gen-.*)$"), Definitions.Permissions(Definitions.ProducerUser));
        Assert.Contains(@"""^($j|$d|$p|$r|$c|$c\\.worker-[0-9a-f]+)\$"" ""^(amq\\.default|$c\\.worker-[0-9a-f]+)\$"" ""^($j|$d|$c|$c\\.worker-[0-9a-f]+)\$""", script, StringComparison.Ordinal);
        Assert.Contains(@"'^amq\.gen-.*$' ""^(amq\\.default|$c)\$"" ""^($r|amq\\.gen-.*)\$""", script, StringComparison.Ordinal);
    }

    private static List<string?> Tags(string user) =>
        Definitions.User(user).GetProperty("tags").EnumerateArray().Select(t => t.GetString()).ToList();
}
