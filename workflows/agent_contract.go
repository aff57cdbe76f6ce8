package workflows

import (
	"fmt"
	"regexp"
	"time"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/activities/provider"
)

// AgentWorkflow's contract: workflow `garo/agent/NAME` of type
// AgentWorkflow on the server's task queue; search attribute GaroAgent;
// memo summary: the AgentState.
const AgentWorkflowName = "AgentWorkflow"

// AgentWorkflowID is the workflow id of the agent called name.
func AgentWorkflowID(name string) string { return "garo/agent/" + name }

// AgentTaskQueue is the task queue the agent called name polls for the
// activities that touch its credentials and compute.
func AgentTaskQueue(name string) string { return "garo-agent-" + name }

// AgentActivityID is the id of an activity on agent name's task queue:
// "agent/NAME/WHAT/N". Temporal's authorizer lets agent name answer only
// activities whose ids start with "agent/NAME/".
func AgentActivityID(name, what string, n int) string {
	return fmt.Sprintf("agent/%s/%s/%d", name, what, n)
}

// Updates and queries of AgentWorkflow (and QueryState: the AgentState).
const (
	UpdateRegister    = "register"
	UpdateHeartbeat   = "heartbeat"
	UpdateUnregister  = "unregister"
	UpdateCreateAgent = "create"
	QueryAuth         = "auth"
)

// Error types of AgentWorkflow's updates, beside the shared ones.
const (
	// ErrTypeUnregistering: the agent is being unregistered (or was);
	// it can no longer register or heartbeat.
	ErrTypeUnregistering = "Unregistering"
	// ErrTypeNotRegistered: a heartbeat of an agent that has not
	// registered with this workflow; it must register first.
	ErrTypeNotRegistered = "NotRegistered"
)

var agentNamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidateAgentName reports whether name can name an agent: a DNS label
// (lower-case letters, digits and inner hyphens, at most 63 characters), so it
// is safe in workflow ids, task queue names and URLs.
func ValidateAgentName(name string) error {
	if !agentNamePattern.MatchString(name) {
		return fmt.Errorf("invalid agent name %q: want 1-63 lower-case letters, digits or inner hyphens", name)
	}
	return nil
}

// AgentStatus is the liveness of an agent as its workflow sees it.
type AgentStatus string

// Agent statuses.
const (
	// AgentOnline: heartbeats arrive within OfflineAfter of each other.
	AgentOnline AgentStatus = "online"
	// AgentOffline: no heartbeat for OfflineAfter, or the agent said it stops.
	AgentOffline AgentStatus = "offline"
	// AgentUnregistering: an unregister was accepted; the workflow drains
	// and ends.
	AgentUnregistering AgentStatus = "unregistering"
	// AgentUnregistered: the final state, returned by unregister.
	AgentUnregistered AgentStatus = "unregistered"
)

// Limits on what an agent may report about itself.
const (
	MaxAgentLabels   = 64
	MaxAgentLabelLen = 256
	MaxShortField    = 256
)

// Default liveness timing of agents.
const (
	DefaultHeartbeatInterval = 15 * time.Second
	DefaultOfflineAfter      = 45 * time.Second
)

// AgentCapabilities is what an agent reports about itself when it registers.
type AgentCapabilities struct {
	Version   string   `json:"version,omitempty"`
	Hostname  string   `json:"hostname,omitempty"`
	Providers []string `json:"providers,omitempty"`
	Labels    []string `json:"labels,omitempty"`
	// ProviderOptions are the options each provider takes, by kind: the
	// server checks a pool's options against them. An agent of a version
	// before them reports none, and its pools' options are checked only
	// when a runner starts.
	ProviderOptions map[string][]provider.Option `json:"providerOptions,omitempty"`
}

// RegisterRequest is the argument of the register update.
type RegisterRequest struct {
	Capabilities AgentCapabilities `json:"capabilities"`
	// HeartbeatInterval and OfflineAfter are set by the server, not the
	// agent: they are the fleet's liveness policy.
	HeartbeatInterval Duration `json:"heartbeatInterval"`
	OfflineAfter      Duration `json:"offlineAfter"`
	// Actor is the identity of the caller, kept in the history as an audit
	// record.
	Actor string `json:"actor,omitempty"`
}

// HeartbeatRequest is the argument of the heartbeat update.
type HeartbeatRequest struct {
	// Stopping marks the agent offline at once: it is shutting down cleanly.
	Stopping bool `json:"stopping,omitempty"`
}

// UnregisterRequest is the argument of the unregister update.
type UnregisterRequest struct {
	Actor  string `json:"actor,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// ProbeResult is what the agent's worker answers to a probe.
type ProbeResult = activities.ProbeResult

// AgentState is the registration record of one agent, as the state query,
// the memo and the REST API show it.
type AgentState struct {
	Name              string            `json:"name"`
	Status            AgentStatus       `json:"status"`
	TaskQueue         string            `json:"taskQueue"`
	Capabilities      AgentCapabilities `json:"capabilities"`
	RegisteredAt      time.Time         `json:"registeredAt"`
	LastHeartbeat     time.Time         `json:"lastHeartbeat"`
	HeartbeatInterval Duration          `json:"heartbeatInterval"`
	OfflineAfter      Duration          `json:"offlineAfter"`
	// WorkerSeenAt is when the agent's worker last answered a probe on its
	// task queue; zero until it has.
	WorkerSeenAt *time.Time `json:"workerSeenAt,omitempty"`
	// Worker describes the process that answered the last probe.
	Worker *ProbeResult `json:"worker,omitempty"`
}

// AgentWorkflowInput starts an AgentWorkflow; State is set when the workflow
// continues as new.
type AgentWorkflowInput struct {
	Name  string      `json:"name"`
	State *AgentState `json:"state,omitempty"`
	// Probes counts probes started, so activity ids stay unique across runs.
	Probes int `json:"probes,omitempty"`
	// TokenHash is the SHA-256 (hex) of the agent's own token.
	TokenHash string `json:"tokenHash,omitempty"`
}

// CreateAgentRequest is the argument of the create update: it gives a new
// agent its token (by hash) before the agent registers.
type CreateAgentRequest struct {
	TokenHash string `json:"tokenHash"`
	Actor     string `json:"actor,omitempty"`
}

// AgentAuth is the answer of the auth query: what authenticates the agent.
type AgentAuth struct {
	TokenHash string `json:"tokenHash,omitempty"`
}
