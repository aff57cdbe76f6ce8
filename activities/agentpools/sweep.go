package agentpools

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/workflows"
)

// SweepScope tells an agent's sweep which repositories have dormant pools
// of the agent (configured, not draining, no job and no runner: they set
// no timer of their own), with the shortest queuePollInterval of their
// dormant pools. The schedule of an agent that is no longer registered is
// deleted here: its sweep ends with it.
func (a *Activities) SweepScope(ctx context.Context, agent string) (activities.SweepScope, error) {
	if registered, err := a.registeredOrUnscheduled(ctx, agent, workflows.SweepScheduleID(agent)); err != nil || !registered {
		return activities.SweepScope{}, err
	}
	scope := activities.SweepScope{Registered: true}
	byRepo := map[string]int{}
	dc := a.Converter
	if dc == nil {
		dc = converter.GetDefaultDataConverter()
	}
	var token []byte
	for {
		resp, err := a.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: a.Namespace,
			Query: workflows.RunningQuery(workflows.PoolWorkflowName, agent), PageSize: 1000, NextPageToken: token})
		if err != nil {
			return scope, fmt.Errorf("list the pools of agent %s: %w", agent, err)
		}
		for _, e := range resp.GetExecutions() {
			p, ok := e.GetMemo().GetFields()[workflows.MemoSummary]
			ref, isPool := workflows.ParsePoolWorkflowID(e.GetExecution().GetWorkflowId())
			if !ok || !isPool {
				continue
			}
			var m workflows.PoolMemo
			if err := dc.FromPayload(p, &m); err != nil {
				return scope, fmt.Errorf("decode the memo of %s: %w", e.GetExecution().GetWorkflowId(), err)
			}
			every := m.Config.QueuePollInterval.D()
			if !dormant(m.PoolView) || every <= 0 {
				continue
			}
			key := strings.ToLower(ref.Repository())
			i, seen := byRepo[key]
			if !seen {
				scope.Repos = append(scope.Repos, activities.SweepRepo{Repo: activities.Repo{Owner: ref.Owner, Name: ref.Repo}, Every: every})
				i = len(scope.Repos) - 1
				byRepo[key] = i
			}
			r := &scope.Repos[i]
			r.Every = min(r.Every, every)
			r.Pools = append(r.Pools, e.GetExecution().GetWorkflowId())
		}
		activity.RecordHeartbeat(ctx, len(scope.Repos))
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	slices.SortFunc(scope.Repos, func(a, b activities.SweepRepo) int { return strings.Compare(a.Repo.String(), b.Repo.String()) })
	return scope, nil
}

// dormant: a pool with nothing in flight and no runner, which waits for
// webhooks with no timer of its own.
func dormant(v workflows.PoolView) bool {
	c := v.Counts
	return !v.Draining && c.Provisioning+c.Idle+c.Busy+c.Deleting+c.Queued == 0
}

// SweepSignal asks the pools of the repositories the sweep found runs in
// to reconcile with GitHub now, and returns how many it asked. A pool
// that ended is passed over; one that refuses fails the call, to be tried
// again.
func (a *Activities) SweepSignal(ctx context.Context, repos []activities.SweepRepo) (int, error) {
	n := 0
	for _, r := range repos {
		for _, id := range r.Pools {
			err := a.Client.SignalWorkflow(ctx, id, "", workflows.SignalResync,
				workflows.ResyncRequest{Reason: "its agent's sweep found runs queued or in progress"})
			var nf *serviceerror.NotFound
			switch {
			case errors.As(err, &nf):
			case err != nil:
				return n, fmt.Errorf("ask %s to reconcile: %w", id, err)
			default:
				n++
			}
		}
		activity.RecordHeartbeat(ctx, n)
	}
	return n, nil
}
