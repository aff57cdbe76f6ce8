package workflows

import (
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
)

// runnerEndsVersion is the workflow.GetVersion change that has a pool
// notice the end of runner workflows it holds no future of, and recheck
// the job of a runner lost while busy.
const runnerEndsVersion = "runner-ends"

// awaitRunnerEnds watches, through AwaitRunnerEnds on the server's queue,
// the runner workflows this run did not start (a run that continued as new
// lost their futures), so that one that ends without telling its pool
// (terminated, timed out, failed) leaves the pool. A wait that came back
// with nothing is not started again for a minute; it returns when the
// next may start.
func (r *repository) awaitRunnerEnds(ctx workflow.Context) time.Time {
	if r.awaitingEnds {
		return time.Time{}
	}
	if now := workflow.Now(ctx); now.Before(r.awaitAfter) {
		return r.awaitAfter
	}
	var ids []string
	for _, p := range r.pools {
		for _, rec := range p.s.Runners {
			if !r.tracked[rec.Name] {
				ids = append(ids, RunnerWorkflowID(r.owner, r.repo, rec.Name))
			}
		}
	}
	if len(ids) == 0 {
		return time.Time{}
	}
	slices.Sort(ids)
	actx, cancel := workflow.WithCancel(ctx)
	r.awaitingEnds, r.stopAwaitingEnds = true, cancel
	actx = workflow.WithActivityOptions(actx, workflow.ActivityOptions{
		TaskQueue:           ServerTaskQueue,
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    time.Minute,
		Summary:             "notice when runners of " + r.full() + " end",
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
	workflow.Go(ctx, func(gctx workflow.Context) {
		var ends []activities.RunnerEnd
		err := workflow.ExecuteActivity(actx, activities.AwaitRunnerEndsName, ids).Get(gctx, &ends)
		r.awaitingEnds, r.dirty = false, true
		if err != nil && actx.Err() == nil {
			r.log.Warn("Waiting for runner workflows to end failed; waiting again", "error", err)
		}
		if len(ends) == 0 {
			r.awaitAfter = workflow.Now(gctx).Add(time.Minute)
		}
		for _, end := range ends {
			r.runnerEnded(gctx, end)
		}
	})
	return time.Time{}
}

// runnerEnded removes a runner whose workflow has ended, if the pool still
// holds it: one that completed is gone; any other end is a failure.
func (r *repository) runnerEnded(ctx workflow.Context, end activities.RunnerEnd) {
	name := end.WorkflowID[strings.LastIndex(end.WorkflowID, "/")+1:]
	p, _ := r.runner(name)
	if p == nil {
		return
	}
	if end.Status == "completed" {
		p.onRunner(ctx, RunnerEvent{Name: name, State: RunnerDeleted})
		return
	}
	r.log.Warn("Runner workflow ended without telling its pool", "runner", name, "status", end.Status, "error", end.Error)
	p.onRunner(ctx, RunnerEvent{Name: name, State: RunnerFailed,
		Error: "runner workflow " + end.Status + ": " + end.Error})
}

// recheck has GitHub asked soon whether the job of a runner lost while it
// ran it is queued again: then it goes back into the queue.
func (r *repository) recheck(jobID int64) {
	if jobID == 0 {
		return
	}
	if !slices.Contains(r.s.Recheck, jobID) {
		r.s.Recheck = append(r.s.Recheck, jobID)
	}
	r.pollNow = true
}
