// Package runnerlife holds the server's side of runners' lives, on the
// garo-server task queue: starting a pool's runner workflows in batches
// (a pool holds no child workflow, so no Temporal limit on children
// applies however many runners it starts), and finding those that ended
// without their agent's report.
package runnerlife

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/workflows"
)

// Activities run on the garo-server task queue with a Temporal client.
type Activities struct {
	Client    client.Client
	Namespace string
	// Logger logs what the watches for runners' ends could not do.
	Logger *slog.Logger

	// ends is the one look of this server for runners that ended unseen,
	// shared by every pool's watch.
	endsOnce sync.Once
	ends     *endsHub
}

// Register adds the activities to r under their names.
func (a *Activities) Register(r worker.ActivityRegistry) {
	r.RegisterActivityWithOptions(a.StartRunners, activity.RegisterOptions{Name: activities.StartRunnersName})
	r.RegisterActivityWithOptions(a.WatchRunnerEnds, activity.RegisterOptions{Name: activities.WatchRunnerEndsName})
}

// parallel bounds the calls to Temporal one activity makes at once.
const parallel = 16

// StartRunners starts the runner workflows of a pool. Safe to retry: a
// runner whose workflow exists, or has run, counts as started (its id is
// never reused). An error Temporal may mend fails the call, to be tried
// again; a start Temporal refuses for good is reported for that runner.
func (a *Activities) StartRunners(ctx context.Context, in workflows.StartRunnersInput) (workflows.StartRunnersResult, error) {
	var (
		mu     sync.Mutex
		out    workflows.StartRunnersResult
		failed error
		wg     sync.WaitGroup
		sem    = make(chan struct{}, parallel)
		done   int
	)
	for _, r := range in.Runners {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := a.start(ctx, in.Pool, r)
			mu.Lock()
			defer mu.Unlock()
			done++
			var invalid *serviceerror.InvalidArgument
			switch {
			case err == nil:
			case errors.As(err, &invalid):
				out.Failed = append(out.Failed, workflows.RunnerStartError{Name: r.Name, Error: err.Error()})
			case failed == nil:
				failed = fmt.Errorf("start runner %s: %w", r.Name, err)
			}
			activity.RecordHeartbeat(ctx, done)
		}()
	}
	wg.Wait()
	if failed != nil {
		return out, failed
	}
	slices.SortFunc(out.Failed, func(a, b workflows.RunnerStartError) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// start starts one runner's workflow, with its search attributes; one
// that exists, or ran, is started.
func (a *Activities) start(ctx context.Context, pool string, r workflows.RunnerInput) error {
	full := r.Owner + "/" + r.Repo
	opts := client.StartWorkflowOptions{
		ID:                    workflows.RunnerWorkflowID(r.Owner, r.Repo, r.Name),
		TaskQueue:             workflows.ServerTaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		// This server's worker takes the runner's first task at once.
		EnableEagerStart: true,
		StaticSummary:    fmt.Sprintf("runner %s of pool %s of %s on agent %s", r.Name, r.Pool, full, r.Agent),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchAttributeAgent.ValueSet(r.Agent),
			workflows.SearchAttributeRepository.ValueSet(full),
			workflows.SearchAttributePool.ValueSet(pool)),
	}
	_, err := a.Client.ExecuteWorkflow(ctx, opts, workflows.RunnerWorkflowName, r)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return nil
	}
	return err
}

// maxLook bounds the runner workflows one look reports; maxHubLook those
// the shared look reads, for all pools.
const (
	maxLook    = 1000
	maxHubLook = 10000
)

// Pace of WatchRunnerEnds.
const (
	// watchEvery is how often it looks (a visibility query, and a
	// describe of each runner from before pools).
	watchEvery = 10 * time.Second
	// watchFor is how long it watches before it returns empty (the pool
	// starts the next).
	watchFor = time.Hour
)

// WatchRunnerEnds watches a pool's runner workflows and returns, with how
// they ended, those that ended without their agent's report: any of the
// pool's that closed since in.Since other than completed (an operator
// terminated it, say), and the runners named (from before pools, whose
// agents report nothing) that closed at all. It heartbeats every
// watchEvery, and returns once it finds one, or empty after watchFor.
// Status is "completed", "failed", "terminated", "timedOut", "canceled" or
// "notFound" (it never ran).
//
// The pools' watches share one look of this server (endsHub): one
// visibility query every watchEvery for all of them, however many pools
// there are, rather than one each. A watch that names runners looks on
// its own.
func (a *Activities) WatchRunnerEnds(ctx context.Context, in workflows.RunnerLookInput) (workflows.RunnerLookResult, error) {
	end := time.Now().Add(watchFor)
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	var found <-chan hubLook
	if len(in.Names) == 0 {
		sub := a.hub().subscribe(in.Pool, in.Since)
		defer a.hub().unsubscribe(sub)
		found = sub.found
	}
	for {
		at := time.Now()
		if found == nil {
			ends, err := a.look(ctx, in)
			if err != nil {
				return workflows.RunnerLookResult{}, err
			}
			if len(ends) > 0 {
				return workflows.RunnerLookResult{Ends: ends, Until: at.Add(-time.Minute)}, nil
			}
		}
		if at.After(end) {
			return workflows.RunnerLookResult{Until: at.Add(-time.Minute)}, nil
		}
		activity.RecordHeartbeat(ctx)
		select {
		case <-ctx.Done():
			return workflows.RunnerLookResult{}, ctx.Err()
		case <-activity.GetWorkerStopChannel(ctx):
			return workflows.RunnerLookResult{Until: at.Add(-time.Minute)}, nil
		case l := <-found:
			return workflows.RunnerLookResult{Ends: l.ends, Until: l.at.Add(-time.Minute)}, nil
		case <-t.C:
		}
	}
}

func (a *Activities) hub() *endsHub {
	a.endsOnce.Do(func() {
		log := a.Logger
		if log == nil {
			log = slog.Default()
		}
		a.ends = &endsHub{look: a.lookAll, every: watchEvery, log: log, subs: map[*hubSub]bool{}}
	})
	return a.ends
}

// lookAll is the hub's look: the runner workflows of every pool that
// closed since since other than completed, by pool (GaroPool).
func (a *Activities) lookAll(ctx context.Context, since time.Time) (map[string][]hubEnd, error) {
	query := endedUnseenQuery(since)
	out := map[string][]hubEnd{}
	n := 0
	var token []byte
	for n < maxHubLook {
		resp, err := a.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: a.Namespace, Query: query, PageSize: 500, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list the runners that ended unseen since %s: %w", since.UTC().Format(time.RFC3339), err)
		}
		for _, e := range resp.GetExecutions() {
			if e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
				continue
			}
			var pool string
			if p := e.GetSearchAttributes().GetIndexedFields()[workflows.SearchAttributePool.GetName()]; p != nil {
				_ = converter.GetDefaultDataConverter().FromPayload(p, &pool)
			}
			if pool == "" {
				continue
			}
			n++
			out[pool] = append(out[pool], hubEnd{closed: e.GetCloseTime().AsTime(),
				RunnerEnd: activities.RunnerEnd{WorkflowID: e.GetExecution().GetWorkflowId(), Status: statusName(e.GetStatus())}})
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	return out, nil
}

// endedUnseenQuery finds the runner workflows that closed since since
// other than completed: they ended without their agent's report.
func endedUnseenQuery(since time.Time) string {
	return fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus != 'Running' AND ExecutionStatus != 'Completed' "+
		"AND CloseTime >= '%s'", workflows.RunnerWorkflowName, since.UTC().Format(time.RFC3339))
}

// look looks once.
func (a *Activities) look(ctx context.Context, in workflows.RunnerLookInput) ([]activities.RunnerEnd, error) {
	var out []activities.RunnerEnd
	seen := map[string]bool{}
	for _, name := range in.Names {
		id := workflows.RunnerWorkflowID(in.Owner, in.Repo, name)
		d, err := a.Client.DescribeWorkflow(ctx, id, "")
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
			out = append(out, activities.RunnerEnd{WorkflowID: id, Status: "notFound"})
		case err != nil:
			return nil, fmt.Errorf("describe runner workflow %s: %w", id, err)
		default:
			if st := d.RawResponse.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				out = append(out, activities.RunnerEnd{WorkflowID: id, Status: statusName(st)})
			}
		}
		seen[id] = true
	}
	query := endedUnseenQuery(in.Since) + fmt.Sprintf(" AND %s = '%s'", workflows.SearchAttributePool.GetName(), in.Pool)
	var token []byte
	for len(out) < maxLook {
		resp, err := a.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: a.Namespace, Query: query, PageSize: 200, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list the ended runners of pool %s: %w", in.Pool, err)
		}
		for _, e := range resp.GetExecutions() {
			id := e.GetExecution().GetWorkflowId()
			if seen[id] || e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
				continue
			}
			seen[id] = true
			out = append(out, activities.RunnerEnd{WorkflowID: id, Status: statusName(e.GetStatus())})
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	return out, nil
}

// statusName names a workflow's status as RunnerEnd does.
func statusName(s enumspb.WorkflowExecutionStatus) string {
	switch s {
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return "completed"
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
		return "failed"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return "terminated"
	case enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		return "timedOut"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return "canceled"
	case enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return "continuedAsNew"
	}
	return "running"
}
