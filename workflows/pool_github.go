package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
)

// A pool reconciles with GitHub (GitHubReconcile on its agent): while
// something is in flight, at least every reconcileEvery when its
// webhooks have stopped (no job event for that long) and every
// flowingEvery while they come; at its queuePollInterval when quiet; and
// at once when asked (resync, its agent back, its routes changed). Each
// correction is logged as the webhook it stands for. Between those, it
// asks GitHub only about its runners not known online (a look at the
// runners, no look at the runs).

// flowingEvery is how often a busy pool whose webhooks come reconciles:
// its look at many queued runs costs GitHub requests, and the webhooks
// tell the same.
const flowingEvery = 5 * time.Minute

// active: something is in flight (a job waits or runs, a runner is
// provisioning, busy or going), so the pool reconciles at least every
// reconcileEvery.
func (p *poolWorkflow) active() bool {
	if p.queued() > 0 || len(p.s.Orphans) > 0 || len(p.s.Recheck) > 0 || len(p.s.Unmatched) > 0 || len(p.s.Lost) > 0 {
		return true
	}
	for _, r := range p.s.Runners {
		if r.State != RunnerIdle || r.DeleteWanted {
			return true
		}
	}
	return false
}

// dormant: the pool has nothing in flight and no runner: it waits for
// webhooks, and for its agent's sweep.
func (p *poolWorkflow) dormant() bool { return !p.active() && len(p.s.Runners) == 0 && !p.s.Draining }

// onlineCandidates are the runners started, not yet known online, old
// enough to be looked up; soonest is when the next becomes so.
func (p *poolWorkflow) onlineCandidates() (names []string, soonest time.Time) {
	for _, r := range p.s.Runners {
		if r.State != RunnerProvisioning || r.Online || r.DeleteWanted || r.GaveUp || !r.Started {
			continue
		}
		at := r.CreatedAt.Add(onlineLookFirst)
		if p.now.Before(at) {
			if soonest.IsZero() || at.Before(soonest) {
				soonest = at
			}
			continue
		}
		names = append(names, p.runnerName(r))
	}
	return names, soonest
}

// reconcileGitHub starts a reconciliation, or a look at the runners not
// known online, when one is due; it returns when the next is.
func (p *poolWorkflow) reconcileGitHub(ctx workflow.Context) time.Time {
	if !p.s.Configured || p.reconciling || p.s.AgentOffline || p.s.AgentUnchecked {
		return time.Time{}
	}
	var next time.Time
	wake := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	every := p.s.Config.QueuePollInterval.D()
	if p.active() {
		busy := reconcileEvery
		if p.now.Sub(p.lastJobAt) < reconcileEvery {
			busy = flowingEvery
		}
		if every <= 0 || every > busy {
			every = busy
		}
	}
	full := p.s.ReconcileNow
	if p.dormant() {
		// No timer: its agent's sweep asks it to look when GitHub has runs
		// for it (SweepWorkflow).
		every = 0
	}
	if every > 0 && !full {
		if due := p.s.LastReconcile.Add(every); p.now.Before(due) {
			wake(due)
		} else {
			full = true
		}
	}
	online, soonest := p.onlineCandidates()
	wake(soonest)
	if !full {
		if len(online) == 0 {
			p.onlineEvery = 0
			return next
		}
		if p.now.Before(p.onlineAt) {
			wake(p.onlineAt)
			return next
		}
	}
	if !p.command() {
		return next
	}
	in := activities.ReconcileInput{Repo: activities.Repo{Owner: p.ref.Owner, Name: p.ref.Repo}, Runners: online, RunnersOnly: !full}
	if full {
		in.Running = p.runningJobs()
		for _, r := range p.s.Runners {
			if r.State == RunnerIdle && !r.DeleteWanted {
				in.Runners = append(in.Runners, p.runnerName(r))
			}
		}
		in.RedeliverSince = p.s.RedeliverSince
		p.s.LastReconcile, p.s.ReconcileNow = p.now, false
		wake(p.now.Add(max(every, pollGrace)))
	}
	if len(online) > 0 {
		p.onlineEvery = min(max(2*p.onlineEvery, onlineLookFirst), onlineLookMax)
		p.onlineAt = p.now.Add(p.onlineEvery)
		wake(p.onlineAt)
	}
	p.startReconcile(ctx, in)
	return next
}

// startReconcile runs GitHubReconcile on the pool's agent and applies its
// answer when it comes.
func (p *poolWorkflow) startReconcile(ctx workflow.Context, in activities.ReconcileInput) {
	polledAt, agent := p.now, p.s.Config.Agent
	what, summary := "reconcile", "reconcile pool "+p.ref.Pool+" of "+p.ref.Repository()+" with GitHub"
	if in.RunnersOnly {
		what, summary = "runners", "look up new runners of pool "+p.ref.Pool+" of "+p.ref.Repository()+" on GitHub"
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              AgentTaskQueue(agent),
		ActivityID:             p.agentActivityID(agent, what),
		ScheduleToStartTimeout: time.Minute,
		StartToCloseTimeout:    time.Minute,
		Summary:                summary,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3},
	})
	p.reconciling = true
	f := workflow.ExecuteActivity(actx, activities.GitHubReconcileName, in)
	workflow.Go(ctx, func(ctx workflow.Context) {
		var got activities.Reconciliation
		err := f.Get(ctx, &got)
		p.reconciling, p.dirty = false, true
		if err != nil {
			p.log.Warn("Reconciling with GitHub failed; trying again at the next turn", "agent", agent, "error", err)
			if !in.RunnersOnly {
				p.s.ReconcileNow = true
			}
			return
		}
		p.now = workflow.Now(ctx)
		p.applyReconciled(polledAt, in, got)
		if in.RedeliverSince != nil && p.s.RedeliverSince != nil && !p.s.RedeliverSince.Before(*in.RedeliverSince) {
			// The window asked for has been redelivered; a later refusal
			// set an earlier one, kept for the next look.
			p.s.RedeliverSince = nil
		}
		switch {
		case got.RedeliverError != "":
			p.log.Warn("Failed webhooks not redelivered; the reconciliation stands in for them", "error", got.RedeliverError)
		case got.Redelivered > 0:
			p.log.Info("Asked GitHub to redeliver failed webhooks", "count", got.Redelivered, "since", in.RedeliverSince)
		}
	})
}

// runningJobs are the jobs a reconciliation asks GitHub the end of: those
// running on the pool's runners, those whose runner has gone, the lost
// ones, and the first queued ones (one that ran and ended while both its
// webhooks were missed is in no active run).
func (p *poolWorkflow) runningJobs() []int64 {
	var ids []int64
	add := func(id int64) {
		if id != 0 && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, r := range p.s.Runners {
		add(r.JobID)
	}
	for _, j := range p.s.Orphans {
		add(j.JobID)
	}
	for _, j := range p.s.Lost {
		add(j.JobID)
	}
	for _, j := range p.s.Queue[:min(len(p.s.Queue), maxQueuedLookups)] {
		add(j.JobID)
	}
	return ids
}

// applyReconciled brings the pool in line with GitHub's view taken at
// polledAt.
func (p *poolWorkflow) applyReconciled(polledAt time.Time, asked activities.ReconcileInput, got activities.Reconciliation) {
	p.takeOnline(got.Runners)
	if asked.RunnersOnly {
		return
	}
	for _, j := range got.Ended {
		// A job still queued here that GitHub reports ended ran (or was
		// cancelled) unseen: it leaves the queue, and is counted below if
		// it ran on a runner of the pool.
		if i := slices.IndexFunc(p.s.Queue, func(q QueuedJob) bool { return q.JobID == j.ID }); i >= 0 {
			p.dequeue(j.ID, p.s.Marks.get(j.ID), true)
			p.addOrphan(j.ID, "")
		}
	}
	p.applyQueued(polledAt, got.Queued, got.QueuedComplete)
	for _, j := range got.Started {
		if p.s.Marks.has(j.ID, markStarted|markEnded) || p.runnerIndex(j.RunnerName) < 0 {
			continue
		}
		p.log.Info("Job found in progress by reconciling: its webhook was missed", "job", j.ID, "runner", j.RunnerName)
		p.onJob(JobEvent{Action: JobInProgress, JobID: j.ID, RunID: j.RunID, Name: j.Name, Labels: j.Labels,
			RunnerName: j.RunnerName, CreatedAt: timeOrNil(j.CreatedAt), StartedAt: j.StartedAt, Routed: p.routesHere(j.Labels)}, 0)
	}
	for _, j := range got.Ended {
		p.applyEnded(j)
	}
	p.replaceUnregistered(polledAt, asked.Runners, got.Runners)
}

// routesHere reports whether a job of these labels routes to this pool.
func (p *poolWorkflow) routesHere(labels []string) bool {
	dest, ok := p.s.Routes.Route(labels)
	return ok && dest == p.ref.Pool
}

// tracks reports whether the pool follows job id: running on one of its
// runners, ended unseen, or lost.
func (p *poolWorkflow) tracks(id int64) bool {
	return slices.ContainsFunc(p.s.Runners, func(r PoolRunner) bool { return r.JobID == id }) ||
		indexOfJob(p.s.Orphans, id) >= 0 || indexOfJob(p.s.Lost, id) >= 0
}

// applyEnded applies GitHub's word that a job the pool follows ended.
func (p *poolWorkflow) applyEnded(j activities.JobState) {
	if !p.tracks(j.ID) {
		return
	}
	runner := j.RunnerName
	if runner == "" {
		if i := indexOfJob(p.s.Orphans, j.ID); i >= 0 {
			runner = p.s.Orphans[i].Runner
		}
	}
	switch {
	case p.s.Marks.has(j.ID, markEnded):
		p.takeOrphan(j.ID)
	case j.Status != "completed":
		p.takeOrphan(j.ID)
		p.log.Warn("A running job is unknown to GitHub; it is forgotten", "job", j.ID)
	case !p.ownsName(runner) && p.runnerIndex(runner) < 0:
		// It left the queue unseen and ended on no runner of the pool
		// (cancelled, or run elsewhere): not the pool's to count.
		p.takeOrphan(j.ID)
		p.log.Info("Job ended on no runner of this pool", "job", j.ID, "runner", runner, "conclusion", j.Conclusion)
	default:
		p.log.Info("Job found ended by reconciling: its webhook was missed", "job", j.ID, "runner", runner, "conclusion", j.Conclusion)
		p.onJob(JobEvent{Action: JobCompleted, JobID: j.ID, RunID: j.RunID, RunnerName: runner, Conclusion: j.Conclusion,
			CreatedAt: timeOrNil(j.CreatedAt), StartedAt: j.StartedAt, CompletedAt: j.CompletedAt}, 0)
	}
}

// applyQueued reconciles the queue with GitHub's queued jobs taken at
// polledAt: a job routed to the pool whose webhook never came is counted;
// one counted by number only is put in the page while it has room; one
// GitHub no longer lists (older than pollGrace) leaves the page, and the
// next look learns how it ended. When the list is complete and no job
// event came since it was taken, the number of jobs counted beyond the
// page is set to what it shows.
func (p *poolWorkflow) applyQueued(polledAt time.Time, jobs []activities.QueuedJob, complete bool) {
	slices.SortStableFunc(jobs, func(a, b activities.QueuedJob) int { return a.CreatedAt.Compare(b.CreatedAt) })
	settled := complete && p.lastJobAt.Before(polledAt)
	listed := map[int64]bool{}
	beyond := 0
	keeper := p.s.Routes.Keeper() == p.ref.Pool
	recheck := p.s.Recheck
	p.s.Recheck = nil
	for _, j := range jobs {
		listed[j.ID] = true
		q := QueuedJob{JobID: j.ID, RunID: j.RunID, Name: shortName(j.Name), Labels: j.Labels, QueuedAt: j.CreatedAt}
		m := p.s.Marks.get(j.ID)
		if slices.Contains(recheck, j.ID) && m&markEnded == 0 {
			p.log.Info("The job of a lost runner is queued again", "job", j.ID)
			p.s.Marks.clear(j.ID, markStarted)
			p.dequeue(j.ID, m, false)
			if len(p.s.Queue) >= queuePage {
				beyond++
			}
			p.enqueue(q)
			continue
		}
		beyond += p.listedQueued(q, m, complete, settled, keeper)
	}
	if !complete {
		return
	}
	keep := func(q []QueuedJob, leave func(QueuedJob)) []QueuedJob {
		return slices.DeleteFunc(q, func(j QueuedJob) bool {
			if listed[j.JobID] || j.QueuedAt.After(polledAt.Add(-pollGrace)) {
				return false
			}
			leave(j)
			return true
		})
	}
	p.s.Queue = keep(p.s.Queue, func(j QueuedJob) {
		p.log.Info("Job no longer queued on GitHub: it started or was cancelled", "job", j.JobID)
		p.s.Marks.clear(j.JobID, markCounted)
		// Its start was missed: the next look learns how it ended, and
		// on which runner.
		p.addOrphan(j.JobID, "")
	})
	p.s.Unmatched = keep(p.s.Unmatched, func(QueuedJob) {})
	if settled && beyond != p.s.QueueRest {
		p.log.Info("Queued jobs counted beyond the page set from GitHub", "was", p.s.QueueRest, "now", beyond)
		p.s.QueueRest = beyond
	}
}

// listedQueued takes one job GitHub lists as queued (m its marks), and
// returns 1 when it counts in the pool beyond the page.
func (p *poolWorkflow) listedQueued(q QueuedJob, m uint8, complete, settled, keeper bool) int {
	dest, fits := p.s.Routes.Route(q.Labels)
	switch {
	case m&(markStarted|markEnded) != 0:
	case fits && dest == p.ref.Pool:
		switch {
		case slices.ContainsFunc(p.s.Queue, func(x QueuedJob) bool { return x.JobID == q.JobID }):
		case m&markCounted != 0 || (m == 0 && p.s.QueueRest > 0 && !complete):
			// Counted by number: into the page, while it has room.
			if len(p.s.Queue) < queuePage {
				if p.s.QueueRest > 0 {
					p.s.QueueRest--
				}
				p.s.Marks.set(q.JobID, markQueued|markCounted)
				p.s.Queue = insertByAge(p.s.Queue, q)
				return 0
			}
			if settled {
				p.s.Marks.set(q.JobID, markQueued|markCounted)
			}
			return 1
		case m&markQueued != 0:
			// Handed on, or kept as unmatched: its pool has it.
		default:
			p.log.Info("Queued job found by reconciling: its webhook was missed", "job", q.JobID)
			beyond := len(p.s.Queue) >= queuePage
			p.enqueue(q)
			if beyond {
				return 1
			}
		}
	case !fits && keeper && m&markQueued == 0:
		p.s.Marks.set(q.JobID, markQueued)
		p.log.Info("Queued job found by reconciling: its webhook was missed", "job", q.JobID)
		p.keepUnmatched(q, true)
	}
	return 0
}

// takeOnline takes GitHub's status of runners asked about: one online is
// up (idle, or busy if GitHub says so).
func (p *poolWorkflow) takeOnline(listed []activities.RunnerState) {
	for _, s := range listed {
		i := p.runnerIndex(s.Name)
		if i < 0 {
			continue
		}
		r := &p.s.Runners[i]
		if s.ID != 0 {
			r.RunnerID = s.ID
		}
		if s.Status != "online" || r.Online {
			continue
		}
		r.Online = true
		p.recovered()
		if r.State == RunnerProvisioning && !r.DeleteWanted {
			p.accrue(r, p.now)
			r.State, r.IdleSince = RunnerIdle, p.now
			if s.Busy {
				r.State, r.IdleSince = RunnerBusy, time.Time{}
			}
		}
	}
}

// replaceUnregistered deletes the idle runners GitHub no longer lists (its
// registration was removed, or the runner took a job and finished it while
// both webhooks were missed), so that the pool starts others. A runner
// idle for less than pollGrace before the look is left for the next one.
func (p *poolWorkflow) replaceUnregistered(polledAt time.Time, asked []string, listed []activities.RunnerState) {
	for _, name := range asked {
		if slices.ContainsFunc(listed, func(s activities.RunnerState) bool { return s.Name == name }) {
			continue
		}
		i := p.runnerIndex(name)
		if i < 0 {
			continue
		}
		r := p.s.Runners[i]
		if r.State != RunnerIdle || r.DeleteWanted || r.IdleSince.IsZero() || r.IdleSince.After(polledAt.Add(-pollGrace)) {
			continue
		}
		p.log.Warn("Idle runner no longer registered on GitHub; replacing it", "runner", name)
		p.wantDelete(deletion{Index: i, Reason: "no longer registered on GitHub"})
	}
}
