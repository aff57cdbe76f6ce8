package workflows

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
)

// pollGrace keeps a job that GitHub created this recently in the queue even
// when a poll does not list it (the list is a snapshot).
const pollGrace = time.Minute

// takeSignals applies every buffered signal. Signals are taken by the main
// loop only, so that none is in flight when the run continues as new.
func (r *repository) takeSignals(ctx workflow.Context) {
	jobs, runners := workflow.GetSignalChannel(ctx, SignalJob), workflow.GetSignalChannel(ctx, SignalRunner)
	for {
		var ev JobEvent
		if !jobs.ReceiveAsync(&ev) {
			break
		}
		r.onJob(ctx, ev)
	}
	for {
		var ev RunnerEvent
		if !runners.ReceiveAsync(&ev) {
			break
		}
		if p, _ := r.runner(ev.Name); p != nil {
			p.onRunner(ctx, ev)
		}
	}
	agents := workflow.GetSignalChannel(ctx, SignalAgent)
	for {
		var ev AgentStatusEvent
		if !agents.ReceiveAsync(&ev) {
			break
		}
		r.onAgent(ev)
	}
	r.onResync(ctx)
	r.pruneUnmatched(workflow.Now(ctx))
}

func (r *repository) signalsWaiting(ctx workflow.Context) bool {
	return workflow.GetSignalChannel(ctx, SignalJob).Len() > 0 || workflow.GetSignalChannel(ctx, SignalRunner).Len() > 0 ||
		workflow.GetSignalChannel(ctx, SignalAgent).Len() > 0 || workflow.GetSignalChannel(ctx, SignalResync).Len() > 0 ||
		workflow.GetSignalChannel(ctx, SignalMigrate).Len() > 0
}

// markSeen records a job event; it reports false for a duplicate.
func (r *repository) markSeen(key string) bool {
	if r.seen[key] {
		return false
	}
	r.seen[key] = true
	r.s.Seen = append(r.s.Seen, key)
	if len(r.s.Seen) > dedupeWindow {
		delete(r.seen, r.s.Seen[0])
		r.s.Seen = r.s.Seen[1:]
	}
	return true
}

func jobKey(id int64, action string) string { return fmt.Sprintf("%d/%s", id, action) }

// onJob applies a workflow_job event. Events are deduplicated by job and
// action and may come in any order. A queued job goes to one pool's queue
// (or the unmatched list); a job is bound to a runner only when GitHub
// reports it in progress on that runner, of whichever pool.
func (r *repository) onJob(ctx workflow.Context, ev JobEvent) {
	action := ev.Action
	if action == JobWaiting {
		action = JobQueued
	}
	if !r.markSeen(jobKey(ev.JobID, action)) {
		return
	}
	r.dirty = true
	switch action {
	case JobQueued:
		if r.seen[jobKey(ev.JobID, JobInProgress)] || r.seen[jobKey(ev.JobID, JobCompleted)] {
			return // it started or ended already: this event came late
		}
		now := workflow.Now(ctx)
		at := now
		if ev.CreatedAt != nil && ev.CreatedAt.Before(now) {
			at = *ev.CreatedAt
		}
		r.enqueue(QueuedJob{JobID: ev.JobID, RunID: ev.RunID, Name: ev.Name, Labels: ev.Labels, QueuedAt: at}, true)
	case JobInProgress:
		q := r.dequeue(ev.JobID)
		if r.seen[jobKey(ev.JobID, JobCompleted)] {
			return
		}
		if p, rec := r.runner(ev.RunnerName); p != nil {
			p.jobStarted(ctx, rec, ev)
			p.countWait(workflow.Now(ctx), q.QueuedAt, ev)
			r.track(ev.JobID, p, ev.RunnerName)
		} else if p := r.poolOfRunner(ev.RunnerName); p != nil {
			// Its runner ended before this event came: the job is still
			// counted when its end comes.
			p.countWait(workflow.Now(ctx), q.QueuedAt, ev)
			r.track(ev.JobID, p, ev.RunnerName)
		}
	case JobCompleted:
		r.dequeue(ev.JobID)
		if p, rec := r.runner(ev.RunnerName); p != nil {
			r.untrack(ev.JobID)
			p.jobDone(ctx, rec, ev)
		} else if _, tracked := r.running(ev.JobID); tracked {
			// Its runner is gone already (its end came first, or this
			// event was late): it is counted where it ran.
			r.countEnded(ctx, ev)
		} else if p := r.poolOfRunner(ev.RunnerName); p != nil {
			// Neither its runner nor its start was seen here in time.
			p.countEnd(ctx, nil, ev)
		}
		r.retryLost(ctx, ev)
	}
}

// route picks the pool a job goes to: among the pools that take jobs and
// whose labels include all of the job's (case-insensitively), the one with
// the fewest extra labels, ties by name; nil when none fits.
func (r *repository) route(labels []string) *pool {
	candidates := make([][]string, len(r.pools))
	for i, p := range r.pools {
		if !p.s.Draining {
			candidates[i] = p.s.Config.Labels
		}
	}
	if i := matchPool(labels, candidates); i >= 0 {
		return r.pools[i]
	}
	return nil
}

// enqueue puts a job in the queue of its pool, or in the unmatched list;
// fresh counts it as a newly queued job.
func (r *repository) enqueue(j QueuedJob, fresh bool) {
	p := r.route(j.Labels)
	if p == nil {
		if fresh {
			r.s.UnmatchedTotal++
			r.log.Info("Queued job fits no pool", "job", j.JobID, "labels", j.Labels)
		}
		if len(r.s.Unmatched) >= MaxUnmatched {
			r.s.Unmatched = r.s.Unmatched[1:]
		}
		r.s.Unmatched = insertByAge(r.s.Unmatched, j)
		return
	}
	if len(p.s.Queue) >= maxQueue {
		p.log.Warn("Queue full; job dropped", "job", j.JobID, "limit", maxQueue)
		return
	}
	if fresh {
		p.s.Queue = append(p.s.Queue, j)
		return
	}
	p.s.Queue = insertByAge(p.s.Queue, j)
}

// insertByAge inserts j after every job queued at or before it.
func insertByAge(q []QueuedJob, j QueuedJob) []QueuedJob {
	i := sort.Search(len(q), func(i int) bool { return q[i].QueuedAt.After(j.QueuedAt) })
	q = append(q, QueuedJob{})
	copy(q[i+1:], q[i:])
	q[i] = j
	return q
}

// dequeue removes a job from whichever queue holds it, and returns it
// (zero when none did).
func (r *repository) dequeue(id int64) QueuedJob {
	for _, p := range r.pools {
		if j, ok := p.take(id); ok {
			return j
		}
	}
	for i, j := range r.s.Unmatched {
		if j.JobID == id {
			r.s.Unmatched = append(r.s.Unmatched[:i], r.s.Unmatched[i+1:]...)
			return j
		}
	}
	return QueuedJob{}
}

// reroute routes every waiting job again, after the pools changed: a job
// another pool now fits better moves there, an unmatched job that a pool
// now fits joins its queue, and the jobs of a draining pool find another.
func (r *repository) reroute() {
	var all []QueuedJob
	for _, p := range r.pools {
		all = append(all, p.s.Queue...)
		p.s.Queue = nil
	}
	all = append(all, r.s.Unmatched...)
	r.s.Unmatched = nil
	sort.SliceStable(all, func(i, j int) bool { return all[i].QueuedAt.Before(all[j].QueuedAt) })
	for _, j := range all {
		r.enqueue(j, false)
	}
}

// pruneUnmatched forgets unmatched jobs GitHub has cancelled by now.
func (r *repository) pruneUnmatched(now time.Time) {
	kept := r.s.Unmatched[:0]
	for _, j := range r.s.Unmatched {
		if now.Sub(j.QueuedAt) < unmatchedMaxAge {
			kept = append(kept, j)
		}
	}
	r.s.Unmatched = kept
}

// poller is the pool whose agent asks GitHub for the queued jobs: the
// first, by name, of those that poll (interval set, not draining, agent
// online); every is the shortest interval among them. When a poll is
// wanted now, any pool whose agent is online will do.
func (r *repository) poller() (p *pool, every time.Duration) {
	busy := r.active()
	for _, q := range r.pools {
		d := q.s.Config.QueuePollInterval.D()
		if busy && (d <= 0 || d > reconcileEvery) {
			d = reconcileEvery
		}
		if d <= 0 || q.s.Draining || q.s.AgentOffline {
			continue
		}
		if p == nil {
			p = q
		}
		if every == 0 || d < every {
			every = d
		}
	}
	if p == nil && r.pollNow {
		for _, q := range r.pools {
			if !q.s.Draining && !q.s.AgentOffline {
				return q, 0
			}
		}
	}
	return p, every
}

// pollQueue asks GitHub, through an agent, for the queued jobs, when the
// poll interval has passed; it returns when the next poll is due.
func (r *repository) pollQueue(ctx workflow.Context) time.Time {
	p, every := r.poller()
	if p == nil {
		return time.Time{}
	}
	now := workflow.Now(ctx)
	due := r.s.LastPoll.Add(every)
	if r.polling {
		return time.Time{}
	}
	if now.Before(due) && !r.pollNow {
		return due
	}
	r.polling, r.s.LastPoll, r.pollNow = true, now, false
	if every == 0 {
		every = pollGrace // a one-off poll: the next is asked for, if any
	}
	r.startReconcile(ctx, p.s.Config.Agent, now)
	return now.Add(every)
}

// pollOptions runs a look at GitHub on the agent's queue.
func (r *repository) pollOptions(ctx workflow.Context, agent, what, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              AgentTaskQueue(agent),
		ActivityID:             r.agentActivityID(agent, what),
		ScheduleToStartTimeout: time.Minute,
		StartToCloseTimeout:    time.Minute,
		Summary:                summary,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3},
	})
}

// agentActivityID names the next activity on agent's queue.
func (r *repository) agentActivityID(agent, what string) string {
	r.agentCalls++
	return AgentActivityID(agent, what, r.agentCalls)
}

// applyPolled reconciles the queues with GitHub's list of queued jobs taken
// at polledAt: jobs whose queued webhook never came are routed; jobs
// GitHub no longer lists as queued (they started or were cancelled, and
// that webhook was missed) leave the queues.
func (r *repository) applyPolled(polledAt time.Time, jobs []activities.QueuedJob) {
	sort.SliceStable(jobs, func(i, j int) bool { return jobs[i].CreatedAt.Before(jobs[j].CreatedAt) })
	listed := map[int64]bool{}
	recheck := r.s.Recheck
	r.s.Recheck = nil
	for _, j := range jobs {
		listed[j.ID] = true
		if slices.Contains(recheck, j.ID) && !r.seen[jobKey(j.ID, JobCompleted)] {
			r.log.Info("The job of a lost runner is queued again", "job", j.ID)
			r.dequeue(j.ID)
			r.enqueue(QueuedJob{JobID: j.ID, RunID: j.RunID, Name: j.Name, Labels: j.Labels, QueuedAt: j.CreatedAt}, false)
			continue
		}
		if r.seen[jobKey(j.ID, JobQueued)] || r.seen[jobKey(j.ID, JobInProgress)] || r.seen[jobKey(j.ID, JobCompleted)] {
			continue
		}
		r.markSeen(jobKey(j.ID, JobQueued))
		r.log.Info("Queued job found by polling: its webhook was missed", "job", j.ID)
		r.enqueue(QueuedJob{JobID: j.ID, RunID: j.RunID, Name: j.Name, Labels: j.Labels, QueuedAt: j.CreatedAt}, true)
	}
	keep := func(p *pool, q []QueuedJob) []QueuedJob {
		kept := q[:0]
		for _, j := range q {
			if listed[j.JobID] || j.QueuedAt.After(polledAt.Add(-pollGrace)) {
				kept = append(kept, j)
				continue
			}
			r.log.Info("Job no longer queued on GitHub: it started or was cancelled", "job", j.JobID)
			if p != nil {
				// Its start was missed: the next reconciliation learns
				// how it ended, and on which runner.
				r.track(j.JobID, p, "")
			}
		}
		return kept
	}
	for _, p := range r.pools {
		p.s.Queue = keep(p, p.s.Queue)
	}
	r.s.Unmatched = keep(nil, r.s.Unmatched)
}
