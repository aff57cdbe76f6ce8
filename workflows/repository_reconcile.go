package workflows

import (
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
)

// reconcileVersion is the workflow.GetVersion change that brought the
// reconciliation with GitHub: the repository keeps the jobs running on its
// runners, asks GitHub at least every reconcileEvery (and at once when
// asked to resync, or when an agent comes back) for its queued and started
// jobs, the end of its running jobs and the registration of its idle
// runners, and counts a job done when GitHub reports it ended, whether or
// not its webhook came.
const reconcileVersion = "github-reconcile"

// lateJobEventsVersion is the workflow.GetVersion change after which a
// job event that comes after its runner has gone (the runner's end was
// seen first) still counts in the pool that named the runner.
const lateJobEventsVersion = "late-job-events"

// vanishedJobsVersion is the workflow.GetVersion change after which a job
// that leaves GitHub's queue while both its in_progress and completed
// webhooks are missed is still counted where it ran.
const vanishedJobsVersion = "vanished-jobs"

// reconcileEvery is the longest a repository goes without reconciling with
// GitHub.
const reconcileEvery = time.Minute

// maxRunning bounds the jobs a repository keeps as running.
const maxRunning = 5000

// maxQueuedLookups bounds the queued jobs of a pool a reconciliation asks
// GitHub about (only those in no active run are looked up).
const maxQueuedLookups = 100

// active: something is in flight (a job waits or runs, a runner is
// provisioning, busy or going), so the repository reconciles with GitHub
// at least every reconcileEvery; a quiet one only at its pools'
// queuePollInterval, sparing Temporal a timer and an activity a minute.
func (r *repository) active() bool {
	if len(r.s.Running) > 0 || len(r.s.Recheck) > 0 || len(r.s.Unmatched) > 0 {
		return true
	}
	for _, p := range r.pools {
		if len(p.s.Queue) > 0 {
			return true
		}
		for _, rec := range p.s.Runners {
			if rec.State != RunnerIdle {
				return true
			}
		}
	}
	return false
}

// track records a job started on the runner of pool p.
func (r *repository) track(jobID int64, p *pool, runner string) {
	if indexOfJob(r.s.Running, jobID) >= 0 {
		return
	}
	if len(r.s.Running) >= maxRunning {
		r.log.Warn("Too many running jobs to keep; the oldest is forgotten", "job", r.s.Running[0].JobID, "limit", maxRunning)
		r.s.Running = r.s.Running[1:]
	}
	r.s.Running = append(r.s.Running, RunningJob{JobID: jobID, Pool: p.s.Name, Runner: runner})
}

// indexOfJob is the index of job id in jobs, or -1.
func indexOfJob(jobs []RunningJob, id int64) int {
	return slices.IndexFunc(jobs, func(j RunningJob) bool { return j.JobID == id })
}

// running finds a running job.
func (r *repository) running(jobID int64) (RunningJob, bool) {
	i := indexOfJob(r.s.Running, jobID)
	if i < 0 {
		return RunningJob{}, false
	}
	return r.s.Running[i], true
}

// untrack forgets a running job and returns what was kept of it.
func (r *repository) untrack(jobID int64) (RunningJob, bool) {
	i := indexOfJob(r.s.Running, jobID)
	if i < 0 {
		return RunningJob{}, false
	}
	j := r.s.Running[i]
	r.s.Running = slices.Delete(r.s.Running, i, i+1)
	return j, true
}

// onResync takes the resync signals: a reconciliation at once.
func (r *repository) onResync(ctx workflow.Context) {
	ch := workflow.GetSignalChannel(ctx, SignalResync)
	for {
		var req ResyncRequest
		if !ch.ReceiveAsync(&req) {
			return
		}
		if !r.pollNow {
			r.log.Info("Reconciling with GitHub at once", "reason", req.Reason)
		}
		r.pollNow, r.dirty = true, true
		if f := req.FailedSince; f != nil && (r.redeliverSince == nil || f.Before(*r.redeliverSince)) {
			r.redeliverSince = f
		}
	}
}

// startReconcile runs GitHubReconcile on the agent and applies its answer
// when it comes; r.polling is set until then.
func (r *repository) startReconcile(ctx workflow.Context, agent string, now time.Time) {
	in := r.reconcileInput()
	in.RedeliverSince, r.redeliverSince = r.redeliverSince, nil
	actx := r.pollOptions(ctx, agent, "reconcile", "reconcile "+r.full()+" with GitHub")
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { r.polling, r.dirty = false, true }()
		var got activities.Reconciliation
		if err := workflow.ExecuteActivity(actx, activities.GitHubReconcileName, in).Get(ctx, &got); err != nil {
			r.log.Warn("Reconciling with GitHub failed; trying again at the next turn", "agent", agent, "error", err)
			return
		}
		r.applyReconciled(ctx, now, in, got)
		switch {
		case got.RedeliverError != "":
			r.log.Warn("Failed webhooks not redelivered; the reconciliation stands in for them", "error", got.RedeliverError)
		case got.Redelivered > 0:
			r.log.Info("Asked GitHub to redeliver failed webhooks", "count", got.Redelivered, "since", in.RedeliverSince)
		}
	})
}

// reconcileInput is what a reconciliation asks GitHub about: the running
// jobs, and the idle runners that should be registered.
func (r *repository) reconcileInput() activities.ReconcileInput {
	in := activities.ReconcileInput{Repo: activities.Repo{Owner: r.owner, Name: r.repo}}
	for _, j := range r.s.Running {
		in.Running = append(in.Running, j.JobID)
	}
	// Queued jobs too: one that ran and ended while both its webhooks were
	// missed is in no active run, and is looked up (GitHub lists the
	// others as queued, which costs no lookup).
	for _, p := range r.pools {
		for _, j := range p.s.Queue[:min(len(p.s.Queue), maxQueuedLookups)] {
			in.Running = append(in.Running, j.JobID)
		}
	}
	for _, p := range r.pools {
		for _, rec := range p.s.Runners {
			if rec.State == RunnerIdle && !rec.DeleteSent {
				in.Runners = append(in.Runners, rec.Name)
			}
		}
	}
	return in
}

// applyReconciled brings the repository in line with GitHub's view taken
// at polledAt: jobs queued are routed, jobs started are bound, running jobs
// that ended are counted, and idle runners GitHub no longer lists are
// replaced. Each correction is logged: each is a webhook that was missed.
func (r *repository) applyReconciled(ctx workflow.Context, polledAt time.Time, asked activities.ReconcileInput, got activities.Reconciliation) {
	for _, j := range got.Ended {
		// A job still queued here that GitHub reports ended: it ran (or
		// was cancelled) unseen. It leaves the queue as running, so that
		// it is counted below where it ran.
		for _, p := range r.pools {
			if p.dequeue(j.ID) {
				r.track(j.ID, p, "")
			}
		}
	}
	r.applyPolled(polledAt, got.Queued)
	for _, j := range got.Started {
		if r.seen[jobKey(j.ID, JobInProgress)] || r.seen[jobKey(j.ID, JobCompleted)] {
			continue
		}
		if p, _ := r.runner(j.RunnerName); p == nil {
			continue // not on one of ours
		}
		r.log.Info("Job found in progress by reconciling: its webhook was missed", "job", j.ID, "runner", j.RunnerName)
		r.onJob(ctx, JobEvent{Action: JobInProgress, JobID: j.ID, RunID: j.RunID, Name: j.Name, Labels: j.Labels,
			RunnerName: j.RunnerName, CreatedAt: timeOrNil(j.CreatedAt), StartedAt: j.StartedAt})
	}
	for _, j := range got.Ended {
		run, ok := r.running(j.ID)
		if !ok {
			continue
		}
		runner := j.RunnerName
		if runner == "" {
			runner = run.Runner
		}
		switch {
		case r.seen[jobKey(j.ID, JobCompleted)]:
			r.untrack(j.ID)
		case j.Status != "completed":
			r.untrack(j.ID)
			r.log.Warn("A running job is unknown to GitHub; it is forgotten", "job", j.ID, "runner", run.Runner)
		case !r.ours(runner):
			// It left the queue unseen and ended on no runner of ours
			// (cancelled, or run elsewhere): not ours to count.
			r.untrack(j.ID)
			r.log.Info("Job ended on no runner of this repository", "job", j.ID, "runner", runner, "conclusion", j.Conclusion)
		default:
			r.log.Info("Job found ended by reconciling: its webhook was missed", "job", j.ID, "runner", runner, "conclusion", j.Conclusion)
			r.onJob(ctx, JobEvent{Action: JobCompleted, JobID: j.ID, RunID: j.RunID, RunnerName: runner, Conclusion: j.Conclusion,
				CreatedAt: timeOrNil(j.CreatedAt), StartedAt: j.StartedAt, CompletedAt: j.CompletedAt})
		}
	}
	r.replaceUnregistered(ctx, polledAt, asked.Runners, got.Runners)
}

// replaceUnregistered deletes the idle runners GitHub no longer lists (its
// registration was removed, or the runner took a job and finished it while
// both webhooks were missed), so that the pool starts others. A runner
// idle for less than pollGrace before the look is left for the next one.
func (r *repository) replaceUnregistered(ctx workflow.Context, polledAt time.Time, asked []string, listed []activities.RunnerState) {
	for _, name := range asked {
		if slices.ContainsFunc(listed, func(s activities.RunnerState) bool { return s.Name == name }) {
			continue
		}
		p, rec := r.runner(name)
		if p == nil || rec.State != RunnerIdle || rec.DeleteSent || rec.IdleSince == nil || rec.IdleSince.After(polledAt.Add(-pollGrace)) {
			continue
		}
		p.log.Warn("Idle runner no longer registered on GitHub; replacing it", "runner", name)
		p.deleteRunner(ctx, rec)
	}
}

// ours: runner is named as this repository names its runners.
func (r *repository) ours(runner string) bool {
	return strings.HasPrefix(runner, "garo-"+r.s.Prefix+"-")
}

// poolOfRunner is the pool that named a runner of this repository:
// garo-PREFIX-N is the default pool's, garo-PREFIX-POOL-N pool POOL's.
func (r *repository) poolOfRunner(runner string) *pool {
	if !r.ours(runner) {
		return nil
	}
	rest := strings.TrimPrefix(runner, "garo-"+r.s.Prefix+"-")
	i := strings.LastIndex(rest, "-")
	if i < 0 {
		return r.pool(DefaultPool)
	}
	return r.pool(rest[:i])
}

// countEnded counts a job that ended (ev is its completed event) on a
// runner the pool has forgotten.
func (r *repository) countEnded(ctx workflow.Context, ev JobEvent) {
	run, ok := r.untrack(ev.JobID)
	if !ok {
		return
	}
	if p := r.pool(run.Pool); p != nil {
		p.countEnd(ctx, nil, ev)
	}
}

// timeOrNil is t, or nil when it is zero.
func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
