using System.Text;
using QueueWorker.Contracts;

namespace QueueWorker.Messaging.Tests;

[Trait("Category", "Unit")]
public sealed class ReplyToPolicyTests
{
    private static ReplyToPolicy Policy(string? pattern = null) => new(new RabbitMqOptions { ReplyToPattern = pattern });

    [Theory]
    [InlineData("amq.gen-JzTY20BRgKO-HjmUJj0wLg")]
    [InlineData("amq.gen-x")]
    [InlineData("amq.rabbitmq.reply-to")]
    [InlineData("amq.rabbitmq.reply-to.g1h2AA9yZXBseUAzODg0NTY3MwAAAIoAAAAAaXqZ7g==.ZyNYQ5pcp+V9ZMpjLxSm0A==")]
    public void IsAllowed_ServerNamed_AllowedWithoutPattern(string name)
    {
        Assert.True(ReplyToPolicy.IsServerNamed(name));
        Assert.True(Policy().IsAllowed(name));
        Assert.True(Policy("tenant-a\\..*").IsAllowed(name));
    }

    [Theory]
    [InlineData("amq.gen-")] // the prefix alone: no server-named queue is called that
    [InlineData("amq.gen")]
    [InlineData("AMQ.GEN-abc")] // queue names are case-sensitive
    [InlineData("amq.rabbitmq.reply-to.")]
    [InlineData("amq.rabbitmq.reply-tox")]
    [InlineData("amq.rabbitmq.reply-to-evil")]
    [InlineData(" amq.gen-abc")]
    [InlineData("xamq.gen-abc")]
    [InlineData("tenant-b.results")]
    [InlineData("reply")]
    [InlineData(" ")]
    [InlineData("\n")]
    public void IsAllowed_NotServerNamedNoPattern_Refused(string name)
    {
        Assert.False(ReplyToPolicy.IsServerNamed(name));
        Assert.False(Policy().IsAllowed(name));
        Assert.False(Policy("").IsAllowed(name));
        Assert.False(Policy("   ").IsAllowed(name));
    }

    [Theory]
    [InlineData("reply.abc-123", true)]
    [InlineData("reply.", false)]
    [InlineData("reply.ABC", false)] // the pattern is case-sensitive unless it says (?i)
    [InlineData("xreply.abc", false)] // anchored at the start…
    [InlineData("reply.abc.evil", false)] // …and the end
    [InlineData("reply.abc\n", false)] // \z, not $: a trailing newline does not match
    [InlineData("tenant-b.results", false)]
    public void IsAllowed_Pattern_MatchesWholeNameOnly(string name, bool allowed)
    {
        Assert.Equal(allowed, Policy(@"reply\.[a-z0-9-]+").IsAllowed(name));
    }

    [Fact]
    public void IsAllowed_Alternation_AnchoredAsAWhole()
    {
        var policy = Policy("a|b");

        Assert.True(policy.IsAllowed("a"));
        Assert.True(policy.IsAllowed("b"));
        Assert.False(policy.IsAllowed("ab"));
        Assert.False(policy.IsAllowed("xb"));
        Assert.False(policy.IsAllowed("ax"));
    }

    [Fact]
    public void IsAllowed_JobsAndDeadLetterQueues_NeverEvenWhenThePatternMatches()
    {
        var policy = Policy(".*");

        Assert.False(policy.IsAllowed("llm.jobs"));
        Assert.False(policy.IsAllowed("llm.jobs.dlq"));
        Assert.False(policy.IsAllowed("llm.jobs.parked"));
        Assert.True(policy.IsAllowed("anything"));
        Assert.False(new ReplyToPolicy(new RabbitMqOptions { ReplyToPattern = ".*", DeadLetterQueue = "dead" }).IsAllowed("dead"));
    }

    [Fact]
    public void IsAllowed_ResultsQueue_AllowedWithoutPattern()
    {
        Assert.True(Policy().IsAllowed("llm.results"));
    }

    [Fact]
    public void IsAllowed_PatternTooSlow_RefusedNotHung()
    {
        var policy = Policy("(a+)+b");

        Assert.False(policy.IsAllowed(new string('a', 5000) + "c"));
    }

    [Theory]
    [InlineData("(")]
    [InlineData("[a-")]
    [InlineData("a)|(b")] // would escape the anchoring group
    [InlineData("(?x)reply #")] // the comment would swallow the closing anchor
    [InlineData("\\")]
    public void TryCompile_BadPattern_ErrorNamesKeyAndPattern(string pattern)
    {
        Assert.False(ReplyToPolicy.TryCompile(pattern, out var regex, out var error));
        Assert.Null(regex);
        Assert.StartsWith($"RabbitMq:ReplyToPattern '{pattern}' is not a valid .NET regular expression: ", error);
        Assert.Throws<ArgumentException>(() => Policy(pattern));
    }

    [Fact]
    public void Warning_NamesReplyToKeyAndDestination()
    {
        Assert.Equal("reply_to 'x' is not allowed (RabbitMq:ReplyToPattern); the result went to the results queue", ReplyToPolicy.Warning("x"));
    }

    [Fact]
    public void JobResult_Warnings_SnakeCaseAndOmittedWhenNull()
    {
        var without = JobSerializer.ToJson(new JobResult { Id = "j", Status = JobStatus.Completed });
        var with = new JobResult { Id = "j", Status = JobStatus.Completed, Warnings = [ReplyToPolicy.Warning("q\"x")] };
        var json = JobSerializer.ToJson(with);

        Assert.DoesNotContain("warnings", without);
        Assert.Contains("\"warnings\":[\"reply_to ", json);
        var back = JobSerializer.DeserializeResult(Encoding.UTF8.GetBytes(json));
        Assert.Equal(with.Warnings, back.Warnings);
    }
}
