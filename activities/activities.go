// Package activities names the activities that Garo's workflows run on the
// agents' task queues, with the types they exchange. Implementations live
// here when they need nothing but the standard library, and otherwise in a
// subpackage (github, provider and one package per provider).
package activities

import (
	"context"
	"os"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
)

// Activity names as registered with the agent worker.
const (
	ProbeAgentName = "ProbeAgent"
)

// Activity names as registered with the server worker
// (activities/agentpools, activities/runnerends).
const (
	DrainAgentPoolsName  = "DrainAgentPools"
	NotifyAgentPoolsName = "NotifyAgentPools"
	AwaitRunnerEndsName  = "AwaitRunnerEnds"
	AgentOnlineName      = "AgentOnline"
)

// RunnerEnd is how a runner's workflow ended: Status is "completed",
// "failed", "terminated", "timedOut", "canceled" or "notFound" (it never
// ran); Error says more.
type RunnerEnd struct {
	WorkflowID string `json:"workflowId"`
	Status     string `json:"status"`
	Error      string `json:"error,omitempty"`
}

// Names of the GitHub activities the agent serves (activities/github).
const (
	GitHubListRunnersName    = "GitHubListRunners"
	GitHubRunnerByNameName   = "GitHubRunnerByName"
	GitHubRemoveRunnerName   = "GitHubRemoveRunner"
	GitHubListQueuedJobsName = "GitHubListQueuedJobs"
)

// Repo names a repository to the GitHub activities.
type Repo struct {
	Owner string `json:"owner"`
	Name  string `json:"name"`
}

func (r Repo) String() string { return r.Owner + "/" + r.Name }

// QueuedJob is a job GitHub reports queued.
type QueuedJob struct {
	ID        int64     `json:"id"`
	RunID     int64     `json:"runId"`
	Name      string    `json:"name"`
	Labels    []string  `json:"labels"`
	CreatedAt time.Time `json:"createdAt"`
}

// AgentStatusChange is the argument of NotifyAgentPools.
type AgentStatusChange struct {
	Agent  string `json:"agent"`
	Online bool   `json:"online"`
}

// ProbeResult is what the agent's worker answers to a probe: proof that the
// process polling the agent's task queue is alive, and what it is.
type ProbeResult struct {
	Hostname string `json:"hostname,omitempty"`
	PID      int    `json:"pid,omitempty"`
	Version  string `json:"version,omitempty"`
}

// Agent holds the activities every agent serves whatever its providers.
type Agent struct {
	Version string
}

// Register adds the activities to r under their names.
func (a *Agent) Register(r worker.ActivityRegistry) {
	r.RegisterActivityWithOptions(a.ProbeAgent, activity.RegisterOptions{Name: ProbeAgentName})
}

// ProbeAgent answers a probe from the agent's workflow: it proves that a
// worker polls the agent's task queue and says which process it is.
func (a *Agent) ProbeAgent(ctx context.Context) (ProbeResult, error) {
	host, _ := os.Hostname()
	return ProbeResult{Hostname: host, PID: os.Getpid(), Version: a.Version}, nil
}
