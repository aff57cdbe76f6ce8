package api

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/garo-run/garo/workflows"
)

// TemporalAgents implements Agents on AgentWorkflows.
type TemporalAgents struct {
	Client    client.Client
	Namespace string
	Logger    *slog.Logger
	// Cursors seal the page tokens of the agent listing.
	Cursors *Cursors
	// Converter decodes the memos the listing carries: the client's
	// (default: Temporal's, unencrypted).
	Converter converter.DataConverter
}

// Register starts the agent's workflow if it is not running and sends it
// the register update, in one call (update-with-start).
func (t *TemporalAgents) Register(ctx context.Context, name string, req workflows.RegisterRequest) (workflows.AgentState, error) {
	var st workflows.AgentState
	if err := t.updateWithStart(ctx, name, workflows.UpdateRegister, req, &st); err != nil {
		return st, err
	}
	if err := t.ensureReaper(ctx, name); err != nil {
		// The next registration (each start of the agent) tries again.
		t.logger().Warn("Reaper schedule of the agent not created", "agent", name, "error", err)
	}
	if err := t.ensureSweep(ctx, name); err != nil {
		t.logger().Warn("Sweep schedule of the agent not created", "agent", name, "error", err)
	}
	return st, nil
}

// ensureReaper creates the agent's reaper schedule unless it exists: every
// ReaperEvery a ReaperWorkflow removes what the agent's runners left
// behind. The reaper deletes its schedule once the agent is unregistered.
func (t *TemporalAgents) ensureReaper(ctx context.Context, name string) error {
	return t.ensureSchedule(ctx, workflows.ReaperScheduleID(name), workflows.ReaperEvery, workflows.ReaperWorkflowName,
		workflows.ReaperInput{Agent: name}, name, "reaper of agent "+name)
}

// ensureSweep creates the agent's sweep schedule unless it exists: every
// SweepEvery a SweepWorkflow looks at the repositories of the agent's
// dormant pools. The sweep deletes its schedule once the agent is
// unregistered.
func (t *TemporalAgents) ensureSweep(ctx context.Context, name string) error {
	return t.ensureSchedule(ctx, workflows.SweepScheduleID(name), workflows.SweepEvery, workflows.SweepWorkflowName,
		workflows.SweepInput{Agent: name}, name, "sweep of the dormant pools of agent "+name)
}

// ensureSchedule creates, unless it exists, the schedule id that starts
// workflow (id id, on the server's queue, for agent) with input every
// interval, skipping a start while the last run goes on.
func (t *TemporalAgents) ensureSchedule(ctx context.Context, id string, every time.Duration, workflow string, input any, agent, summary string) error {
	_, err := t.Client.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:      id,
		Spec:    client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}},
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Action: &client.ScheduleWorkflowAction{
			ID:                    id,
			Workflow:              workflow,
			Args:                  []any{input},
			TaskQueue:             workflows.ServerTaskQueue,
			TypedSearchAttributes: temporal.NewSearchAttributes(workflows.SearchAttributeAgent.ValueSet(agent)),
			StaticSummary:         summary,
		},
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return nil
	}
	return err
}

func (t *TemporalAgents) logger() *slog.Logger {
	if t.Logger != nil {
		return t.Logger
	}
	return slog.Default()
}

// updateWithStart sends an update to the agent's workflow, starting it if
// it is not running.
func (t *TemporalAgents) updateWithStart(ctx context.Context, name, update string, arg, out any) error {
	return runUpdateWithStart(ctx, t.Client, client.StartWorkflowOptions{
		ID:                    workflows.AgentWorkflowID(name),
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.SearchAttributeAgent.ValueSet(name)),
		StaticSummary:         "agent " + name,
	}, workflows.AgentWorkflowName, workflows.AgentWorkflowInput{Name: name}, update, arg, out)
}

func (t *TemporalAgents) update(ctx context.Context, name, update string, arg any) (workflows.AgentState, error) {
	var st workflows.AgentState
	err := runUpdate(ctx, t.Client, workflows.AgentWorkflowID(name), update, arg, &st)
	if errors.Is(err, ErrNotFound) && t.wasUnregistered(ctx, name) {
		return st, ErrUnregistered
	}
	return st, err
}

// wasUnregistered reports whether the agent's last workflow run completed,
// which it does only when the agent is unregistered.
func (t *TemporalAgents) wasUnregistered(ctx context.Context, name string) bool {
	d, err := t.Client.DescribeWorkflow(ctx, workflows.AgentWorkflowID(name), "")
	return err == nil && d.Status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
}

// Heartbeat records that the agent is alive.
func (t *TemporalAgents) Heartbeat(ctx context.Context, name string, req workflows.HeartbeatRequest) (workflows.AgentState, error) {
	return t.update(ctx, name, workflows.UpdateHeartbeat, req)
}

// Unregister starts unregistering the agent and returns its record once
// the workflow has accepted it; the drain of its pools goes on.
func (t *TemporalAgents) Unregister(ctx context.Context, name string, req workflows.UnregisterRequest) (workflows.AgentState, error) {
	_, err := t.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   workflows.AgentWorkflowID(name),
		UpdateName:   workflows.UpdateUnregister,
		Args:         []any{req},
		WaitForStage: client.WorkflowUpdateStageAccepted,
	})
	if err = mapTemporalError(err); errors.Is(err, ErrNotFound) && t.wasUnregistered(ctx, name) {
		return workflows.AgentState{}, ErrUnregistered
	} else if err != nil {
		return workflows.AgentState{}, err
	}
	st, err := t.Get(ctx, name)
	if errors.Is(err, ErrNotFound) {
		// It had nothing to drain and has ended already.
		return workflows.AgentState{Name: name, Status: workflows.AgentUnregistered, TaskQueue: workflows.AgentTaskQueue(name)}, nil
	}
	return st, err
}

// Get returns the exact record of a registered agent from its workflow.
func (t *TemporalAgents) Get(ctx context.Context, name string) (workflows.AgentState, error) {
	var st workflows.AgentState
	err := queryRunning(ctx, t.Client, workflows.AgentWorkflowID(name), &st)
	return st, err
}

// List returns the registered agents from the visibility store, one page at
// a time, using each workflow's memo so that listing costs one call.
func (t *TemporalAgents) List(ctx context.Context, limit int, cursor string) ([]workflows.AgentState, string, error) {
	execs, next, err := listRunning(ctx, t.Client, t.Cursors, t.Namespace, workflows.AgentWorkflowName, "", limit, cursor)
	if err != nil {
		return nil, "", err
	}
	agents := make([]workflows.AgentState, 0, len(execs))
	for _, e := range execs {
		name := strings.TrimPrefix(e.GetExecution().GetWorkflowId(), workflows.AgentWorkflowID(""))
		st := workflows.AgentState{Name: name, TaskQueue: workflows.AgentTaskQueue(name), Status: workflows.AgentOffline}
		if _, err := memoSummary(t.Converter, e, &st); err != nil {
			return nil, "", err
		}
		st.Name = name
		agents = append(agents, st)
	}
	return agents, next, nil
}

// AgentTokenHash returns the token hash a running agent's workflow holds.
func (t *TemporalAgents) AgentTokenHash(ctx context.Context, name string) (string, error) {
	var auth workflows.AgentAuth
	if err := queryRunningAs(ctx, t.Client, workflows.AgentWorkflowID(name), workflows.QueryAuth, &auth); err != nil {
		return "", err
	}
	return auth.TokenHash, nil
}
