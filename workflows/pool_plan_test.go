package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestThePoolsRule is the rule (pool_plan.go) as a table: a pool's state
// and the time in, the runners to start and delete and when to look
// again out.
func TestThePoolsRule(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	cfg := func(minIdle, maxRunners int) PoolConfig {
		c := DefaultPoolConfig()
		c.MinIdle, c.MaxRunners = minIdle, maxRunners
		c.IdleGracePeriod, c.BootstrapTimeout = Duration(time.Minute), Duration(5*time.Minute)
		return c
	}
	prov := func(age time.Duration) PoolRunner {
		return PoolRunner{State: RunnerProvisioning, CreatedAt: now.Add(-age)}
	}
	online := func(age time.Duration) PoolRunner {
		r := prov(age)
		r.Online = true
		return r
	}
	idle := func(since time.Duration) PoolRunner {
		return PoolRunner{State: RunnerIdle, Online: true, CreatedAt: now.Add(-time.Hour), IdleSince: now.Add(-since)}
	}
	busy := PoolRunner{State: RunnerBusy, Online: true, CreatedAt: now.Add(-time.Hour)}
	going := PoolRunner{State: RunnerIdle, Online: true, DeleteWanted: true, CreatedAt: now.Add(-time.Hour)}
	type del struct {
		index  int
		giveUp bool
	}
	for _, c := range []struct {
		name   string
		in     planInput
		start  int
		delete []del
		wake   time.Time
	}{
		{name: "nothing queued, no minIdle: nothing to do", in: planInput{Config: cfg(0, 5)}},
		{name: "queued jobs start runners", in: planInput{Config: cfg(0, 5), Queued: 3}, start: 3},
		{name: "never beyond maxRunners", in: planInput{Config: cfg(0, 5), Queued: 20000}, start: 5},
		{name: "minIdle kept warm", in: planInput{Config: cfg(2, 5)}, start: 2},
		{name: "busy runners count, and keep minIdle beside them",
			in: planInput{Config: cfg(1, 5), Runners: []PoolRunner{busy, busy}}, start: 1},
		{name: "provisioning runners count toward the target",
			in: planInput{Config: cfg(0, 5), Queued: 3, Runners: []PoolRunner{prov(time.Second), prov(time.Second)}}, start: 1,
			wake: now.Add(5*time.Minute - time.Second)},
		{name: "a runner going counts no more",
			in: planInput{Config: cfg(0, 5), Queued: 1, Runners: []PoolRunner{going}}, start: 1},
		{name: "an agent offline starts nothing",
			in: planInput{Config: cfg(0, 5), Queued: 3, AgentOffline: true}},
		{name: "an agent not yet known starts nothing",
			in: planInput{Config: cfg(0, 5), Queued: 3, AgentUnchecked: true}},
		{name: "backing off: nothing until it ends, then a look",
			in: planInput{Config: cfg(0, 5), Queued: 3, BackoffUntil: now.Add(10 * time.Second)}, wake: now.Add(10 * time.Second)},
		{name: "a backoff that ended starts again",
			in: planInput{Config: cfg(0, 5), Queued: 3, BackoffUntil: now.Add(-time.Second)}, start: 3},
		{name: "a runner not online within bootstrapTimeout is given up, and replaced",
			in:    planInput{Config: cfg(0, 5), Queued: 1, Runners: []PoolRunner{prov(6 * time.Minute)}},
			start: 1, delete: []del{{0, true}}},
		{name: "a runner online in time is kept while it boots",
			in: planInput{Config: cfg(0, 5), Queued: 1, Runners: []PoolRunner{online(6 * time.Minute)}}},
		{name: "idle beyond the grace period goes; within it, a look when it ends",
			in:     planInput{Config: cfg(0, 5), Runners: []PoolRunner{idle(2 * time.Minute), idle(30 * time.Second)}},
			delete: []del{{0, false}}, wake: now.Add(30 * time.Second)},
		{name: "beyond minIdle, the runner idle longest goes first",
			in:     planInput{Config: cfg(1, 5), Runners: []PoolRunner{idle(time.Minute + time.Second), idle(3 * time.Minute)}},
			delete: []del{{1, false}}},
		{name: "idle runners wait for queued jobs",
			in: planInput{Config: cfg(0, 5), Queued: 2, Runners: []PoolRunner{idle(time.Hour), idle(time.Hour)}}},
		{name: "busy runners are never deleted, even over a lowered maxRunners",
			in: planInput{Config: cfg(0, 1), Runners: []PoolRunner{busy, busy, busy}}},
		{name: "a lowered maxRunners takes idle runners at once",
			in:     planInput{Config: cfg(0, 1), Queued: 5, Runners: []PoolRunner{busy, idle(time.Second), idle(2 * time.Second)}},
			delete: []del{{2, false}, {1, false}}},
		{name: "a lowered target cancels the provisioning runners beyond it, newest first",
			in: planInput{Config: cfg(1, 5), Retarget: true,
				Runners: []PoolRunner{prov(3 * time.Second), prov(2 * time.Second), prov(time.Second)}},
			delete: []del{{2, false}, {1, false}}, wake: now.Add(5*time.Minute - 3*time.Second)},
		{name: "without a change of config, provisioning runners are left to come up",
			in:   planInput{Config: cfg(1, 5), Runners: []PoolRunner{prov(2 * time.Second), prov(time.Second)}},
			wake: now.Add(5*time.Minute - 2*time.Second)},
		{name: "a draining pool deletes its idle and provisioning runners, never the busy",
			in:     planInput{Config: cfg(2, 5), Queued: 4, Draining: true, Runners: []PoolRunner{busy, idle(time.Second), prov(time.Second)}},
			delete: []del{{1, false}, {2, false}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.in.Now = now
			got := plan(c.in)
			assert.Equal(t, c.start, got.Start, "runners started")
			var dels []del
			for _, d := range got.Delete {
				dels = append(dels, del{d.Index, d.GiveUp})
				assert.NotEmpty(t, d.Reason, "every deletion says why")
			}
			assert.Equal(t, c.delete, dels, "runners deleted")
			assert.Equal(t, c.wake, got.Wake, "next look")
		})
	}
}

// TestACommandBudgetLastsTheWholeTask: the count of a task's commands
// starts again only in a new task (the history grew), not when the loop
// wakes within the task, as it does when a local activity of the task
// ends: two turns of 500 commands in one task were 1,000 commands.
func TestACommandBudgetLastsTheWholeTask(t *testing.T) {
	for _, c := range []struct {
		name              string
		version, last, at int
		waited, want      bool
	}{
		{"a new task", poolV2, 40, 47, false, true},
		{"a new task after a wait", poolV2, 40, 47, true, true},
		{"a turn within the task", poolV2, 47, 47, false, false},
		{"woken within the task by a local activity", poolV2, 47, 47, true, false},
		{"the test environment: a wait is a new task", poolV2, 0, 0, true, true},
		{"the test environment, no wait", poolV2, 0, 0, false, false},
		{"poolV1 replays as it ran", poolV1, 47, 47, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, newWorkflowTask(c.version, c.last, c.at, c.waited))
		})
	}
}

// TestAQueueThatEmptiesWhileRunnersRunIsNoNewsAtOnce: the memo says at
// once when a pool becomes dormant or stops being so (its agent's sweep
// reads it); a queue that empties or fills while runners run waits for
// the next counts (poolV2); poolV1 published that at once too.
func TestAQueueThatEmptiesWhileRunnersRunIsNoNewsAtOnce(t *testing.T) {
	view := func(busy, queued int) PoolView {
		return PoolView{Pool: "default", Counts: PoolCounts{Busy: busy, Queued: queued}}
	}
	assert.True(t, onlyCountsChangedV2(view(3, 0), view(3, 1)), "a job queued while runners run")
	assert.True(t, onlyCountsChangedV2(view(3, 1), view(4, 0)), "the queue emptied by a runner")
	assert.False(t, onlyCountsChangedV2(view(0, 0), view(0, 1)), "a dormant pool has a job")
	assert.False(t, onlyCountsChangedV2(view(1, 0), view(0, 0)), "the pool became dormant")
	assert.False(t, onlyCountsChanged(view(3, 0), view(3, 1)), "poolV1")
	b := view(3, 1)
	b.Degraded = true
	assert.False(t, onlyCountsChangedV2(view(3, 0), b), "more than counts")
}
