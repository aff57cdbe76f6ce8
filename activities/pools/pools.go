// Package pools holds the control-plane activities that act on runner
// pools from the server's task queue, such as draining an agent's pools
// before the agent is unregistered.
package pools

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/workflows"
)

// Activities run on the garo-server task queue with a Temporal client.
type Activities struct {
	Client    client.Client
	Namespace string
	// PollEvery is how often draining checks whether the pools have ended
	// (default 2s).
	PollEvery time.Duration
}

// poolsOf lists the running pools served by agent.
func (a *Activities) poolsOf(ctx context.Context, agent string) ([]string, error) {
	var ids []string
	var token []byte
	for {
		resp, err := a.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: a.Namespace, NextPageToken: token, PageSize: 1000,
			Query: workflows.RunningQuery(workflows.RepositoryWorkflowName, agent),
		})
		if err != nil {
			return nil, fmt.Errorf("list pools of agent %s: %w", agent, err)
		}
		for _, e := range resp.Executions {
			ids = append(ids, e.GetExecution().GetWorkflowId())
		}
		if token = resp.NextPageToken; len(token) == 0 {
			return ids, nil
		}
	}
}

// DrainAgentPools drains every pool served by agent and returns when they
// have all ended (their busy runners finished), heartbeating meanwhile. It
// returns how many pools it drained.
func (a *Activities) DrainAgentPools(ctx context.Context, agent string) (int, error) {
	if err := workflows.ValidateAgentName(agent); err != nil {
		return 0, err
	}
	every := a.PollEvery
	if every == 0 {
		every = 2 * time.Second
	}
	drained := map[string]bool{}
	for {
		ids, err := a.poolsOf(ctx, agent)
		if err != nil {
			return len(drained), err
		}
		if len(ids) == 0 {
			return len(drained), nil
		}
		for _, id := range ids {
			if drained[id] {
				continue
			}
			h, err := a.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id,
				UpdateName: workflows.UpdateDrain, Args: []any{workflows.DrainRequest{Actor: "unregister agent " + agent}},
				WaitForStage: client.WorkflowUpdateStageCompleted})
			if err == nil {
				err = h.Get(ctx, nil)
			}
			var nf *serviceerror.NotFound
			if err != nil && !errors.As(err, &nf) {
				return len(drained), fmt.Errorf("drain %s: %w", id, err)
			}
			drained[id] = true
			activity.GetLogger(ctx).Info("Draining pool of an unregistering agent", "agent", agent, "pool", id)
		}
		activity.RecordHeartbeat(ctx, len(ids))
		select {
		case <-ctx.Done():
			return len(drained), ctx.Err()
		case <-time.After(every):
		}
	}
}

// AgentStatusChange is the argument of NotifyAgentPools.
type AgentStatusChange = activities.AgentStatusChange

// NotifyAgentPools tells every pool of an agent that the agent went online
// or offline, so that pools pause provisioning while it is away. It returns
// how many pools it told.
func (a *Activities) NotifyAgentPools(ctx context.Context, ch AgentStatusChange) (int, error) {
	ids, err := a.poolsOf(ctx, ch.Agent)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		err := a.Client.SignalWorkflow(ctx, id, "", workflows.SignalAgent, workflows.AgentStatusEvent{Agent: ch.Agent, Online: ch.Online})
		var nf *serviceerror.NotFound
		if err != nil && !errors.As(err, &nf) {
			return n, fmt.Errorf("tell %s: %w", id, err)
		}
		n++
	}
	return n, nil
}
