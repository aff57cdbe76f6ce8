package workflows

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/activities/provider"
)

// memoHeartbeatRefresh bounds how stale the last heartbeat in the memo (and
// so in agent lists) may be, while keeping heartbeats from writing the
// visibility store every time.
const memoHeartbeatRefresh = time.Minute

// AgentWorkflow owns the registration record of one agent: its
// capabilities, its liveness (online until no heartbeat arrives for
// OfflineAfter) and its unregistration. It runs until the agent is
// unregistered, continuing as new when the history grows long.
func AgentWorkflow(ctx workflow.Context, in AgentWorkflowInput) (AgentState, error) {
	if err := ValidateAgentName(in.Name); err != nil {
		return AgentState{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidRequest, nil)
	}
	a := &agentWorkflow{probes: in.Probes, tokenHash: in.TokenHash,
		log: log.With(workflow.GetLogger(ctx), "agent", in.Name)}
	if in.State != nil {
		a.state = *in.State
	} else {
		a.state = AgentState{Name: in.Name, Status: AgentOffline, TaskQueue: AgentTaskQueue(in.Name)}
	}
	if err := a.setHandlers(ctx); err != nil {
		return AgentState{}, err
	}
	if err := ensureSearchAttribute(ctx, SearchAttributeAgent, in.Name); err != nil {
		return AgentState{}, err
	}
	return a.run(ctx)
}

type agentWorkflow struct {
	state AgentState
	// log carries the agent's name.
	log log.Logger
	// published is the record as the memo last carried it.
	published *AgentState
	// probes counts probes started, across runs, for unique activity ids.
	probes       int
	probeRunning bool
	probedFor    time.Time // RegisteredAt of the registration last probed
	done         bool
	// tokenHash authenticates the agent's own token.
	tokenHash string
	// notified is the liveness last told to the agent's pools; notifying
	// is true while a notification runs.
	notified  AgentStatus
	notifying bool
}

func (a *agentWorkflow) setHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (AgentState, error) {
		return a.state, nil
	}); err != nil {
		return fmt.Errorf("set query handler: %w", err)
	}
	if err := workflow.SetQueryHandler(ctx, QueryAuth, func() (AgentAuth, error) {
		return AgentAuth{TokenHash: a.tokenHash}, nil
	}); err != nil {
		return fmt.Errorf("set auth query handler: %w", err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateCreateAgent,
		func(ctx workflow.Context, req CreateAgentRequest) (AgentState, error) {
			a.tokenHash = req.TokenHash
			a.log.Info("Agent created", "actor", req.Actor)
			return a.state, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(req CreateAgentRequest) error {
			if a.tokenHash != "" || !a.state.RegisteredAt.IsZero() {
				return reject(ErrTypeConflict, "agent "+a.state.Name+" exists")
			}
			if !tokenHashPattern.MatchString(req.TokenHash) {
				return invalidRequest(errors.New("tokenHash must be a hex SHA-256"))
			}
			return nil
		}}); err != nil {
		return fmt.Errorf("set create handler: %w", err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateRegister, a.register,
		workflow.UpdateHandlerOptions{Validator: a.validateRegister}); err != nil {
		return fmt.Errorf("set register handler: %w", err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateHeartbeat, a.heartbeat,
		workflow.UpdateHandlerOptions{Validator: a.validateHeartbeat}); err != nil {
		return fmt.Errorf("set heartbeat handler: %w", err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateUnregister, a.unregister,
		workflow.UpdateHandlerOptions{Validator: a.validateUnregister}); err != nil {
		return fmt.Errorf("set unregister handler: %w", err)
	}
	return nil
}

// errUnregistering rejects an update to an agent that is being
// unregistered.
var errUnregistering = reject(ErrTypeUnregistering, "agent is being unregistered")

// errNotRegistered rejects a heartbeat from an agent that never registered
// with this workflow.
var errNotRegistered = reject(ErrTypeNotRegistered, "agent is not registered")

func (a *agentWorkflow) validateRegister(req RegisterRequest) error {
	if a.state.Status == AgentUnregistering || a.done {
		return errUnregistering
	}
	return invalidRequest(ValidateRegisterRequest(req))
}

// ValidateRegisterRequest checks a registration for sizes and sane timing.
func ValidateRegisterRequest(req RegisterRequest) error {
	c := req.Capabilities
	for _, f := range []struct{ name, v string }{{"version", c.Version}, {"hostname", c.Hostname}, {"actor", req.Actor}} {
		if len(f.v) > MaxShortField {
			return fmt.Errorf("%s is longer than %d characters", f.name, MaxShortField)
		}
	}
	for _, list := range []struct {
		name string
		v    []string
	}{{"labels", c.Labels}, {"providers", c.Providers}} {
		if len(list.v) > MaxAgentLabels {
			return fmt.Errorf("%s: more than %d entries", list.name, MaxAgentLabels)
		}
		for _, l := range list.v {
			if l == "" || len(l) > MaxAgentLabelLen {
				return fmt.Errorf("%s: entry %q must be 1-%d characters", list.name, l, MaxAgentLabelLen)
			}
		}
	}
	if len(c.ProviderOptions) > MaxAgentLabels {
		return fmt.Errorf("providerOptions: more than %d providers", MaxAgentLabels)
	}
	for _, kind := range slices.Sorted(maps.Keys(c.ProviderOptions)) {
		if !slices.Contains(c.Providers, kind) {
			return fmt.Errorf("providerOptions: %q is not one of the providers", kind)
		}
		if err := provider.CheckSchema(c.ProviderOptions[kind]); err != nil {
			return fmt.Errorf("providerOptions of %s: %w", kind, err)
		}
	}
	if req.HeartbeatInterval.D() < time.Second || req.HeartbeatInterval.D() > time.Hour {
		return fmt.Errorf("heartbeat interval %s out of range [1s, 1h]", req.HeartbeatInterval)
	}
	if req.OfflineAfter.D() <= req.HeartbeatInterval.D() || req.OfflineAfter.D() > 24*time.Hour {
		return fmt.Errorf("offline-after %s must exceed the heartbeat interval %s and be at most 24h", req.OfflineAfter, req.HeartbeatInterval)
	}
	return nil
}

func (a *agentWorkflow) register(ctx workflow.Context, req RegisterRequest) (AgentState, error) {
	now := workflow.Now(ctx)
	a.state.Capabilities = req.Capabilities
	a.state.HeartbeatInterval = req.HeartbeatInterval
	a.state.OfflineAfter = req.OfflineAfter
	a.state.RegisteredAt = now
	a.state.LastHeartbeat = now
	a.state.Status = AgentOnline
	a.log.Info("Agent registered", "actor", req.Actor,
		"version", req.Capabilities.Version, "hostname", req.Capabilities.Hostname)
	return a.state, nil
}

func (a *agentWorkflow) validateHeartbeat(HeartbeatRequest) error {
	if a.state.Status == AgentUnregistering || a.done {
		return errUnregistering
	}
	if a.state.RegisteredAt.IsZero() {
		return errNotRegistered
	}
	return nil
}

func (a *agentWorkflow) heartbeat(ctx workflow.Context, req HeartbeatRequest) (AgentState, error) {
	a.state.LastHeartbeat = workflow.Now(ctx)
	if req.Stopping {
		if a.state.Status != AgentOffline {
			a.log.Info("Agent stopping")
		}
		a.state.Status = AgentOffline
	} else {
		if a.state.Status != AgentOnline {
			a.log.Info("Agent back online")
		}
		a.state.Status = AgentOnline
	}
	a.publish(ctx)
	return a.state, nil
}

func (a *agentWorkflow) validateUnregister(req UnregisterRequest) error {
	if len(req.Actor) > MaxShortField || len(req.Reason) > 1024 {
		return invalidRequest(errors.New("actor or reason too long"))
	}
	return nil
}

func (a *agentWorkflow) unregister(ctx workflow.Context, req UnregisterRequest) (AgentState, error) {
	if a.state.Status != AgentUnregistering && !a.done {
		a.log.Info("Agent unregistering", "actor", req.Actor, "reason", req.Reason)
		a.state.Status = AgentUnregistering
	}
	if err := workflow.Await(ctx, func() bool { return a.done }); err != nil {
		return AgentState{}, err
	}
	return a.state, nil
}

func (a *agentWorkflow) run(ctx workflow.Context) (AgentState, error) {
	probeCtx, cancelProbes := workflow.WithCancel(ctx)
	defer cancelProbes()
	supported(ctx, boundedHistory)
	supported(ctx, "notify-agent-pools")
	for {
		a.publish(ctx)
		if a.state.Status == AgentUnregistering {
			break
		}
		if a.needsProbe() {
			a.startProbe(probeCtx)
		}
		if a.needsNotify() {
			a.notifyPools(probeCtx)
		}
		if continueAsNewDue(ctx) {
			return a.continueAsNew(ctx)
		}
		wake := func() bool {
			return a.state.Status == AgentUnregistering || a.needsProbe() || a.publishDue() ||
				a.needsNotify() || continueAsNewDue(ctx)
		}
		if a.state.Status != AgentOnline {
			if err := workflow.Await(ctx, wake); err != nil {
				return a.state, err
			}
			continue
		}
		remaining := a.state.LastHeartbeat.Add(a.state.OfflineAfter.D()).Sub(workflow.Now(ctx))
		if remaining <= 0 {
			a.log.Warn("Agent offline: no heartbeat",
				"lastHeartbeat", a.state.LastHeartbeat, "offlineAfter", a.state.OfflineAfter.String())
			a.state.Status = AgentOffline
			continue
		}
		if _, err := awaitTimeout(ctx, remaining, wake); err != nil {
			return a.state, err
		}
	}
	// Unregistering: drain the agent's pools (their busy runners finish),
	// then finish the handlers that wait for the end.
	cancelProbes()
	supported(ctx, "drain-agent-pools")
	a.drainPools(ctx)
	a.state.Status = AgentUnregistered
	a.done = true
	a.publish(ctx)
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return a.state, err
	}
	a.log.Info("Agent unregistered")
	return a.state, nil
}

// needsNotify reports whether the pools have not been told the agent's
// current liveness. A new registration starts out online, which pools
// assume, so only a change after that is told.
func (a *agentWorkflow) needsNotify() bool {
	if a.notifying || (a.state.Status != AgentOnline && a.state.Status != AgentOffline) {
		return false
	}
	if a.notified == "" {
		return a.state.Status == AgentOffline
	}
	return a.notified != a.state.Status
}

// notifyPools tells the agent's pools its liveness, on the server's queue.
func (a *agentWorkflow) notifyPools(ctx workflow.Context) {
	a.notifying = true
	status := a.state.Status
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           ServerTaskQueue,
		StartToCloseTimeout: time.Minute,
		Summary:             fmt.Sprintf("tell the pools of agent %s it is %s", a.state.Name, status),
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 10},
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { a.notifying = false }()
		var n int
		err := workflow.ExecuteActivity(actx, activities.NotifyAgentPoolsName,
			activities.AgentStatusChange{Agent: a.state.Name, Online: status == AgentOnline}).Get(ctx, &n)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("Pools not told of the agent's status", "status", status, "error", err)
			}
			return
		}
		a.notified = status
	})
}

// drainPools runs DrainAgentPools on the server's queue until every pool
// of the agent has ended.
func (a *agentWorkflow) drainPools(ctx workflow.Context) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           ServerTaskQueue,
		StartToCloseTimeout: 24 * time.Hour,
		HeartbeatTimeout:    time.Minute,
		Summary:             fmt.Sprintf("drain the pools of agent %s", a.state.Name),
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
	var n int
	if err := workflow.ExecuteActivity(actx, activities.DrainAgentPoolsName, a.state.Name).Get(ctx, &n); err != nil {
		a.log.Error("Draining the agent's pools failed", "error", err)
		return
	}
	a.log.Info("Agent's pools drained", "pools", n)
}

func (a *agentWorkflow) continueAsNew(ctx workflow.Context) (AgentState, error) {
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return a.state, err
	}
	state := a.state
	return state, workflow.NewContinueAsNewError(ctx, AgentWorkflowName,
		AgentWorkflowInput{Name: state.Name, State: &state, Probes: a.probes, TokenHash: a.tokenHash})
}

// needsProbe reports whether the worker of the current registration has not
// been probed yet.
func (a *agentWorkflow) needsProbe() bool {
	return a.state.Status == AgentOnline && !a.probeRunning && !a.probedFor.Equal(a.state.RegisteredAt) &&
		(a.state.WorkerSeenAt == nil || a.state.WorkerSeenAt.Before(a.state.RegisteredAt))
}

// startProbe asks the agent's worker, on its own task queue, who it is. An
// agent whose worker does not poll leaves the probe waiting; the agent's
// record shows no workerSeenAt for this registration.
func (a *agentWorkflow) startProbe(ctx workflow.Context) {
	a.probeRunning = true
	a.probedFor = a.state.RegisteredAt
	a.probes++
	opts := workflow.ActivityOptions{
		TaskQueue:              a.state.TaskQueue,
		ActivityID:             fmt.Sprintf("agent/%s/probe/%d", a.state.Name, a.probes),
		ScheduleToStartTimeout: 2 * time.Minute,
		StartToCloseTimeout:    10 * time.Second,
		Summary:                fmt.Sprintf("probe the worker of agent %s", a.state.Name),
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
			MaximumAttempts:    5,
		},
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { a.probeRunning = false }()
		var res ProbeResult
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), activities.ProbeAgentName).Get(ctx, &res)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("Agent worker did not answer its probe",
					"taskQueue", a.state.TaskQueue, "error", err)
			}
			return
		}
		now := workflow.Now(ctx)
		a.state.WorkerSeenAt = &now
		a.state.Worker = &res
	})
}

// publishDue reports whether the memo is out of date: anything but the
// last heartbeat changed, or the heartbeat is memoHeartbeatRefresh old.
func (a *agentWorkflow) publishDue() bool {
	p, s := a.published, a.state
	return p == nil || p.Status != s.Status || !p.RegisteredAt.Equal(s.RegisteredAt) ||
		(p.WorkerSeenAt == nil) != (s.WorkerSeenAt == nil) ||
		s.LastHeartbeat.Sub(p.LastHeartbeat) >= memoHeartbeatRefresh
}

// publish upserts the memo when it is out of date.
func (a *agentWorkflow) publish(ctx workflow.Context) {
	if !a.publishDue() {
		return
	}
	s := a.state
	if err := workflow.UpsertMemo(ctx, map[string]any{MemoSummary: s}); err != nil {
		// Only an encoding failure gets here; do not retry it in a loop.
		a.log.Error("Upsert memo failed", "error", err)
	}
	if a.published == nil || a.published.Status != s.Status {
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("Agent **%s** is %s; task queue `%s`.", a.state.Name, s.Status, s.TaskQueue))
	}
	a.published = &s
}
