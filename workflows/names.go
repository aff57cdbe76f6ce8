// Package workflows holds Garo's Temporal workflow definitions and the types
// they exchange with the API and the workers. Everything in this package is
// deterministic workflow code or plain data.
package workflows

import (
	"fmt"
	"regexp"

	"go.temporal.io/sdk/temporal"
)

// ServerTaskQueue is the task queue of the control-plane workflows; every
// garo server replica polls it.
const ServerTaskQueue = "garo-server"

// Workflow type names, as registered with the workers and shown in the Web UI.
const (
	AgentWorkflowName = "AgentWorkflow"
)

// Update and query names of AgentWorkflow.
const (
	UpdateRegister    = "register"
	UpdateHeartbeat   = "heartbeat"
	UpdateUnregister  = "unregister"
	UpdateCreateAgent = "create"
	QueryState        = "state"
	QueryAuth         = "auth"
)

// Custom search attributes that make every run findable in the Web UI. They
// must be registered on the namespace (garo server does so at start).
var (
	SearchAttributeAgent       = temporal.NewSearchAttributeKeyKeyword("GaroAgent")
	SearchAttributeRepository  = temporal.NewSearchAttributeKeyKeyword("GaroRepository")
	SearchAttributeRunnerState = temporal.NewSearchAttributeKeyKeyword("GaroRunnerState")
)

// SearchAttributeKeys lists every custom search attribute Garo uses.
func SearchAttributeKeys() []temporal.SearchAttributeKeyKeyword {
	return []temporal.SearchAttributeKeyKeyword{SearchAttributeAgent, SearchAttributeRepository, SearchAttributeRunnerState}
}

// MemoSummary is the memo field that carries a workflow's summary, so that a
// listing needs no query per workflow.
const MemoSummary = "summary"

// RunningQuery is the visibility query of the running workflows of a
// type, of one agent when agent is set (a validated agent name, safe to
// quote).
func RunningQuery(workflowType, agent string) string {
	q := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", workflowType)
	if agent != "" {
		q += fmt.Sprintf(" AND %s = '%s'", SearchAttributeAgent.GetName(), agent)
	}
	return q
}

// AgentWorkflowID is the workflow id of the agent called name.
func AgentWorkflowID(name string) string { return "garo/agent/" + name }

// AgentTaskQueue is the task queue the agent called name polls for the
// activities that touch its credentials and compute.
func AgentTaskQueue(name string) string { return "garo-agent-" + name }

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
