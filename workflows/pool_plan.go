package workflows

import (
	"fmt"
	"slices"
	"time"
)

// A pool's rule is a pure function of its state and the time (plan): it
// returns decisions, and the pool's loop carries them out
// (pool_exec.go). The rule:
//
//	wanted = min(maxRunners, busy + minIdle + queued)
//	start runners while provisioning + idle + busy < wanted, unless the
//	pool drains, backs off, or its agent is away (or not yet known);
//	idle runners beyond minIdle + queued, oldest idle first, are deleted
//	once idle for idleGracePeriod; if maxRunners was lowered, idle
//	runners go at once; a changed config cancels the runners still
//	provisioning beyond the new target, newest first; a runner not online
//	within bootstrapTimeout is given up (deleted, and the pool backs
//	off); a draining pool deletes its idle and provisioning runners.
//	Busy runners are never deleted.

// planInput is what the rule looks at.
type planInput struct {
	Config       PoolConfig
	Runners      []PoolRunner
	Queued       int
	Draining     bool
	AgentOffline bool
	// AgentUnchecked: the pool does not know yet whether its agent is
	// online.
	AgentUnchecked bool
	BackoffUntil   time.Time
	// Retarget: the config changed since the last plan.
	Retarget bool
	Now      time.Time
}

// deletion is one runner the rule wants gone, by its index in the
// runners, and why.
type deletion struct {
	Index  int
	Reason string
	// GiveUp: the runner failed (its bootstrap timed out).
	GiveUp bool
}

// poolPlan is what the rule decides.
type poolPlan struct {
	// Start is how many runners to start now.
	Start int
	// Delete are the runners to delete now.
	Delete []deletion
	// Wake is when the rule wants to look again (zero: on the next event
	// only).
	Wake time.Time
}

func (p *poolPlan) wake(t time.Time) {
	if p.Wake.IsZero() || t.Before(p.Wake) {
		p.Wake = t
	}
}

// counts sums the runners by state; a runner the pool wants gone counts
// as deleting.
func countRunners(runners []PoolRunner) PoolCounts {
	var c PoolCounts
	for _, r := range runners {
		switch {
		case r.DeleteWanted || r.GaveUp || r.State == RunnerDeleting:
			c.Deleting++
		case r.State == RunnerProvisioning:
			c.Provisioning++
		case r.State == RunnerIdle:
			c.Idle++
		case r.State == RunnerBusy:
			c.Busy++
		}
	}
	return c
}

// plan applies the pool's rule.
func plan(in planInput) poolPlan {
	var out poolPlan
	cfg := in.Config
	keep := func(r PoolRunner) bool { return !r.DeleteWanted && !r.GaveUp && r.State != RunnerDeleting }
	if in.Draining {
		for i, r := range in.Runners {
			if keep(r) && (r.State == RunnerProvisioning || r.State == RunnerIdle) {
				out.Delete = append(out.Delete, deletion{Index: i, Reason: "the pool is draining"})
			}
		}
		return out
	}
	// Runners that did not come online in time are given up first: they
	// count no more.
	gaveUp := map[int]bool{}
	for i, r := range in.Runners {
		if !keep(r) || r.State != RunnerProvisioning || r.Online {
			continue
		}
		deadline := r.CreatedAt.Add(cfg.BootstrapTimeout.D())
		if !in.Now.Before(deadline) {
			gaveUp[i] = true
			out.Delete = append(out.Delete, deletion{Index: i, GiveUp: true,
				Reason: fmt.Sprintf("runner did not come online within %s", cfg.BootstrapTimeout)})
		} else {
			out.wake(deadline)
		}
	}
	var c PoolCounts
	for i, r := range in.Runners {
		if keep(r) && !gaveUp[i] {
			c = addCount(c, r.State)
		}
	}
	wanted := min(cfg.MaxRunners, c.Busy+cfg.MinIdle+in.Queued)
	active := c.Provisioning + c.Idle + c.Busy
	if in.Retarget && active > wanted {
		// Cancel the runners still provisioning beyond the new target,
		// newest first.
		for i := len(in.Runners) - 1; i >= 0 && active > wanted; i-- {
			if r := in.Runners[i]; keep(r) && !gaveUp[i] && r.State == RunnerProvisioning {
				out.Delete = append(out.Delete, deletion{Index: i, Reason: "the pool's target is lower"})
				active--
			}
		}
	}
	if active < wanted && !in.AgentOffline && !in.AgentUnchecked {
		if in.Now.Before(in.BackoffUntil) {
			out.wake(in.BackoffUntil)
		} else {
			out.Start = wanted - active
		}
	}
	idle := idleRunners(in.Runners, keep)
	excess := len(idle) - (cfg.MinIdle + in.Queued)
	if over := active - cfg.MaxRunners; over > 0 && over > excess {
		// maxRunners was lowered: idle runners go at once.
		for _, i := range idle[:min(over, len(idle))] {
			out.Delete = append(out.Delete, deletion{Index: i, Reason: "the pool's maxRunners is lower"})
		}
		return out
	}
	for _, i := range idle[:max(0, min(excess, len(idle)))] {
		expiry := in.Runners[i].IdleSince.Add(cfg.IdleGracePeriod.D())
		if in.Now.Before(expiry) {
			out.wake(expiry)
			continue
		}
		out.Delete = append(out.Delete, deletion{Index: i, Reason: "idle beyond the pool's grace period"})
	}
	return out
}

func addCount(c PoolCounts, s RunnerState) PoolCounts {
	switch s {
	case RunnerProvisioning:
		c.Provisioning++
	case RunnerIdle:
		c.Idle++
	case RunnerBusy:
		c.Busy++
	}
	return c
}

// idleRunners are the indexes of the idle runners kept, oldest idle
// first.
func idleRunners(runners []PoolRunner, keep func(PoolRunner) bool) []int {
	var idle []int
	for i, r := range runners {
		if keep(r) && r.State == RunnerIdle {
			idle = append(idle, i)
		}
	}
	slices.SortStableFunc(idle, func(a, b int) int { return runners[a].IdleSince.Compare(runners[b].IdleSince) })
	return idle
}
