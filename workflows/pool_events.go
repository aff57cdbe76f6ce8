package workflows

import (
	"slices"
	"strconv"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
)

// What a pool takes in: job events and runner reports (intake), the
// repository's routes, its agent's status, and requests to resync. Each
// changes the state only; the loop then acts on it (pool_exec.go), so a
// signal taken in the task that continues as new loses nothing.

func (p *poolWorkflow) signalsWaiting(ctx workflow.Context) bool {
	for _, name := range []string{SignalIntake, SignalRoutes, SignalAgent, SignalResync} {
		if workflow.GetSignalChannel(ctx, name).Len() > 0 {
			return true
		}
	}
	return false
}

// takeSignals applies every buffered signal.
func (p *poolWorkflow) takeSignals(ctx workflow.Context) { p.takeSignalsUpTo(ctx, 0) }

// takeSignalsUpTo applies the buffered signals, the intake's up to about
// limit events (0: all of them). The rest is held for the next workflow
// task (p.held): a task that applies tens of thousands of events at once
// would pass the SDK's deadlock detection (a second without yielding).
func (p *poolWorkflow) takeSignalsUpTo(ctx workflow.Context, limit int) {
	intake := workflow.GetSignalChannel(ctx, SignalIntake)
	for {
		if limit > 0 && p.taken >= limit {
			p.held = intake.Len() > 0
			p.more = p.more || p.held
			break
		}
		var b IntakeBatch
		if !intake.ReceiveAsync(&b) {
			break
		}
		p.taken += len(b.Jobs) + len(b.Runners)
		p.signals++
		if len(b.Jobs) > 0 {
			p.lastJobAt = p.now
		}
		for _, ev := range b.Jobs {
			p.onJob(ev, b.RoutesVersion)
		}
		for _, r := range b.Runners {
			p.onReport(r)
		}
	}
	routes := workflow.GetSignalChannel(ctx, SignalRoutes)
	for {
		var r Routes
		if !routes.ReceiveAsync(&r) {
			break
		}
		p.signals++
		if r.Version > p.s.Routes.Version {
			p.takeRoutes(r.Sorted(), false)
			p.s.ReconcileNow = true // jobs another pool gave up are learnt from GitHub
			p.dirty = true
		}
	}
	agents := workflow.GetSignalChannel(ctx, SignalAgent)
	for {
		var ev AgentStatusEvent
		if !agents.ReceiveAsync(&ev) {
			break
		}
		p.signals++
		p.onAgent(ev)
	}
	resync := workflow.GetSignalChannel(ctx, SignalResync)
	for {
		var req ResyncRequest
		if !resync.ReceiveAsync(&req) {
			break
		}
		p.signals++
		if !p.s.ReconcileNow {
			p.log.Info("Reconciling with GitHub at once", "reason", req.Reason)
		}
		p.s.ReconcileNow, p.dirty = true, true
		if f := req.FailedSince; f != nil && (p.s.RedeliverSince == nil || f.Before(*p.s.RedeliverSince)) {
			p.s.RedeliverSince = f
		}
	}
	p.pruneUnmatched(workflow.Now(ctx))
}

// onAgent pauses or resumes provisioning when the pool's agent went
// offline or came back. It is news newer than an answer still on its way.
func (p *poolWorkflow) onAgent(ev AgentStatusEvent) {
	if ev.Agent != p.s.Config.Agent || (!p.s.AgentUnchecked && p.s.AgentOffline != ev.Online) {
		return
	}
	p.s.AgentOffline, p.s.AgentUnchecked, p.dirty = !ev.Online, false, true
	p.log.Info("Pool's agent status changed", "agent", ev.Agent, "online", ev.Online)
	if ev.Online {
		// What happened while it was away is learnt from GitHub.
		p.s.ReconcileNow = true
	}
}

// onJob applies a workflow_job event. Events are deduplicated by job and
// action and may come in any order. A queued job counts in the pool's
// queue (or the repository's unmatched jobs, or goes to the pool that
// fits it); a job is bound to a runner only when GitHub reports it in
// progress on that runner.
func (p *poolWorkflow) onJob(ev JobEvent, version int64) {
	action := ev.Action
	if action == JobWaiting {
		action = JobQueued
	}
	m := p.s.Marks.get(ev.JobID)
	switch action {
	case JobQueued:
		if m&(markQueued|markStarted|markEnded) != 0 {
			return // a duplicate, or it started or ended already
		}
		p.s.Marks.set(ev.JobID, markQueued)
		p.dirty = true
		at := p.now
		if ev.CreatedAt != nil && ev.CreatedAt.Before(at) {
			at = *ev.CreatedAt
		}
		p.place(QueuedJob{JobID: ev.JobID, RunID: ev.RunID, Name: shortName(ev.Name), Labels: ev.Labels, QueuedAt: at},
			ev.Unmatched, version, true)
	case JobInProgress:
		delete(p.ranUnseen, ev.RunnerName)
		if m&(markStarted|markEnded) != 0 {
			return
		}
		p.s.Marks.set(ev.JobID, markStarted)
		p.dirty = true
		q := p.dequeue(ev.JobID, m, ev.Routed)
		if i := p.runnerIndex(ev.RunnerName); i >= 0 {
			p.jobStarted(i, ev, q.QueuedAt)
		} else if p.ownsName(ev.RunnerName) {
			// Its runner ended before this event came: the job is still
			// counted when its end comes.
			p.countWait(q.QueuedAt, ev)
			p.addOrphan(ev.JobID, ev.RunnerName)
		}
	case JobCompleted:
		delete(p.ranUnseen, ev.RunnerName)
		if m&markEnded != 0 {
			return
		}
		p.s.Marks.set(ev.JobID, markEnded)
		p.dirty = true
		if m&markStarted == 0 {
			p.dequeue(ev.JobID, m, ev.Routed)
		}
		if i := p.runnerIndex(ev.RunnerName); i >= 0 {
			p.jobDone(i, ev, m)
		} else if p.takeOrphan(ev.JobID) || p.ownsName(ev.RunnerName) {
			// Its runner has gone (its end came first, or this event came
			// late): it is counted where it ran.
			p.countEnd(nil, ev, m)
		}
		p.retryLost(ev)
	}
}

// shortName bounds a job's name as the pool keeps it.
func shortName(name string) string {
	if len(name) > 64 {
		return name[:64]
	}
	return name
}

// place puts a queued job where it belongs: the server's routing stands
// unless the pool's routes are newer, then the pool routes it itself.
func (p *poolWorkflow) place(j QueuedJob, unmatched bool, version int64, fresh bool) {
	if version < p.s.Routes.Version {
		dest, ok := p.s.Routes.Route(j.Labels)
		switch {
		case ok && dest == p.ref.Pool:
			unmatched = false
		case ok:
			p.forward(dest, j, false)
			return
		default:
			if k := p.s.Routes.Keeper(); k != "" && k != p.ref.Pool {
				p.forward(k, j, true)
				return
			}
			unmatched = true
		}
	}
	if unmatched {
		p.keepUnmatched(j, fresh)
		return
	}
	p.enqueue(j)
}

// enqueue counts a job in the pool's queue: in the page while it has
// room, else by number only.
func (p *poolWorkflow) enqueue(j QueuedJob) {
	p.s.Marks.set(j.JobID, markQueued|markCounted)
	if len(p.s.Queue) < queuePage {
		p.s.Queue = insertByAge(p.s.Queue, j)
		return
	}
	p.s.QueueRest++
}

// dequeue takes a job out of the pool's queue (or its unmatched jobs) and
// returns what the page knew of it. m are the job's marks before the event;
// routed: the server routed the event to this pool, so a job the pool
// does not remember (its marks forgotten) counted in its rest.
func (p *poolWorkflow) dequeue(id int64, m uint8, routed bool) QueuedJob {
	p.s.Marks.clear(id, markCounted)
	if i := slices.IndexFunc(p.s.Queue, func(j QueuedJob) bool { return j.JobID == id }); i >= 0 {
		j := p.s.Queue[i]
		p.s.Queue = slices.Delete(p.s.Queue, i, i+1)
		return j
	}
	if i := slices.IndexFunc(p.s.Unmatched, func(j QueuedJob) bool { return j.JobID == id }); i >= 0 {
		j := p.s.Unmatched[i]
		p.s.Unmatched = slices.Delete(p.s.Unmatched, i, i+1)
		return j
	}
	if p.s.QueueRest > 0 && (m&markCounted != 0 || (m == 0 && routed)) {
		p.s.QueueRest--
	}
	return QueuedJob{}
}

// keepUnmatched keeps a job no pool fits; fresh counts it as new.
func (p *poolWorkflow) keepUnmatched(j QueuedJob, fresh bool) {
	if slices.ContainsFunc(p.s.Unmatched, func(u QueuedJob) bool { return u.JobID == j.JobID }) {
		return
	}
	if fresh {
		p.s.UnmatchedTotal++
		p.log.Info("Queued job fits no pool", "job", j.JobID, "labels", j.Labels)
	}
	if len(p.s.Unmatched) >= maxPoolUnmatched {
		p.log.Warn("Too many jobs fit no pool; the oldest is forgotten", "job", p.s.Unmatched[0].JobID, "limit", maxPoolUnmatched)
		p.s.Unmatched = p.s.Unmatched[1:]
	}
	p.s.Unmatched = insertByAge(p.s.Unmatched, j)
}

// pruneUnmatched forgets unmatched jobs GitHub has cancelled by now.
func (p *poolWorkflow) pruneUnmatched(now time.Time) {
	p.s.Unmatched = slices.DeleteFunc(p.s.Unmatched, func(j QueuedJob) bool { return now.Sub(j.QueuedAt) >= unmatchedMaxAge })
}

// forward has a job handed on to another pool of the repository.
func (p *poolWorkflow) forward(pool string, j QueuedJob, unmatched bool) {
	p.s.Marks.clear(j.JobID, markCounted)
	if len(p.s.Forwards) >= maxForwards {
		p.log.Warn("Too many jobs to hand on; the oldest is left to the reconciliation of its pool",
			"job", p.s.Forwards[0].Job.JobID, "pool", p.s.Forwards[0].Pool)
		p.s.Forwards = p.s.Forwards[1:]
	}
	p.s.Forwards = append(p.s.Forwards, Forward{Pool: pool, Job: j, Unmatched: unmatched})
	p.dirty = true
}

// takeRoutes takes the repository's routes, with the pool's own entry as
// it is, and hands on the jobs another pool now fits better: those of its
// page, and the unmatched ones (all of them, when another pool keeps them
// now). A draining pool hands on its whole page, and leaves the jobs it
// knows by number only to the other pools' reconciliations. own: the
// pool itself changed, a newer version of the routes.
func (p *poolWorkflow) takeRoutes(r Routes, own bool) {
	if p.s.Configured {
		r = r.With(RouteEntry{Pool: p.ref.Pool, Labels: p.s.Config.Labels, Draining: p.s.Draining})
	}
	if own {
		r.Version = max(r.Version+1, p.now.UnixMilli())
	}
	p.s.Routes = r
	kept := p.s.Queue[:0]
	for _, j := range p.s.Queue {
		dest, ok := r.Route(j.Labels)
		switch {
		case ok && dest == p.ref.Pool:
			kept = append(kept, j)
		case ok:
			p.forward(dest, j, false)
		default:
			if k := r.Keeper(); k != p.ref.Pool && k != "" {
				p.forward(k, j, true)
			} else {
				p.keepUnmatched(j, false)
			}
		}
	}
	clear(p.s.Queue[len(kept):])
	p.s.Queue = kept
	if p.s.Draining && p.s.QueueRest > 0 {
		p.log.Info("Draining pool leaves the jobs it counts to the other pools' reconciliations", "jobs", p.s.QueueRest)
		p.s.QueueRest = 0
	}
	keeper := r.Keeper()
	unmatched := p.s.Unmatched
	p.s.Unmatched = nil
	for _, j := range unmatched {
		dest, ok := r.Route(j.Labels)
		switch {
		case ok && dest == p.ref.Pool:
			p.enqueue(j)
		case ok:
			p.forward(dest, j, false)
		case keeper != p.ref.Pool && keeper != "":
			p.forward(keeper, j, true)
		default:
			p.s.Unmatched = append(p.s.Unmatched, j)
		}
	}
}

// onReport applies what an agent reports of one of the pool's runners; a
// report of a runner the pool does not hold (it ended already), or from
// another agent than the runner's, changes nothing.
func (p *poolWorkflow) onReport(r activities.RunnerReport) {
	i := p.runnerIndex(r.Runner)
	if i < 0 {
		return
	}
	if rec := p.s.Runners[i]; rec.Agent != r.Agent {
		p.log.Warn("Runner report from another agent than the runner's; ignored", "runner", r.Runner, "from", r.Agent,
			"agent", rec.Agent)
		return
	}
	if r.Event == activities.ReportEnded {
		p.runnerEnded(i, r.Outcome, r.ExitCode, r.Error)
	}
}

// runnerEnded removes a runner whose life is over. One that went as the
// pool asked, or ended cleanly, is gone; an ephemeral runner that ended
// cleanly while busy has done its job, which is counted when its end is
// seen. Any other end is a failure: the pool backs off, and a job the
// runner was running is lost (and rechecked).
func (p *poolWorkflow) runnerEnded(i int, outcome string, code int, errText string) {
	rec := p.s.Runners[i]
	p.accrue(&rec, p.now)
	p.s.Runners = slices.Delete(p.s.Runners, i, i+1)
	p.dirty = true
	name := p.runnerName(rec)
	if rec.GaveUp {
		return // failed already
	}
	clean := outcome == activities.OutcomeDeleted || (outcome == activities.OutcomeExited && code == 0) || rec.DeleteWanted ||
		rec.State == RunnerDeleting
	if clean {
		if rec.JobID != 0 && !p.s.Marks.has(rec.JobID, markEnded) {
			p.addOrphan(rec.JobID, name)
		}
		if p.version >= poolV2 && rec.JobID == 0 && p.s.Config.Ephemeral && outcome == activities.OutcomeExited &&
			!rec.DeleteWanted && rec.State != RunnerDeleting && p.queued() > 0 {
			// It ran a job whose webhook has not come yet.
			p.ranUnseen[name] = p.now
		}
		return
	}
	var reason string
	switch outcome {
	case activities.OutcomeFailed:
		reason = "create runner " + name + ": " + errText
	case activities.OutcomeVanished:
		reason = "runner " + name + " lost: its instance vanished"
	default:
		reason = "runner " + name + " lost: its instance exited with code " + strconv.Itoa(code)
		if errText != "" {
			reason = "runner " + name + " lost: " + errText
		}
	}
	switch rec.State {
	case RunnerBusy:
		p.recheck(rec.JobID)
		p.lost(rec.JobID, name)
		p.countLost(rec.JobID)
	case RunnerProvisioning:
		p.countBootstrapFailure()
	}
	p.fail(reason, name)
}

// fail counts a failed runner: the pool is degraded and backs off
// (10 s x 2^(n-1), at most 10 min) before its next start.
func (p *poolWorkflow) fail(reason, runner string) {
	p.s.Failures++
	backoff := min(backoffMax, backoffFirst<<min(p.s.Failures-1, 10))
	p.s.BackoffUntil = p.now.Add(backoff)
	p.s.Degraded, p.s.LastError = true, reason
	p.log.Warn("Runner failed; pool degraded", "runner", runner, "error", reason, "failures", p.s.Failures, "backoff", backoff)
}

// recovered clears the pool's failures: one of its runners came online.
func (p *poolWorkflow) recovered() {
	if p.s.Degraded {
		p.log.Info("Pool recovered")
	}
	p.s.Failures, p.s.Degraded, p.s.LastError, p.s.BackoffUntil = 0, false, "", time.Time{}
}

// jobStarted binds a job GitHub reports in progress (ev) to the pool's
// runner i. Its busy time counts from when GitHub says it started, when
// the event comes late.
func (p *poolWorkflow) jobStarted(i int, ev JobEvent, queuedAt time.Time) {
	r := &p.s.Runners[i]
	p.accrue(r, p.eventTime(r, ev.StartedAt))
	r.Online = true
	if ev.RunnerID != 0 {
		r.RunnerID = ev.RunnerID
	}
	p.countWait(queuedAt, ev)
	p.recovered()
	if r.State == RunnerDeleting || r.DeleteWanted {
		// Asked to go: it finishes its job first (GitHub refuses to
		// remove a busy runner), counted as going.
		r.JobID = ev.JobID
		return
	}
	r.State, r.JobID, r.IdleSince = RunnerBusy, ev.JobID, time.Time{}
}

// jobDone counts a job the pool's runner i finished (ev is its completed
// event, m the job's marks before it): an ephemeral runner then ends by
// itself, a reusable one is idle again.
func (p *poolWorkflow) jobDone(i int, ev JobEvent, m uint8) {
	r := &p.s.Runners[i]
	p.countEnd(r, ev, m)
	p.accrue(r, p.eventTime(r, ev.CompletedAt))
	r.Online, r.JobID = true, 0
	if r.State == RunnerDeleting || r.DeleteWanted {
		return
	}
	if p.s.Config.Ephemeral {
		r.State, r.IdleSince = RunnerDeleting, time.Time{}
		return
	}
	r.State, r.IdleSince = RunnerIdle, p.now
}

// addOrphan keeps a job whose runner has ended before its end was seen.
func (p *poolWorkflow) addOrphan(id int64, runner string) {
	if id == 0 || indexOfJob(p.s.Orphans, id) >= 0 {
		return
	}
	if len(p.s.Orphans) >= maxPoolLost {
		p.s.Orphans = p.s.Orphans[1:]
	}
	p.s.Orphans = append(p.s.Orphans, RunningJob{JobID: id, Pool: p.ref.Pool, Runner: runner})
}

// takeOrphan forgets an orphaned job; it reports whether it was one.
func (p *poolWorkflow) takeOrphan(id int64) bool {
	i := indexOfJob(p.s.Orphans, id)
	if i < 0 {
		return false
	}
	p.s.Orphans = slices.Delete(p.s.Orphans, i, i+1)
	return true
}

// recheck has GitHub asked soon whether the job of a runner lost while it
// ran it is queued again: then it goes back into the queue.
func (p *poolWorkflow) recheck(id int64) {
	if id == 0 {
		return
	}
	if !slices.Contains(p.s.Recheck, id) {
		p.s.Recheck = append(p.s.Recheck, id)
		if len(p.s.Recheck) > maxPoolLost {
			p.s.Recheck = p.s.Recheck[1:]
		}
	}
	p.s.ReconcileNow = true
}

// lost records that job id was running on runner when that runner was
// lost, if the pool retries lost jobs.
func (p *poolWorkflow) lost(id int64, runner string) {
	if id == 0 || !p.s.Config.RetryLostJobs || slices.Contains(p.s.Retried, id) || indexOfJob(p.s.Lost, id) >= 0 {
		return
	}
	if len(p.s.Lost) >= maxPoolLost {
		p.s.Lost = p.s.Lost[1:]
	}
	p.s.Lost = append(p.s.Lost, RunningJob{JobID: id, Pool: p.ref.Pool, Runner: runner})
}

// retryLost has a lost job run again, once, when GitHub reports that it
// failed: it is recorded as retried, and the re-run is an intent the loop
// carries out (and a run that continues as new carries on).
func (p *poolWorkflow) retryLost(ev JobEvent) {
	i := indexOfJob(p.s.Lost, ev.JobID)
	if i < 0 {
		return
	}
	lost := p.s.Lost[i]
	p.s.Lost = slices.Delete(p.s.Lost, i, i+1)
	if ev.Conclusion != "failure" || slices.Contains(p.s.Retried, ev.JobID) {
		return
	}
	if len(p.s.Retried) >= maxPoolLost {
		p.s.Retried = p.s.Retried[1:]
	}
	p.s.Retried = append(p.s.Retried, ev.JobID)
	p.s.Reruns = append(p.s.Reruns, ev.JobID)
	p.log.Info("Job failed because its runner was lost; running it again, once", "job", ev.JobID, "runner", lost.Runner)
}
