namespace QueueWorker.Inference.Tests;

[Trait("Category", "Unit")]
public sealed class CpuBudgetTests
{
    [Theory]
    [InlineData("max 100000", null)]
    [InlineData("150000 100000\n", 1.5)]
    [InlineData("200000 100000", 2.0)]
    [InlineData("50000", 0.5)]
    [InlineData("", null)]
    [InlineData("garbage", null)]
    public void ParseCpuMax_Content_Cpus(string content, double? expected) =>
        Assert.Equal(expected, CgroupCpu.ParseCpuMax(content));

    [Theory]
    [InlineData("-1", "100000", null)]
    [InlineData("150000\n", "100000\n", 1.5)]
    [InlineData("100000", "0", null)]
    [InlineData(null, "100000", null)]
    public void ParseCfs_QuotaAndPeriod_Cpus(string? quota, string? period, double? expected) =>
        Assert.Equal(expected, CgroupCpu.ParseCfs(quota, period));

    [Theory]
    [InlineData("0-1", 2)]
    [InlineData("0-3,6,8-9", 7)]
    [InlineData("5\n", 1)]
    [InlineData("3-1", null)]
    [InlineData("", null)]
    public void ParseCpuList_List_Count(string list, int? expected) =>
        Assert.Equal(expected, CgroupCpu.ParseCpuList(list));

    [Fact]
    public void ParseAffinityCount_ProcSelfStatus_CountsAllowedList() =>
        Assert.Equal(3, CgroupCpu.ParseAffinityCount("Name:\tdotnet\nCpus_allowed:\t7\nCpus_allowed_list:\t0-2\nMems_allowed:\t1\n"));

    [Fact]
    public void FindQuota_CgroupV2Container_ReadsCpuMaxOfItsCgroup()
    {
        var files = new Dictionary<string, string>
        {
            ["/proc/self/mountinfo"] = "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n",
            ["/proc/self/cgroup"] = "0::/\n",
            ["/sys/fs/cgroup/cpu.max"] = "150000 100000\n",
        };
        var (cpus, source) = CgroupCpu.FindQuota(p => files.GetValueOrDefault(p));

        Assert.Equal(1.5, cpus);
        Assert.Equal("/sys/fs/cgroup/cpu.max", source);
    }

    [Fact]
    public void FindQuota_CgroupV2Nested_TightestAncestorWins()
    {
        var files = new Dictionary<string, string>
        {
            ["/proc/self/mountinfo"] = "30 24 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            ["/proc/self/cgroup"] = "0::/kubepods/pod1/ctr\n",
            ["/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max"] = "max 100000",
            ["/sys/fs/cgroup/kubepods/pod1/cpu.max"] = "100000 100000",
            ["/sys/fs/cgroup/kubepods/cpu.max"] = "400000 100000",
        };
        var (cpus, source) = CgroupCpu.FindQuota(p => files.GetValueOrDefault(p));

        Assert.Equal(1.0, cpus);
        Assert.Equal("/sys/fs/cgroup/kubepods/pod1/cpu.max", source);
    }

    [Fact]
    public void FindQuota_CgroupV1WithoutQuota_NoneAndSaysWhy()
    {
        var files = new Dictionary<string, string>
        {
            ["/proc/self/mountinfo"] = "40 30 0:35 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
            ["/proc/self/cgroup"] = "4:cpu,cpuacct:/\n0::/\n",
            ["/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us"] = "-1",
            ["/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us"] = "100000",
        };
        var (cpus, source) = CgroupCpu.FindQuota(p => files.GetValueOrDefault(p));

        Assert.Null(cpus);
        Assert.Contains("cfs_quota_us is -1", source);
    }

    [Fact]
    public void FindQuota_CgroupV1Quota_Read()
    {
        var files = new Dictionary<string, string>
        {
            ["/proc/self/mountinfo"] = "40 30 0:35 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n",
            ["/proc/self/cgroup"] = "3:cpu:/docker/abc\n",
            ["/sys/fs/cgroup/cpu/docker/abc/cpu.cfs_quota_us"] = "100000",
            ["/sys/fs/cgroup/cpu/docker/abc/cpu.cfs_period_us"] = "100000",
        };

        Assert.Equal(1.0, CgroupCpu.FindQuota(p => files.GetValueOrDefault(p)).Cpus);
    }

    [Fact]
    public void Compute_Automatic_AllCpusLessReserve()
    {
        var budget = CpuBudget.Compute(new InferenceOptions { ReserveCores = 1 }, new CpuFacts(4, 4, null, "cgroup v2 cpu.max is max"));

        Assert.Equal(3, budget.Threads);
        Assert.Equal(3, budget.BatchThreads);
        Assert.Contains("4 CPUs available (affinity 4, no cgroup quota (cgroup v2 cpu.max is max)), reserve 1 -> 3 threads", budget.Reason);
    }

    [Fact]
    public void Compute_FractionalQuota_RoundedUpAndSaid()
    {
        // .NET's ProcessorCount already rounds a 1.5-CPU quota up to 2.
        var budget = CpuBudget.Compute(new InferenceOptions(), new CpuFacts(2, 8, 1.5, "/sys/fs/cgroup/cpu.max"));

        Assert.Equal(2, budget.Threads);
        Assert.Contains("cgroup quota 1.5 CPUs from /sys/fs/cgroup/cpu.max, rounded up", budget.Reason);
        Assert.Contains("affinity 8", budget.Reason);
    }

    [Fact]
    public void Compute_ReserveEverything_OneThreadAndSaysSo()
    {
        var budget = CpuBudget.Compute(new InferenceOptions { ReserveCores = 2 }, new CpuFacts(2, 2, null, "none"));

        Assert.Equal(1, budget.Threads);
        Assert.Contains("Inference:ReserveCores = 2 leaves no CPU of 2", budget.Reason);
    }

    [Fact]
    public void Compute_ExplicitThreads_UsedAndBatchThreadsApart()
    {
        var budget = CpuBudget.Compute(new InferenceOptions { Threads = 4, BatchThreads = 2, ReserveCores = 1 }, new CpuFacts(2, 2, null, "none"));

        Assert.Equal(4, budget.Threads);
        Assert.Equal(2, budget.BatchThreads);
        Assert.Contains("Inference:Threads = 4 (explicit)", budget.Reason);
        Assert.Contains("oversubscribed", budget.Reason);
        Assert.Contains("Inference:BatchThreads = 2 (explicit)", budget.Reason);
    }

    [Fact]
    public void Detect_ThisMachine_MatchesProcessorCount()
    {
        var facts = CpuFacts.Detect();

        Assert.Equal(Environment.ProcessorCount, facts.ProcessorCount);
        if (OperatingSystem.IsLinux()) Assert.NotNull(facts.AffinityCount);
    }
}
