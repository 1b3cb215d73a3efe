namespace QueueWorker.Processing.Tests;

[Trait("Category", "Unit")]
public sealed class JobDeadlineTests
{
    private static readonly DateTimeOffset Received = Clock.Start;
    private static readonly TimeSpan MaxJob = TimeSpan.FromMinutes(10);

    [Fact]
    public void Compute_NothingSet_MaxJobFromReceiptWithoutField()
    {
        var deadline = JobDeadline.Compute(null, null, null, Received, MaxJob);

        Assert.Equal(new JobDeadline(Received + MaxJob, null), deadline);
    }

    [Fact]
    public void Compute_TimeoutEqualToMaxJob_TimeoutNamed()
    {
        var deadline = JobDeadline.Compute((int)MaxJob.TotalMilliseconds, null, null, Received, MaxJob);

        Assert.Equal(new JobDeadline(Received + MaxJob, JobDeadline.TimeoutField), deadline);
    }

    [Fact]
    public void Compute_TimeoutAndExpirationEqual_TimeoutNamed()
    {
        var deadline = JobDeadline.Compute(5000, TimeSpan.FromSeconds(5), null, Received, MaxJob);

        Assert.Equal(JobDeadline.TimeoutField, deadline.Field);
    }

    [Fact]
    public void Compute_PublishedBeforeReceipt_JobFieldsFromPublishMaxJobFromReceipt()
    {
        var published = Received.AddMinutes(-9);

        Assert.Equal(published.AddMinutes(5), JobDeadline.Compute(300_000, null, published, Received, MaxJob).At);
        Assert.Equal(Received + MaxJob, JobDeadline.Compute(null, TimeSpan.FromMinutes(20), published, Received, MaxJob).At);
    }

    [Theory]
    [InlineData(int.MaxValue)]
    [InlineData(604_800_000)]
    public void Compute_PublishedAtMaxValue_SaturatesInsteadOfThrowing(int timeoutMs)
    {
        var deadline = JobDeadline.Compute(timeoutMs, TimeSpan.MaxValue, DateTimeOffset.MaxValue, Received, MaxJob);

        Assert.Equal(Received + MaxJob, deadline.At);
        Assert.Null(deadline.Field);
    }

    [Fact]
    public void Compute_EverythingAtMaxValue_DeadlineIsMaxValue()
    {
        var deadline = JobDeadline.Compute(int.MaxValue, TimeSpan.MaxValue, DateTimeOffset.MaxValue, DateTimeOffset.MaxValue, TimeSpan.MaxValue);

        Assert.Equal(DateTimeOffset.MaxValue, deadline.At);
    }

    [Fact]
    public void Compute_NegativeExpiration_SaturatesAtMinValueAndPassed()
    {
        var deadline = JobDeadline.Compute(null, TimeSpan.MinValue, DateTimeOffset.MinValue.AddDays(1), Received, MaxJob);

        Assert.Equal(DateTimeOffset.MinValue, deadline.At);
        Assert.Equal(JobDeadline.ExpirationField, deadline.Field);
        Assert.True(deadline.HasPassed(Received));
    }

    [Fact]
    public void Compute_OriginWithOffset_SameInstantInUtc()
    {
        var published = new DateTimeOffset(2026, 12, 1, 14, 0, 0, TimeSpan.FromHours(2));

        var deadline = JobDeadline.Compute(1000, null, published, Received, MaxJob);

        Assert.Equal(Received.AddSeconds(1), deadline.At);
        Assert.Equal(TimeSpan.Zero, deadline.At.Offset);
    }

    [Fact]
    public void HasPassed_AtOrAfterDeadline_True()
    {
        var deadline = new JobDeadline(Received, null);

        Assert.True(deadline.HasPassed(Received));
        Assert.True(deadline.HasPassed(Received.AddTicks(1)));
        Assert.False(deadline.HasPassed(Received.AddTicks(-1)));
    }
}
