namespace QueueWorker.Messaging.Tests;

[Trait("Category", "Unit")]
public sealed class SuspectIsolationTests
{
    [Fact]
    public void Admit_FreshJobs_RunTogetherWithoutPause()
    {
        var isolation = new SuspectIsolation(deliveryLimit: 2);
        for (var i = 0; i < 4; i++)
        {
            var admission = isolation.Admit(0);
            Assert.Equal(DeliveryAction.Run, admission.Ticket.Action);
            Assert.False(admission.Pause);
        }
        Assert.False(isolation.Isolating);
        Assert.Equal(4, isolation.Held);
    }

    [Fact]
    public void Admit_Suspect_PausesAndRunsOnlyOncePausedAndAlone()
    {
        var isolation = new SuspectIsolation(deliveryLimit: 2);
        var fresh = isolation.Admit(0).Ticket;
        var suspect = isolation.Admit(1);
        Assert.Equal(DeliveryAction.RunAlone, suspect.Ticket.Action);
        Assert.True(suspect.Pause);
        Assert.True(isolation.Isolating);

        // A fresh job delivered before the pause took effect still runs; the suspect waits for it.
        var late = isolation.Admit(0).Ticket;
        Assert.Equal(DeliveryAction.Run, late.Action);
        isolation.Paused();
        Assert.False(suspect.Ticket.Alone.IsCompleted);
        Assert.False(isolation.Settle(fresh));
        Assert.False(suspect.Ticket.Alone.IsCompleted);
        Assert.False(isolation.Settle(late));
        Assert.True(suspect.Ticket.Released);

        // Settling the suspect ends the isolation: consumption resumes.
        Assert.True(isolation.Settle(suspect.Ticket));
        Assert.False(isolation.Isolating);
        Assert.Equal(DeliveryAction.Run, isolation.Admit(0).Ticket.Action);
    }

    [Fact]
    public void Admit_SuspectWithNothingHeld_WaitsForThePauseOnly()
    {
        var isolation = new SuspectIsolation(deliveryLimit: 3);
        var suspect = isolation.Admit(2).Ticket;
        Assert.False(suspect.Alone.IsCompleted);
        isolation.Paused();
        Assert.True(suspect.Released);
    }

    [Fact]
    public void Admit_OtherSuspectsWhileIsolating_RequeuedAtTheEnd()
    {
        var isolation = new SuspectIsolation(deliveryLimit: 2);
        var first = isolation.Admit(1);
        var second = isolation.Admit(1).Ticket;
        var third = isolation.Admit(2).Ticket;
        Assert.Equal(DeliveryAction.Requeue, second.Action);
        Assert.Equal(DeliveryAction.Requeue, third.Action);

        // The suspect waits until the re-published ones are acked too: a crash before that would charge them.
        isolation.Paused();
        Assert.False(first.Ticket.Alone.IsCompleted);
        isolation.Settle(second);
        isolation.Settle(third);
        Assert.True(first.Ticket.Released);
    }

    [Fact]
    public void Admit_AnythingWhileTheSuspectRuns_RequeuedNotRunBesideIt()
    {
        var isolation = new SuspectIsolation(deliveryLimit: 2);
        var suspect = isolation.Admit(1).Ticket;
        isolation.Paused();
        Assert.True(suspect.Released);
        Assert.Equal(DeliveryAction.Requeue, isolation.Admit(0).Ticket.Action);
        Assert.Equal(DeliveryAction.Requeue, isolation.Admit(1).Ticket.Action);
    }

    [Theory]
    [InlineData(2, 3)]
    [InlineData(1, 2)]
    [InlineData(3, long.MaxValue)]
    public void Admit_OverTheDeliveryLimit_ParkedNeverRun(int limit, long prior)
    {
        var isolation = new SuspectIsolation(limit);
        var admission = isolation.Admit(prior);
        Assert.Equal(DeliveryAction.Park, admission.Ticket.Action);
        Assert.False(admission.Pause);
        Assert.False(isolation.Isolating);
        Assert.Equal(DeliveryAction.RunAlone, isolation.Admit(limit).Ticket.Action); // at the limit: one more try, alone
    }

    [Fact]
    public void Reset_WaitingSuspect_ReleasedNotToRunAndOldTicketsIgnored()
    {
        var isolation = new SuspectIsolation(deliveryLimit: 2);
        var held = isolation.Admit(0).Ticket;
        var suspect = isolation.Admit(1).Ticket;
        isolation.Reset();
        Assert.False(suspect.Released);
        Assert.False(isolation.Isolating);
        Assert.Equal(0, isolation.Held);

        // Delivery tags start again on the new channel: a ticket of the old one changes nothing.
        var next = isolation.Admit(1);
        Assert.True(next.Pause);
        Assert.False(isolation.Settle(held));
        Assert.False(isolation.Settle(suspect));
        Assert.True(isolation.Isolating);
        isolation.Paused();
        Assert.True(next.Ticket.Released);
    }

    [Fact]
    public void Paused_WithoutSuspect_Ignored()
    {
        var isolation = new SuspectIsolation(deliveryLimit: 2);
        isolation.Paused(); // the stop's own cancel-ok
        var suspect = isolation.Admit(1).Ticket;
        Assert.False(suspect.Alone.IsCompleted);
    }

    /// <summary>
    /// The scenario on paper, with the broker's rules: a quorum queue returns a dead channel's unacked deliveries to
    /// the head in order with their count + 1, dead-letters one returned past the limit, and a worker holding the killer
    /// when it runs dies. 4 slots, DeliveryLimit 2, one killer among three good jobs, in every position.
    /// </summary>
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Simulation_KillerAmongGoodJobs_ThreeCompletedOnePoisonAtMostLimitPlusOneDeaths(int killerAt)
    {
        var outcome = Simulate(killerAt, isolate: true);
        Assert.Equal(["good-a", "good-b", "good-c"], outcome.Completed.Order().ToArray());
        Assert.Equal(["killer"], outcome.Poison);
        Assert.Equal(["killer"], outcome.Parked);
        Assert.Empty(outcome.DeadLettered.Except(["killer"]));
        Assert.InRange(outcome.WorkersKilled, 1, 3);
    }

    [Fact]
    public void Simulation_WithoutIsolation_InnocentJobsAreDeadLettered()
    {
        // What the worker did before: every prefetched job is charged for the killer's crashes.
        var outcome = Simulate(killerAt: 0, isolate: false);
        Assert.Empty(outcome.Completed);
        Assert.Equal(4, outcome.DeadLettered.Count);
    }

    private sealed record Message(string Id, long BrokerCount, long Carried)
    {
        public bool Killer => Id == "killer";
    }

    private sealed record Outcome(List<string> Completed, List<string> Poison, List<string> Parked, List<string> DeadLettered, int WorkersKilled);

    private static Outcome Simulate(int killerAt, bool isolate)
    {
        const int Limit = 2, Prefetch = 4;
        var goods = new Queue<string>(["good-a", "good-b", "good-c"]);
        var queue = new LinkedList<Message>();
        for (var i = 0; i < 4; i++)
            queue.AddLast(new Message(i == killerAt ? "killer" : goods.Dequeue(), 0, 0));
        var outcome = new Outcome([], [], [], [], 0);
        var killed = 0;
        for (var worker = 0; worker < 12 && (queue.Count > 0 || outcome.DeadLettered.Count > outcome.Parked.Count); worker++)
        {
            // The DLQ consumer of the new worker: dead letters answered poison_job (reason delivery_limit) and parked.
            foreach (var dead in outcome.DeadLettered.Skip(outcome.Parked.Count).ToList())
            {
                outcome.Poison.Add(dead);
                outcome.Parked.Add(dead);
            }
            if (!RunWorker(queue, outcome, isolate, Limit, Prefetch))
                killed++;
        }
        return outcome with { WorkersKilled = killed };
    }

    /// <summary>One worker's life; false when it was killed.</summary>
    private static bool RunWorker(LinkedList<Message> queue, Outcome outcome, bool isolate, int limit, int prefetch)
    {
        var isolation = new SuspectIsolation(limit);
        var held = new List<(Message Message, IsolationTicket Ticket)>();
        var consuming = true;
        while (true)
        {
            // The broker pushes up to the prefetch before a cancel takes effect (the worst case for the pause).
            var pause = false;
            while (consuming && held.Count < prefetch && queue.First is { } head)
            {
                queue.RemoveFirst();
                var admission = isolate ? isolation.Admit(head.Value.BrokerCount + head.Value.Carried) : new IsolationAdmission(isolation.Admit(0).Ticket, false);
                held.Add((head.Value, admission.Ticket));
                pause |= admission.Pause;
            }
            if (pause)
            {
                consuming = false;
                isolation.Paused();
            }
            foreach (var (message, ticket) in held.Where(h => h.Ticket.Action is DeliveryAction.Requeue or DeliveryAction.Park).ToList())
            {
                if (ticket.Action == DeliveryAction.Requeue)
                    queue.AddLast(new Message(message.Id, 0, message.BrokerCount + message.Carried));
                else
                {
                    outcome.Poison.Add(message.Id);
                    outcome.Parked.Add(message.Id);
                }
                held.Remove((message, ticket));
                isolation.Settle(ticket);
            }
            var running = held.Where(h => h.Ticket.Action == DeliveryAction.Run
                || (h.Ticket.Action == DeliveryAction.RunAlone && h.Ticket.Released == true)).ToList();
            if (running.Count == 0)
                return true; // idle: nothing left to run
            if (running.Any(r => r.Message.Killer))
            {
                // Dead: every unacked delivery back to the head, in order, charged one delivery.
                foreach (var (message, _) in Enumerable.Reverse(held))
                {
                    var returned = message with { BrokerCount = message.BrokerCount + 1 };
                    if (returned.BrokerCount > limit)
                        outcome.DeadLettered.Add(returned.Id);
                    else
                        queue.AddFirst(returned);
                }
                return false;
            }
            foreach (var run in running)
            {
                outcome.Completed.Add(run.Message.Id);
                held.Remove(run);
                if (isolation.Settle(run.Ticket))
                    consuming = true;
            }
        }
    }
}
