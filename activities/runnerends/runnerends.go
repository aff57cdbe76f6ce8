// Package runnerends tells, on the server's task queue, when runner
// workflows end: a pool that continued as new no longer holds the futures
// of the runners it started before, and a runner workflow that ends
// without telling its pool (terminated, timed out, failed) must not stay
// in the pool for good.
package runnerends

import (
	"context"
	"errors"
	"sort"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/garo-run/garo/activities"
)

// Activities run on the garo-server task queue with a Temporal client.
type Activities struct {
	Client client.Client
	// Gather is how long AwaitRunnerEnds waits, after a first runner
	// ended, for others that end with it (default 1s).
	Gather time.Duration
}

// Register adds the activities to r under their names.
func (a *Activities) Register(r worker.ActivityRegistry) {
	r.RegisterActivityWithOptions(a.AwaitRunnerEnds, activity.RegisterOptions{Name: activities.AwaitRunnerEndsName})
}

// margin is how long before its deadline AwaitRunnerEnds returns, so that
// the pool starts the next wait rather than retrying this one.
const margin = 30 * time.Second

// AwaitRunnerEnds waits until one of the runner workflows (by id; across
// their continue-as-new runs) has ended and returns those that have, with
// how. It heartbeats meanwhile; a little before its deadline it returns
// none, and the pool waits again.
func (a *Activities) AwaitRunnerEnds(ctx context.Context, ids []string) ([]activities.RunnerEnd, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ends := make(chan activities.RunnerEnd, len(ids))
	for _, id := range ids {
		go func() {
			if end, ok := a.await(ctx, id); ok {
				ends <- end
			}
		}()
	}
	until := time.Now().Add(time.Hour)
	if d, ok := ctx.Deadline(); ok {
		until = d.Add(-margin)
	}
	beat := time.NewTicker(10 * time.Second)
	defer beat.Stop()
	expire := time.NewTimer(time.Until(until))
	defer expire.Stop()
	for {
		select {
		case end := <-ends:
			return a.gather(ctx, end, ends), nil
		case <-beat.C:
			activity.RecordHeartbeat(ctx)
		case <-expire.C:
			return nil, nil
		case <-activity.GetWorkerStopChannel(ctx):
			return nil, errors.New("the server is stopping; the wait goes on on another")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// gather collects the runners that end with the first, for a moment.
func (a *Activities) gather(ctx context.Context, first activities.RunnerEnd, ends <-chan activities.RunnerEnd) []activities.RunnerEnd {
	out := []activities.RunnerEnd{first}
	wait := a.Gather
	if wait == 0 {
		wait = time.Second
	}
	deadline := time.After(wait)
	for {
		select {
		case end := <-ends:
			out = append(out, end)
		case <-deadline:
			sort.Slice(out, func(i, j int) bool { return out[i].WorkflowID < out[j].WorkflowID })
			return out
		case <-ctx.Done():
			return out
		}
	}
}

// await waits for the workflow id to end; ok is false when ctx ended
// first.
func (a *Activities) await(ctx context.Context, id string) (activities.RunnerEnd, bool) {
	err := a.Client.GetWorkflow(ctx, id, "").Get(ctx, nil)
	if ctx.Err() != nil {
		return activities.RunnerEnd{}, false
	}
	end := activities.RunnerEnd{WorkflowID: id, Status: "completed"}
	if err == nil {
		return end, true
	}
	end.Status, end.Error = status(err), err.Error()
	activity.GetLogger(ctx).Info("Runner workflow ended", "workflowId", id, "status", end.Status, "error", err)
	return end, true
}

func status(err error) string {
	var (
		notFound   *serviceerror.NotFound
		terminated *temporal.TerminatedError
		timeout    *temporal.TimeoutError
		canceled   *temporal.CanceledError
	)
	switch {
	case errors.As(err, &notFound):
		return "notFound"
	case errors.As(err, &terminated):
		return "terminated"
	case errors.As(err, &timeout):
		return "timedOut"
	case errors.As(err, &canceled):
		return "canceled"
	}
	return "failed"
}
