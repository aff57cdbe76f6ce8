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
	// StartRunnersName starts a pool's runner workflows;
	// WatchRunnerEndsName finds those that ended unseen
	// (activities/runnerlife).
	StartRunnersName    = "StartRunners"
	WatchRunnerEndsName = "WatchRunnerEnds"
	AgentOnlineName     = "AgentOnline"
	ReaperScopeName     = "ReaperScope"
	ReaperOwnedName     = "ReaperOwned"
)

// Names of the reaper's activities on the agent's queue
// (activities/runners).
const (
	ReaperInventoryName = "ReaperInventory"
	ReaperRemoveName    = "ReaperRemove"
)

// ReaperScope is what the reaper of an agent looks at: the repositories of
// its pools. Registered is false when the agent is unregistered (its
// reaper's schedule is then deleted).
type ReaperScope struct {
	Registered   bool   `json:"registered"`
	Repositories []Repo `json:"repositories,omitempty"`
}

// ReaperInventoryInput asks an agent for its instances and for the
// registrations of Garo's runners in the repositories.
type ReaperInventoryInput struct {
	Agent        string `json:"agent"`
	Repositories []Repo `json:"repositories,omitempty"`
}

// ReaperItem is an instance or a registration the reaper found.
type ReaperItem struct {
	Repo     Repo   `json:"repo"`
	Name     string `json:"name"`
	RunnerID int64  `json:"runnerId,omitempty"`
	Busy     bool   `json:"busy,omitempty"`
}

// String names the item as owner/repo/runner.
func (i ReaperItem) String() string { return i.Repo.String() + "/" + i.Name }

// ReaperInventory is what an agent has: its instances (by Garo's tags) and
// the registrations named as Garo names runners.
type ReaperInventory struct {
	Instances     []ReaperItem `json:"instances,omitempty"`
	Registrations []ReaperItem `json:"registrations,omitempty"`
}

// ReaperRemoveInput asks an agent to remove orphans.
type ReaperRemoveInput struct {
	Agent         string       `json:"agent"`
	Instances     []ReaperItem `json:"instances,omitempty"`
	Registrations []ReaperItem `json:"registrations,omitempty"`
}

// ReaperRemoved is what ReaperRemove removed, and the busy registrations
// it kept.
type ReaperRemoved struct {
	Instances     []string `json:"instances,omitempty"`
	Registrations []string `json:"registrations,omitempty"`
	Busy          []string `json:"busy,omitempty"`
}

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
	GitHubReconcileName      = "GitHubReconcile"
	GitHubRerunJobName       = "GitHubRerunJob"
)

// RerunInput asks GitHub to run a job again (a new attempt of its run).
type RerunInput struct {
	Repo  Repo  `json:"repo"`
	JobID int64 `json:"jobId"`
}

// RerunResult says whether GitHubRerunJob started a new attempt, or found
// the run at a later attempt already (a retry of the activity).
type RerunResult struct {
	Rerun   bool `json:"rerun"`
	Already bool `json:"already,omitempty"`
}

// ReconcileInput asks GitHub's view of a repository: its queued jobs, the
// jobs started, the status of the jobs Running, and the runners named.
type ReconcileInput struct {
	Repo Repo `json:"repo"`
	// Running are the jobs the repository has seen start and not end.
	Running []int64 `json:"running,omitempty"`
	// Runners are the runners whose GitHub status is wanted.
	Runners []string `json:"runners,omitempty"`
	// RedeliverSince, when set, asks GitHub to redeliver the workflow_job
	// webhooks of the repository that failed since then.
	RedeliverSince *time.Time `json:"redeliverSince,omitempty"`
	// RunnersOnly asks for the runners named only: no look at the runs.
	RunnersOnly bool `json:"runnersOnly,omitempty"`
}

// MaxReconcileJobs bounds the jobs one reconciliation looks up one by one.
const MaxReconcileJobs = 100

// Reconciliation is GitHub's view of a repository, taken by GitHubReconcile.
type Reconciliation struct {
	// Queued are the jobs queued now; QueuedComplete says they are all of
	// them (a look GitHub's limits cut short lists fewer).
	Queued         []QueuedJob `json:"queued,omitempty"`
	QueuedComplete bool        `json:"queuedComplete,omitempty"`
	// Started are the jobs in progress, with their runners.
	Started []JobState `json:"started,omitempty"`
	// Ended are the Running jobs GitHub reports completed (or that it no
	// longer knows: status "gone").
	Ended []JobState `json:"ended,omitempty"`
	// Runners are the runners asked for that GitHub lists; one it does not
	// list is not registered.
	Runners []RunnerState `json:"runners,omitempty"`
	// Redelivered is how many failed webhooks GitHub was asked to send
	// again; RedeliverError why that failed (the rest stands).
	Redelivered    int    `json:"redelivered,omitempty"`
	RedeliverError string `json:"redeliverError,omitempty"`
}

// JobState is a job as GitHub reports it.
type JobState struct {
	QueuedJob
	Status     string `json:"status"`
	Conclusion string `json:"conclusion,omitempty"`
	RunnerName string `json:"runnerName,omitempty"`
	// StartedAt is when it began on a runner: the end of its queue wait;
	// CompletedAt when it ended.
	StartedAt   *time.Time `json:"startedAt,omitempty"`
	CompletedAt *time.Time `json:"completedAt,omitempty"`
}

// RunnerState is a runner as GitHub lists it.
type RunnerState struct {
	Name   string `json:"name"`
	ID     int64  `json:"id"`
	Status string `json:"status"`
	Busy   bool   `json:"busy"`
}

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

// Names of the sweep's activities: SweepScope and SweepSignal on the
// server's queue (activities/agentpools), SweepRepos on the agent's
// (activities/github).
const (
	SweepScopeName  = "SweepScope"
	SweepReposName  = "SweepRepos"
	SweepSignalName = "SweepSignal"
)

// SweepRepo is a repository with dormant pools of an agent (no job, no
// runner): the sweep looks at it every Every, and tells Pools (their
// workflow ids) when it has runs queued or in progress.
type SweepRepo struct {
	Repo  Repo          `json:"repo"`
	Every time.Duration `json:"every"`
	Pools []string      `json:"pools"`
}

// SweepScope is what an agent's sweep looks at; Registered is false when
// the agent is unregistered (its sweep's schedule is then deleted).
type SweepScope struct {
	Registered bool        `json:"registered"`
	Repos      []SweepRepo `json:"repos,omitempty"`
}
