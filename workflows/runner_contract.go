package workflows

import (
	"strings"
	"time"
)

// RunnerWorkflow's contract: workflow `garo/runner/OWNER/REPO/RUNNER` of
// type RunnerWorkflow on the server's task queue, a child of its
// repository's RepositoryWorkflow; its activities run on its agent's task
// queue. Search attributes GaroAgent, GaroRepository and GaroRunnerState
// (the RunnerState). It tells its repository what becomes of it with
// signal SignalRunner (a RunnerEvent) and takes the pool's controls on
// SignalControl. It answers no update or query.
const RunnerWorkflowName = "RunnerWorkflow"

// RunnerWorkflowID is the workflow id of runner name of owner/repo.
func RunnerWorkflowID(owner, repo, name string) string {
	return "garo/runner/" + strings.ToLower(owner) + "/" + strings.ToLower(repo) + "/" + name
}

// SignalControl carries a RunnerControl from a pool to one of its runners.
const SignalControl = "control"

// Runner controls a pool sends.
const (
	ControlBusy    = "busy"
	ControlJobDone = "jobDone"
	ControlDelete  = "delete"
)

// RunnerControl is what a pool tells one of its runners.
type RunnerControl struct {
	Action string `json:"action"`
	JobID  int64  `json:"jobId,omitempty"`
}

// RunnerState is where a runner is in its life.
type RunnerState string

// Runner states, as the search attribute GaroRunnerState shows them.
const (
	RunnerProvisioning RunnerState = "provisioning"
	RunnerIdle         RunnerState = "idle"
	RunnerBusy         RunnerState = "busy"
	RunnerDeleting     RunnerState = "deleting"
	RunnerDeleted      RunnerState = "deleted"
	RunnerFailed       RunnerState = "failed"
)

// RunnerInput starts a RunnerWorkflow.
type RunnerInput struct {
	// RepositoryID is the workflow id of the runner's RepositoryWorkflow,
	// which it signals. (Its JSON name is from before several pools: it
	// is in the histories of runners still running.)
	RepositoryID string `json:"poolId"`
	// Pool is the name of the runner's pool; empty in runners started
	// before several pools, which are the default pool's.
	Pool             string         `json:"pool,omitempty"`
	Owner            string         `json:"owner"`
	Repo             string         `json:"repo"`
	Name             string         `json:"name"`
	Agent            string         `json:"agent"`
	Labels           []string       `json:"labels"`
	GroupID          int64          `json:"groupId"`
	Ephemeral        bool           `json:"ephemeral"`
	BootstrapTimeout Duration       `json:"bootstrapTimeout"`
	Provider         ProviderConfig `json:"provider"`
	// Resume is set when the workflow continues as new: where it was.
	Resume *RunnerResume `json:"resume,omitempty"`
	// Version is the version of the runner's rules (runnerVersions); 0
	// for a runner started by a repository's workflow from before pools.
	Version int `json:"version,omitempty"`
}

// RunnerResume is what a RunnerWorkflow carries across continue-as-new.
type RunnerResume struct {
	// Online: the runner came online (or took a job) within its
	// bootstrap time; until then BootstrapDeadline bounds the wait.
	Online            bool        `json:"online"`
	BootstrapDeadline time.Time   `json:"bootstrapDeadline"`
	State             RunnerState `json:"state"`
	RunnerID          int64       `json:"runnerId"`
	Busy              bool        `json:"busy,omitempty"`
	JobDone           bool        `json:"jobDone,omitempty"`
	DeleteRequested   bool        `json:"deleteRequested,omitempty"`
	// LateCreate: the create returned after the runner's job had begun.
	LateCreate bool `json:"lateCreate,omitempty"`
	// Calls numbers the activities, so their ids stay unique.
	Calls int `json:"calls"`
}

// RunnerResult is how a runner's life ended.
type RunnerResult struct {
	State    RunnerState `json:"state"`
	RunnerID int64       `json:"runnerId,omitempty"`
	Error    string      `json:"error,omitempty"`
}
