package workflows

import (
	"fmt"
	"sort"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Limits and timing of a pool.
const (
	maxQueue      = 10000
	backoffFirst  = 10 * time.Second
	backoffMax    = 10 * time.Minute
	maxRunnerName = 64
)

// pool is one runner pool of a repository: its config, runners and queue.
// Its rules are here; the repository routes jobs and events to it.
type pool struct {
	r   *repository
	s   PoolState
	log log.Logger
	// asking: the pool is asking its agent's status. retarget: its config
	// changed, so runners provisioning beyond the target are cancelled.
	asking, retarget bool
}

func newPool(r *repository, s PoolState) *pool {
	return &pool{r: r, s: s, log: log.With(r.log, "pool", s.Name)}
}

func (p *pool) runner(name string) *RunnerRecord {
	if name == "" {
		return nil
	}
	for i := range p.s.Runners {
		if p.s.Runners[i].Name == name {
			return &p.s.Runners[i]
		}
	}
	return nil
}

func (p *pool) removeRunner(name string) {
	for i := range p.s.Runners {
		if p.s.Runners[i].Name == name {
			p.s.Runners = append(p.s.Runners[:i], p.s.Runners[i+1:]...)
			return
		}
	}
}

// dequeue removes job id from the queue; it reports whether it was there.
func (p *pool) dequeue(id int64) bool {
	_, ok := p.take(id)
	return ok
}

// take removes job id from the queue and returns it, if it was there.
func (p *pool) take(id int64) (QueuedJob, bool) {
	for i, q := range p.s.Queue {
		if q.JobID == id {
			p.s.Queue = append(p.s.Queue[:i], p.s.Queue[i+1:]...)
			return q, true
		}
	}
	return QueuedJob{}, false
}

// jobStarted binds a job GitHub reports in progress (ev) to the pool's
// runner. Its busy time counts from when GitHub says it started, when the
// event comes late.
func (p *pool) jobStarted(ctx workflow.Context, r *RunnerRecord, ev JobEvent) {
	p.accrue(r, p.eventTime(ctx, r, ev.StartedAt))
	if r.State == RunnerDeleting {
		return
	}
	r.State, r.JobID, r.IdleSince = RunnerBusy, ev.JobID, nil
	p.control(ctx, r.Name, RunnerControl{Action: ControlBusy, JobID: ev.JobID})
}

// jobDone counts a job the pool's runner finished (ev is its completed
// event): an ephemeral runner then deletes itself, a reusable one is idle
// again.
func (p *pool) jobDone(ctx workflow.Context, r *RunnerRecord, ev JobEvent) {
	now := workflow.Now(ctx)
	p.countEnd(ctx, r, ev)
	p.accrue(r, p.eventTime(ctx, r, ev.CompletedAt))
	p.control(ctx, r.Name, RunnerControl{Action: ControlJobDone, JobID: ev.JobID})
	if r.State == RunnerDeleting {
		return
	}
	if p.s.Config.Ephemeral {
		r.State, r.DeleteSent = RunnerDeleting, true
		return
	}
	r.State, r.JobID, r.IdleSince = RunnerIdle, 0, &now
}

// onRunner applies what one of its runner workflows reports.
func (p *pool) onRunner(ctx workflow.Context, ev RunnerEvent) {
	r := p.runner(ev.Name)
	if r == nil {
		return
	}
	p.r.dirty = true
	now := workflow.Now(ctx)
	p.accrue(r, now)
	switch ev.State {
	case RunnerIdle:
		r.RunnerID = ev.RunnerID
		if r.State == RunnerProvisioning {
			r.State, r.IdleSince = RunnerIdle, &now
		}
		if p.s.Degraded {
			p.log.Info("Pool recovered")
		}
		p.s.Failures, p.s.Degraded, p.s.LastError, p.s.BackoffUntil = 0, false, "", time.Time{}
	case RunnerDeleted:
		p.removeRunner(ev.Name)
	case RunnerFailed:
		switch r.State {
		case RunnerBusy:
			p.r.recheck(r.JobID)
			p.r.lost(p, r.Name, r.JobID)
			p.countLost(now, r.JobID)
		case RunnerProvisioning:
			p.countBootstrapFailure(now)
		}
		p.removeRunner(ev.Name)
		p.s.Failures++
		backoff := min(backoffMax, backoffFirst<<min(p.s.Failures-1, 10))
		p.s.BackoffUntil = now.Add(backoff)
		p.s.Degraded, p.s.LastError = true, ev.Error
		p.log.Warn("Runner failed; pool degraded", "runner", ev.Name, "error", ev.Error, "failures", p.s.Failures, "backoff", backoff)
	}
}

// control signals a runner without waiting on the main loop.
func (p *pool) control(ctx workflow.Context, name string, c RunnerControl) {
	f := workflow.SignalExternalWorkflow(ctx, RunnerWorkflowID(p.r.owner, p.r.repo, name), "", SignalControl, c)
	p.r.signaling++
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { p.r.signaling-- }()
		if err := f.Get(ctx, nil); err != nil {
			p.log.Debug("Runner did not take a control", "runner", name, "action", c.Action, "error", err)
		}
	})
}

func (p *pool) counts() PoolCounts {
	c := PoolCounts{Queued: len(p.s.Queue), JobsDone: p.s.JobsDone}
	for _, r := range p.s.Runners {
		switch r.State {
		case RunnerProvisioning:
			c.Provisioning++
		case RunnerIdle:
			c.Idle++
		case RunnerBusy:
			c.Busy++
		case RunnerDeleting:
			c.Deleting++
		}
	}
	return c
}

// reconcile starts and deletes runners by the pool's rule and returns when
// it next needs to look again (zero: on the next event only).
//
//	wanted = min(maxRunners, busy + minIdle + queued); start runners while
//	provisioning + idle + busy < wanted; idle runners beyond minIdle and
//	the queue are deleted once idle for idleGracePeriod.
func (p *pool) reconcile(ctx workflow.Context) time.Time {
	if p.s.Draining {
		for i := range p.s.Runners {
			r := &p.s.Runners[i]
			if !r.DeleteSent && (r.State == RunnerProvisioning || r.State == RunnerIdle) {
				p.deleteRunner(ctx, r)
			}
		}
		return time.Time{}
	}
	now := workflow.Now(ctx)
	cfg, c := p.s.Config, p.counts()
	var next time.Time
	wake := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	wanted := min(cfg.MaxRunners, c.Busy+cfg.MinIdle+c.Queued)
	active := c.Provisioning + c.Idle + c.Busy
	if p.retarget {
		p.retarget = false
		active -= p.cancelProvisioning(ctx, active-wanted)
	}
	if active < wanted && !p.s.AgentOffline && !p.s.AgentUnchecked {
		if now.Before(p.s.BackoffUntil) {
			wake(p.s.BackoffUntil)
		} else {
			for ; active < wanted; active++ {
				p.startRunner(ctx)
			}
		}
	}
	idle := p.idleRunners()
	excess := len(idle) - (cfg.MinIdle + c.Queued)
	if over := active - cfg.MaxRunners; over > 0 && over > excess {
		// maxRunners was lowered: idle runners go at once.
		for _, r := range idle[:min(over, len(idle))] {
			p.deleteRunner(ctx, r)
		}
		return next
	}
	for _, r := range idle[:max(0, min(excess, len(idle)))] {
		expiry := r.IdleSince.Add(cfg.IdleGracePeriod.D())
		if !now.Before(expiry) {
			p.deleteRunner(ctx, r)
		} else {
			wake(expiry)
		}
	}
	return next
}

// cancelProvisioning deletes up to n runners that are still provisioning,
// the newest first, and returns how many.
func (p *pool) cancelProvisioning(ctx workflow.Context, n int) int {
	done := 0
	for i := len(p.s.Runners) - 1; i >= 0 && done < n; i-- {
		if r := &p.s.Runners[i]; r.State == RunnerProvisioning && !r.DeleteSent {
			p.log.Info("Runner cancelled: the pool's target is lower", "runner", r.Name)
			p.deleteRunner(ctx, r)
			done++
		}
	}
	return done
}

// idleRunners are the idle runners not yet asked to go, oldest idle first.
func (p *pool) idleRunners() []*RunnerRecord {
	var idle []*RunnerRecord
	for i := range p.s.Runners {
		if r := &p.s.Runners[i]; r.State == RunnerIdle && !r.DeleteSent && r.IdleSince != nil {
			idle = append(idle, r)
		}
	}
	sort.SliceStable(idle, func(i, j int) bool { return idle[i].IdleSince.Before(*idle[j].IdleSince) })
	return idle
}

func (p *pool) deleteRunner(ctx workflow.Context, r *RunnerRecord) {
	p.accrue(r, workflow.Now(ctx))
	r.DeleteSent = true
	r.State = RunnerDeleting
	p.control(ctx, r.Name, RunnerControl{Action: ControlDelete})
}

// runnerName names the pool's next runner: unique on GitHub (the
// repository's prefix and sequence), and telling its pool unless that is
// the default pool.
func (p *pool) runnerName() string {
	p.r.s.Seq++
	name := fmt.Sprintf("garo-%s-%d", p.r.s.Prefix, p.r.s.Seq)
	if p.s.Name != DefaultPool {
		name = fmt.Sprintf("garo-%s-%s-%d", p.r.s.Prefix, p.s.Name, p.r.s.Seq)
	}
	if len(name) > maxRunnerName {
		name = name[:maxRunnerName]
	}
	return name
}

// startRunner starts a RunnerWorkflow child; it outlives the repository's
// run (ABANDON), so continue-as-new does not end it.
func (p *pool) startRunner(ctx workflow.Context) {
	name, cfg, full := p.runnerName(), p.s.Config, p.r.full()
	group, _ := RunnerGroupID(cfg.RunnerGroup)
	now := workflow.Now(ctx)
	p.s.Runners = append(p.s.Runners, RunnerRecord{Name: name, State: RunnerProvisioning, CreatedAt: now, Since: now})
	opts := workflow.ChildWorkflowOptions{
		WorkflowID:        RunnerWorkflowID(p.r.owner, p.r.repo, name),
		TaskQueue:         ServerTaskQueue,
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		StaticSummary:     fmt.Sprintf("runner %s of pool %s of %s on agent %s", name, p.s.Name, full, cfg.Agent),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			SearchAttributeAgent.ValueSet(cfg.Agent),
			SearchAttributeRepository.ValueSet(full),
			SearchAttributeRunnerState.ValueSet(string(RunnerProvisioning))),
	}
	in := RunnerInput{RepositoryID: workflow.GetInfo(ctx).WorkflowExecution.ID, Pool: p.s.Name,
		Owner: p.r.owner, Repo: p.r.repo, Name: name, Agent: cfg.Agent, Labels: cfg.Labels, GroupID: group,
		Ephemeral: cfg.Ephemeral, BootstrapTimeout: cfg.BootstrapTimeout, Provider: cfg.Provider}
	f := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), RunnerWorkflowName, in)
	p.r.starting++
	p.r.tracked[name] = true
	workflow.Go(ctx, func(ctx workflow.Context) {
		err := f.GetChildWorkflowExecution().Get(ctx, nil)
		p.r.starting--
		if err != nil {
			p.onRunner(ctx, RunnerEvent{Name: name, State: RunnerFailed, Error: "start runner workflow: " + err.Error()})
			return
		}
		var res RunnerResult
		if err := f.Get(ctx, &res); err != nil && p.runner(name) != nil {
			p.onRunner(ctx, RunnerEvent{Name: name, State: RunnerFailed, Error: "runner workflow: " + err.Error()})
		}
	})
}

// summary is the pool's view without its runners and queue: what the memo
// carries.
func (p *pool) summary() PoolView {
	v := PoolView{Repository: p.r.full(), Pool: p.s.Name, Config: p.s.Config, Draining: p.s.Draining,
		Degraded: p.s.Degraded, AgentOffline: p.s.AgentOffline, LastError: p.s.LastError, Counts: p.counts(),
		ConfiguredBy: p.s.ConfiguredBy}
	for _, j := range p.s.Queue {
		if !j.QueuedAt.IsZero() && (v.OldestQueuedAt.IsZero() || j.QueuedAt.Before(v.OldestQueuedAt)) {
			v.OldestQueuedAt = j.QueuedAt
		}
	}
	return v
}

func (p *pool) view() PoolView {
	v := p.summary()
	v.Runners, v.Queue = []RunnerView{}, append([]QueuedJob{}, p.s.Queue...)
	for _, r := range p.s.Runners {
		v.Runners = append(v.Runners, RunnerView{Name: r.Name, State: r.State, RunnerID: r.RunnerID, JobID: r.JobID,
			CreatedAt: r.CreatedAt, IdleSince: r.IdleSince})
	}
	return v
}

// samePublished reports whether the memo shows v as it is: what it
// publishes of a pool is unchanged. OldestQueuedAt is left out: it
// changes with the queue, whose count already publishes it (and a memo
// upsert is a command, which running workflows must replay as before).
func samePublished(a, b PoolView) bool {
	return a.Pool == b.Pool && a.Counts == b.Counts && a.Degraded == b.Degraded && a.Draining == b.Draining &&
		a.AgentOffline == b.AgentOffline && a.LastError == b.LastError && a.ConfiguredBy == b.ConfiguredBy &&
		a.Config.Equal(b.Config)
}
