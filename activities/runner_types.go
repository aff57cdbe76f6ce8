package activities

import (
	"context"
	"time"
)

// Names of the runner activities the agent serves (activities/runners).
const (
	CreateRunnerName = "CreateRunner"
	DeleteRunnerName = "DeleteRunner"
	RunnerStatusName = "RunnerStatus"
	// WatchRunnerName watches a serving runner's instance until it exits.
	WatchRunnerName = "WatchRunner"
	// RunRunnerName runs a runner's whole life: create, watch, delete.
	RunRunnerName = "RunRunner"
)

// CreateRunnerInput asks an agent to register a runner with GitHub and
// start its instance, in one activity, so that the JIT config (a secret)
// goes from GitHub to the instance and nowhere else.
type CreateRunnerInput struct {
	Owner     string            `json:"owner"`
	Repo      string            `json:"repo"`
	Name      string            `json:"name"`
	Labels    []string          `json:"labels"`
	GroupID   int64             `json:"groupId"`
	Ephemeral bool              `json:"ephemeral"`
	Provider  map[string]string `json:"provider"`
}

// CreateRunnerResult holds ids only.
type CreateRunnerResult struct {
	RunnerID   int64  `json:"runnerId"`
	InstanceID string `json:"instanceId"`
}

// DeleteRunnerInput asks an agent to remove a runner from GitHub and then
// delete its instance.
type DeleteRunnerInput struct {
	Owner    string            `json:"owner"`
	Repo     string            `json:"repo"`
	Name     string            `json:"name"`
	RunnerID int64             `json:"runnerId"`
	Provider map[string]string `json:"provider"`
	// GitHubDone: GitHub removed the runner itself (an ephemeral runner
	// after its job), so only the instance is deleted: no request.
	GitHubDone bool `json:"githubDone,omitempty"`
	// WaitBusy: a runner GitHub reports busy is waited for (heartbeating)
	// until it is removed or its instance ends, rather than refused.
	WaitBusy bool `json:"waitBusy,omitempty"`
	// Pool, when set, is the workflow id of the runner's pool, which the
	// agent tells of the runner's end.
	Pool string `json:"pool,omitempty"`
}

// RunnerStatusInput asks for a runner's status on GitHub and its instance.
type RunnerStatusInput struct {
	Owner    string            `json:"owner"`
	Repo     string            `json:"repo"`
	Name     string            `json:"name"`
	RunnerID int64             `json:"runnerId"`
	Provider map[string]string `json:"provider"`
	// InstanceOnly asks about the instance alone: no GitHub request.
	InstanceOnly bool `json:"instanceOnly,omitempty"`
}

// RunnerStatus is a runner's status: GitHubStatus is "online", "offline"
// or "absent"; Instance is "running", "exited" or "absent".
type RunnerStatus struct {
	GitHubStatus string `json:"githubStatus"`
	Busy         bool   `json:"busy"`
	Instance     string `json:"instance"`
	// ExitCode of an exited instance.
	ExitCode int `json:"exitCode,omitempty"`
}

// RunRunnerInput asks an agent to run a runner's whole life in one
// activity: register it with GitHub and start its instance (as
// CreateRunner), watch the instance until it ends, then remove what is
// left, and report the end to the runner's pool. A cancellation of the
// activity by its workflow asks for the runner's deletion: a busy runner
// is left to finish its job first.
type RunRunnerInput struct {
	CreateRunnerInput
	// Pool is the workflow id of the runner's pool.
	Pool string `json:"pool"`
}

// RunRunnerResult is how a runner's life ended: Outcome is one of the
// Outcome constants, ExitCode the instance's when it exited.
type RunRunnerResult struct {
	Outcome  string `json:"outcome"`
	ExitCode int    `json:"exitCode,omitempty"`
	RunnerID int64  `json:"runnerId,omitempty"`
}

// Runner report events.
const (
	// ReportEnded: the runner's life is over: its instance is gone (or
	// was never made), and its registration removed unless GitHub
	// removes it itself.
	ReportEnded = "ended"
)

// Outcomes of a runner's life.
const (
	// OutcomeExited: the instance ended by itself with ExitCode.
	OutcomeExited = "exited"
	// OutcomeVanished: the instance disappeared.
	OutcomeVanished = "vanished"
	// OutcomeDeleted: it was deleted, as its pool asked.
	OutcomeDeleted = "deleted"
	// OutcomeFailed: it could not be created (Error says why).
	OutcomeFailed = "failed"
)

// RunnerReport is what an agent reports of one of its runners to the
// runner's pool, through the server, which sets Agent from the caller's
// identity: a pool takes a report only from the agent its runner runs on.
type RunnerReport struct {
	Runner   string    `json:"runner"`
	Agent    string    `json:"agent"`
	Event    string    `json:"event"`
	At       time.Time `json:"at"`
	Outcome  string    `json:"outcome,omitempty"`
	ExitCode int       `json:"exitCode,omitempty"`
	RunnerID int64     `json:"runnerId,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// RunnerReportList is what an agent sends the server of its runners
// (POST /api/v1/agents/{name}/runner-reports).
type RunnerReportList struct {
	Reports []PoolRunnerReport `json:"reports"`
}

// PoolRunnerReport is one report, with the workflow id of the runner's
// pool.
type PoolRunnerReport struct {
	Pool string `json:"pool"`
	RunnerReport
}

// Reporter carries an agent's reports of its runners to their pools.
// Report returns once the report is delivered, or with ctx's error.
type Reporter interface {
	Report(ctx context.Context, pool string, r RunnerReport) error
}
