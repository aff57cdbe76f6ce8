package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/activities/provider"
)

type agentEnv struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	// probes counts answers the fake agent worker gave, by task queue.
	probes map[string]int
	// drained counts DrainAgentPools calls by agent.
	drained map[string]int
	// told lists the liveness NotifyAgentPools carried, in order.
	told []bool
}

func newAgentEnv(t *testing.T) *agentEnv {
	t.Helper()
	e := &agentEnv{t: t, env: quietSuite().NewTestWorkflowEnvironment(), probes: map[string]int{}, drained: map[string]int{}}
	e.env.RegisterWorkflow(AgentWorkflow)
	e.env.RegisterActivityWithOptions(func(ctx context.Context) (ProbeResult, error) {
		e.probes[activity.GetInfo(ctx).TaskQueue]++
		return ProbeResult{Hostname: "host-1", PID: 42, Version: "v-test"}, nil
	}, activity.RegisterOptions{Name: activities.ProbeAgentName})
	e.env.RegisterActivityWithOptions(func(ctx context.Context, agent string) (int, error) {
		e.drained[agent]++
		if activity.GetInfo(ctx).TaskQueue != ServerTaskQueue {
			return 0, errors.New("drain must run on the server's queue")
		}
		return 2, nil
	}, activity.RegisterOptions{Name: activities.DrainAgentPoolsName})
	e.env.RegisterActivityWithOptions(func(ctx context.Context, ch activities.AgentStatusChange) (int, error) {
		e.told = append(e.told, ch.Online)
		return 1, nil
	}, activity.RegisterOptions{Name: activities.NotifyAgentPoolsName})
	return e
}

func registerReq() RegisterRequest {
	return RegisterRequest{
		Capabilities:      AgentCapabilities{Version: "v1", Hostname: "host-1", Providers: []string{"process"}, Labels: []string{"linux"}},
		HeartbeatInterval: Duration(10 * time.Second),
		OfflineAfter:      Duration(30 * time.Second),
		Actor:             "agent:lab-1",
	}
}

// update sends an update at the given delay after start and records its
// outcome in *got and *err.
func (e *agentEnv) update(after time.Duration, name string, arg any, got *AgentState, errp *error) {
	e.env.RegisterDelayedCallback(func() {
		e.env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { *errp = err },
			OnComplete: func(v any, err error) {
				*errp = err
				if err == nil {
					*got = v.(AgentState)
				}
			},
		}, arg)
	}, after)
}

// query records the state query's answer at the given delay after start.
func (e *agentEnv) query(after time.Duration, got *AgentState) {
	e.env.RegisterDelayedCallback(func() {
		v, err := e.env.QueryWorkflow(QueryState)
		require.NoError(e.t, err)
		require.NoError(e.t, v.Get(got))
	}, after)
}

func (e *agentEnv) unregisterAt(after time.Duration, got *AgentState, errp *error) {
	e.update(after, UpdateUnregister, UnregisterRequest{Actor: "admin", Reason: "test"}, got, errp)
}

func TestAgentRegisterProbesWorkerAndGoesOnline(t *testing.T) {
	e := newAgentEnv(t)
	var reg, atProbe, final AgentState
	var regErr, unErr error
	e.update(0, UpdateRegister, registerReq(), &reg, &regErr)
	e.query(time.Second, &atProbe)
	e.unregisterAt(5*time.Second, &final, &unErr)
	e.env.ExecuteWorkflow(AgentWorkflow, AgentWorkflowInput{Name: "lab-1"})

	require.True(t, e.env.IsWorkflowCompleted())
	require.NoError(t, e.env.GetWorkflowError())
	require.NoError(t, regErr)
	assert.Equal(t, AgentOnline, reg.Status)
	assert.Equal(t, "garo-agent-lab-1", reg.TaskQueue)
	assert.Equal(t, []string{"process"}, reg.Capabilities.Providers)
	assert.Equal(t, 1, e.probes["garo-agent-lab-1"], "the probe runs on the agent's own task queue")
	require.NotNil(t, atProbe.WorkerSeenAt)
	assert.Equal(t, "host-1", atProbe.Worker.Hostname)

	require.NoError(t, unErr)
	assert.Equal(t, AgentUnregistered, final.Status)
	assert.Equal(t, 1, e.drained["lab-1"], "the agent's pools are drained before it ends")
	var result AgentState
	require.NoError(t, e.env.GetWorkflowResult(&result))
	assert.Equal(t, AgentUnregistered, result.Status)
}

func TestAgentGoesOfflineWithoutHeartbeatAndBackOnline(t *testing.T) {
	e := newAgentEnv(t)
	var reg, hb1, hb2, final AgentState
	var early, late1, late2 AgentState
	var err1, err2, err3, unErr error
	e.update(0, UpdateRegister, registerReq(), &reg, &err1)
	// Heartbeats every 10s keep it online past OfflineAfter (30s).
	for i := 1; i <= 4; i++ {
		e.update(time.Duration(i)*10*time.Second, UpdateHeartbeat, HeartbeatRequest{}, &hb1, &err2)
	}
	e.query(45*time.Second, &early)
	// The last heartbeat is at 40s: offline from 70s on.
	e.query(69*time.Second, &late1)
	e.query(71*time.Second, &late2)
	e.update(100*time.Second, UpdateHeartbeat, HeartbeatRequest{}, &hb2, &err3)
	e.unregisterAt(101*time.Second, &final, &unErr)
	e.env.ExecuteWorkflow(AgentWorkflow, AgentWorkflowInput{Name: "lab-1"})

	require.NoError(t, e.env.GetWorkflowError())
	require.NoError(t, err1)
	require.NoError(t, err2)
	require.NoError(t, err3)
	assert.Equal(t, AgentOnline, early.Status)
	assert.Equal(t, AgentOnline, late1.Status)
	assert.Equal(t, AgentOffline, late2.Status)
	assert.Equal(t, AgentOnline, hb2.Status, "a heartbeat brings an offline agent back")
	assert.Equal(t, 1, e.probes["garo-agent-lab-1"], "heartbeats do not probe again")
	assert.Equal(t, []bool{false, true}, e.told, "its pools hear that it went offline, then online")
}

func TestAgentStoppingHeartbeatGoesOfflineAtOnce(t *testing.T) {
	e := newAgentEnv(t)
	var reg, stop, after, final AgentState
	var err1, err2, unErr error
	e.update(0, UpdateRegister, registerReq(), &reg, &err1)
	e.update(5*time.Second, UpdateHeartbeat, HeartbeatRequest{Stopping: true}, &stop, &err2)
	e.query(6*time.Second, &after)
	e.unregisterAt(10*time.Second, &final, &unErr)
	e.env.ExecuteWorkflow(AgentWorkflow, AgentWorkflowInput{Name: "lab-1"})

	require.NoError(t, e.env.GetWorkflowError())
	require.NoError(t, err2)
	assert.Equal(t, AgentOffline, stop.Status)
	assert.Equal(t, AgentOffline, after.Status)
}

func TestAgentReRegisterProbesAgain(t *testing.T) {
	e := newAgentEnv(t)
	var reg1, reg2, final AgentState
	var err1, err2, unErr error
	e.update(0, UpdateRegister, registerReq(), &reg1, &err1)
	// The agent restarts after being offline for a while.
	e.update(2*time.Minute, UpdateRegister, registerReq(), &reg2, &err2)
	e.unregisterAt(3*time.Minute, &final, &unErr)
	e.env.ExecuteWorkflow(AgentWorkflow, AgentWorkflowInput{Name: "lab-1"})

	require.NoError(t, e.env.GetWorkflowError())
	require.NoError(t, err2)
	assert.Equal(t, AgentOnline, reg2.Status)
	assert.True(t, reg2.RegisteredAt.After(reg1.RegisteredAt))
	assert.Equal(t, 2, e.probes["garo-agent-lab-1"], "every registration probes the new worker")
}

func TestAgentRejectsBadUpdates(t *testing.T) {
	e := newAgentEnv(t)
	var got, final AgentState
	var hbErr, badErr, longErr, unErr, okErr error
	// A heartbeat before any registration is rejected, not accepted silently.
	e.update(0, UpdateHeartbeat, HeartbeatRequest{}, &got, &hbErr)
	bad := registerReq()
	bad.OfflineAfter = bad.HeartbeatInterval
	e.update(time.Second, UpdateRegister, bad, &got, &badErr)
	long := registerReq()
	long.Capabilities.Labels = []string{string(make([]byte, MaxAgentLabelLen+1))}
	e.update(2*time.Second, UpdateRegister, long, &got, &longErr)
	e.update(3*time.Second, UpdateRegister, registerReq(), &got, &okErr)
	e.unregisterAt(4*time.Second, &final, &unErr)
	e.env.ExecuteWorkflow(AgentWorkflow, AgentWorkflowInput{Name: "lab-1"})

	require.NoError(t, e.env.GetWorkflowError())
	assert.Equal(t, ErrTypeNotRegistered, errType(hbErr))
	assert.ErrorContains(t, hbErr, "not registered")
	assert.ErrorContains(t, badErr, "offline-after")
	assert.ErrorContains(t, longErr, "labels")
	require.NoError(t, okErr)
	assert.Equal(t, AgentUnregistered, final.Status)
}

func TestAgentRejectsInvalidName(t *testing.T) {
	e := newAgentEnv(t)
	e.env.ExecuteWorkflow(AgentWorkflow, AgentWorkflowInput{Name: "Bad/Name"})
	require.Error(t, e.env.GetWorkflowError())
}

func TestAgentContinuesAsNewKeepingState(t *testing.T) {
	e := newAgentEnv(t)
	var reg AgentState
	var regErr error
	e.update(0, UpdateRegister, registerReq(), &reg, &regErr)
	var hb AgentState
	var hbErr error
	e.update(4*time.Second, UpdateHeartbeat, HeartbeatRequest{}, &hb, &hbErr)
	e.env.RegisterDelayedCallback(func() { e.env.SetContinueAsNewSuggested(true) }, 5*time.Second)
	e.env.ExecuteWorkflow(AgentWorkflow, AgentWorkflowInput{Name: "lab-1"})

	require.NoError(t, regErr)
	require.NoError(t, hbErr)
	require.Equal(t, AgentOnline, hb.Status)
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(e.env.GetWorkflowError(), &can), "got %v", e.env.GetWorkflowError())
	assert.Equal(t, AgentWorkflowName, can.WorkflowType.Name)
	var next AgentWorkflowInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.NotNil(t, next.State)
	assert.Equal(t, "lab-1", next.Name)
	assert.Equal(t, AgentOnline, next.State.Status)
	assert.Equal(t, reg.RegisteredAt, next.State.RegisteredAt)
	assert.Equal(t, hb.LastHeartbeat, next.State.LastHeartbeat)
	assert.Equal(t, registerReq().Capabilities, next.State.Capabilities)
	assert.NotNil(t, next.State.WorkerSeenAt)
	assert.Equal(t, 1, next.Probes)
}

func TestAgentContinuedRunKeepsServing(t *testing.T) {
	e := newAgentEnv(t)
	seen := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e.env.SetStartTime(seen.Add(time.Minute))
	state := AgentState{
		Name: "lab-1", Status: AgentOnline, TaskQueue: AgentTaskQueue("lab-1"),
		RegisteredAt: seen.Add(-time.Minute), LastHeartbeat: seen.Add(50 * time.Second),
		HeartbeatInterval: Duration(10 * time.Second), OfflineAfter: Duration(30 * time.Second),
		WorkerSeenAt: &seen,
	}
	var before, after, final AgentState
	var unErr error
	e.query(time.Second, &before)
	e.query(25*time.Second, &after)
	e.unregisterAt(30*time.Second, &final, &unErr)
	e.env.ExecuteWorkflow(AgentWorkflow, AgentWorkflowInput{Name: "lab-1", State: &state, Probes: 1})

	require.NoError(t, e.env.GetWorkflowError())
	assert.Equal(t, AgentOnline, before.Status)
	// Its offline timer counts from the last heartbeat of the previous run.
	assert.Equal(t, AgentOffline, after.Status)
	assert.Equal(t, 0, e.probes["garo-agent-lab-1"], "a worker already seen is not probed again")
	require.NoError(t, unErr)
}

// errType is the type of the application error err wraps.
func errType(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Type()
	}
	return ""
}

func TestRegisterRequestChecksTheProviderOptionsReported(t *testing.T) {
	ok := registerReq()
	ok.Capabilities.ProviderOptions = map[string][]provider.Option{"process": {{Name: "env.", KeyPattern: `[A-Z]+`}}}
	require.NoError(t, ValidateRegisterRequest(ok))
	for name, opts := range map[string]map[string][]provider.Option{
		"provider not offered": {"ec2": {{Name: "region"}}},
		"pattern that fails":   {"process": {{Name: "image", Pattern: "(("}}},
		"bad option name":      {"process": {{Name: "a b"}}},
	} {
		req := registerReq()
		req.Capabilities.ProviderOptions = opts
		assert.Error(t, ValidateRegisterRequest(req), name)
	}
}
