// Package agentpools holds the control of an agent's pools from the
// server's task queue: draining them before the agent is unregistered, and
// telling them when the agent goes offline or comes back. The pools of an
// agent may belong to many repositories, and a repository may have pools
// of other agents too.
package agentpools

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/internal/temporalclient"
	"github.com/garo-run/garo/workflows"
)

// Activities run on the garo-server task queue with a Temporal client.
type Activities struct {
	Client    client.Client
	Namespace string
	// Converter decodes the pools' memos: the client's (default:
	// Temporal's).
	Converter converter.DataConverter
	// PollEvery is how often draining checks whether the pools have ended
	// (default 2s).
	PollEvery time.Duration
}

// Register adds the activities to r under their names.
func (a *Activities) Register(r worker.ActivityRegistry) {
	r.RegisterActivityWithOptions(a.DrainAgentPools, activity.RegisterOptions{Name: activities.DrainAgentPoolsName})
	r.RegisterActivityWithOptions(a.NotifyAgentPools, activity.RegisterOptions{Name: activities.NotifyAgentPoolsName})
	r.RegisterActivityWithOptions(a.AgentOnline, activity.RegisterOptions{Name: activities.AgentOnlineName})
	r.RegisterActivityWithOptions(a.ReaperScope, activity.RegisterOptions{Name: activities.ReaperScopeName})
	r.RegisterActivityWithOptions(a.ReaperOwned, activity.RegisterOptions{Name: activities.ReaperOwnedName})
	r.RegisterActivityWithOptions(a.SweepScope, activity.RegisterOptions{Name: activities.SweepScopeName})
	r.RegisterActivityWithOptions(a.SweepSignal, activity.RegisterOptions{Name: activities.SweepSignalName})
}

// poolsOf lists the workflows of agent's pools: its running
// PoolWorkflows, and the RepositoryWorkflows (of a release before pools)
// with a pool of it.
func (a *Activities) poolsOf(ctx context.Context, agent string) ([]string, error) {
	var ids []string
	for _, t := range []string{workflows.PoolWorkflowName, workflows.RepositoryWorkflowName} {
		err := temporalclient.EachWorkflow(ctx, a.Client, a.Namespace, workflows.RunningQuery(t, agent),
			func(id string) { ids = append(ids, id) })
		if err != nil {
			return nil, fmt.Errorf("list the pools of agent %s: %w", agent, err)
		}
	}
	return ids, nil
}

// DrainAgentPools drains every pool served by agent, in every repository,
// and returns when they have all ended (their busy runners finished),
// heartbeating meanwhile. It returns how many pools (or repositories of a
// release before pools) it drained.
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
				UpdateName: workflows.UpdateDrain, Args: []any{workflows.DrainRequest{Agent: agent, Actor: "unregister agent " + agent}},
				WaitForStage: client.WorkflowUpdateStageCompleted})
			if err == nil {
				err = h.Get(ctx, nil)
			}
			var nf *serviceerror.NotFound
			if err != nil && !errors.As(err, &nf) {
				return len(drained), fmt.Errorf("drain %s: %w", id, err)
			}
			drained[id] = true
			activity.GetLogger(ctx).Info("Draining the pools of an unregistering agent", "agent", agent, "workflow", id)
		}
		activity.RecordHeartbeat(ctx, len(ids))
		select {
		case <-ctx.Done():
			return len(drained), ctx.Err()
		case <-time.After(every):
		}
	}
}

// NotifyAgentPools tells every pool of an agent that the agent went
// online or offline, so that it pauses provisioning while the agent is
// away. It returns how many it told.
func (a *Activities) NotifyAgentPools(ctx context.Context, ch activities.AgentStatusChange) (int, error) {
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

// AgentOnline tells whether an agent is online now, from its workflow: a
// new pool asks it before it starts runners, and learns of the changes
// after that from NotifyAgentPools. An agent that is not registered, or is
// going, is not online.
func (a *Activities) AgentOnline(ctx context.Context, agent string) (bool, error) {
	if err := workflows.ValidateAgentName(agent); err != nil {
		return false, temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeInvalidRequest, nil)
	}
	var st workflows.AgentState
	err := temporalclient.QueryRunning(ctx, a.Client, workflows.AgentWorkflowID(agent), workflows.QueryState, &st)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf), errors.Is(err, temporalclient.ErrNotRunning):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("ask whether agent %s is online: %w", agent, err)
	}
	return st.Status == workflows.AgentOnline, nil
}
