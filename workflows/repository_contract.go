package workflows

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/garo-run/garo/internal/ghname"
)

// RepositoryWorkflow's contract: workflow `garo/repo/OWNER/REPO`
// (lower-cased) of type RepositoryWorkflow on the server's task queue owns
// the runner pools of one repository: each pool's config, runners and
// queue, and the jobs that no pool fits. Its runners are RunnerWorkflow
// children. Search attributes GaroRepository, GaroAgents (every pool's
// agent) and GaroAgent (one of them); memo summary: the RepositoryView
// without runners and queues. QueryState answers the whole RepositoryView.
const RepositoryWorkflowName = "RepositoryWorkflow"

// RepositoryWorkflowID is the workflow id of the pools of owner/repo.
func RepositoryWorkflowID(owner, repo string) string {
	return "garo/repo/" + strings.ToLower(owner) + "/" + strings.ToLower(repo)
}

// Signals of RepositoryWorkflow.
const (
	// SignalJob carries a JobEvent from GitHub's webhook.
	SignalJob = "job"
	// SignalRunner carries a RunnerEvent from one of its runners.
	SignalRunner = "runner"
	// SignalAgent carries an AgentStatusEvent to the pools of the agent.
	SignalAgent = "agent"
)

// Updates of RepositoryWorkflow.
const (
	// UpdateConfigure creates or changes a pool: ConfigureRequest, answers
	// the PoolView.
	UpdateConfigure = "configure"
	// UpdateDrain drains a pool, or every pool of an agent: DrainRequest,
	// answers the RepositoryView.
	UpdateDrain = "drain"
)

// Error types of RepositoryWorkflow's updates, beside the shared ones
// (ErrTypeInvalidRequest, ErrTypeNotFound: no such pool).
const (
	// ErrTypeDraining: the pool is draining; it takes no configuration
	// until it has ended.
	ErrTypeDraining = "Draining"
	// ErrTypeClosing: the repository's last pool has ended and its
	// workflow is finishing; retry, and a new one starts.
	ErrTypeClosing = "Closing"
)

// DefaultPool is the pool that /api/v1/repositories/{owner}/{repo} stands
// for, and the pool of every repository configured before several pools.
const DefaultPool = "default"

// Limits of a repository's bookkeeping.
const (
	// MaxPools bounds the pools of one repository.
	MaxPools = 32
	// MaxUnmatched bounds the jobs kept in a repository's list of jobs
	// that no pool fits; the oldest go first.
	MaxUnmatched = 1000
)

var poolNamePattern = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// ValidatePoolName reports whether name can name a pool: 1 to 32
// lower-case letters, digits and hyphens.
func ValidatePoolName(name string) error {
	if !poolNamePattern.MatchString(name) {
		return fmt.Errorf("invalid pool name %q: want 1-32 lower-case letters, digits or hyphens", name)
	}
	return nil
}

// ParseRepository splits "owner/repo" and checks both parts as GitHub
// allows them (internal/ghname). GitHub treats names case-insensitively;
// Garo keys its workflows by the lower-case form.
func ParseRepository(full string) (owner, repo string, err error) {
	return ghname.Parse(full)
}

// Job actions of the workflow_job webhook.
const (
	JobQueued     = "queued"
	JobWaiting    = "waiting"
	JobInProgress = "in_progress"
	JobCompleted  = "completed"
)

// JobEvent is one workflow_job webhook delivery, reduced to what the pools
// need (signal SignalJob). It holds no secret.
type JobEvent struct {
	DeliveryID  string     `json:"deliveryId,omitempty"`
	Action      string     `json:"action"`
	Repository  string     `json:"repository"`
	JobID       int64      `json:"jobId"`
	RunID       int64      `json:"runId,omitempty"`
	RunAttempt  int64      `json:"runAttempt,omitempty"`
	Name        string     `json:"name,omitempty"`
	Labels      []string   `json:"labels,omitempty"`
	RunnerID    int64      `json:"runnerId,omitempty"`
	RunnerName  string     `json:"runnerName,omitempty"`
	Conclusion  string     `json:"conclusion,omitempty"`
	CreatedAt   *time.Time `json:"createdAt,omitempty"`
	StartedAt   *time.Time `json:"startedAt,omitempty"`
	CompletedAt *time.Time `json:"completedAt,omitempty"`
	// Routed: the server routed the job to the pool it delivers the
	// event to (by its labels); otherwise the event is delivered for the
	// runner it names. Unmatched: no pool fits the job, and the pool it is
	// delivered to keeps such jobs.
	Routed    bool `json:"routed,omitempty"`
	Unmatched bool `json:"unmatched,omitempty"`
}

// SignalResync asks a repository to reconcile with GitHub at once (a
// ResyncRequest): the server sends it when it starts, and when Temporal
// takes signals again after it refused a webhook of the repository.
const SignalResync = "resync"

// ResyncRequest says why a repository is asked to reconcile now.
type ResyncRequest struct {
	Reason string `json:"reason"`
	// FailedSince, when set, is when webhooks of the repository began to
	// fail: the reconciliation asks GitHub to redeliver those since then.
	FailedSince *time.Time `json:"failedSince,omitempty"`
}

// RunnerEvent is what a RunnerWorkflow tells its repository (signal
// SignalRunner).
type RunnerEvent struct {
	Name     string      `json:"name"`
	State    RunnerState `json:"state"`
	RunnerID int64       `json:"runnerId,omitempty"`
	Error    string      `json:"error,omitempty"`
}

// AgentStatusEvent tells a repository's pools that their agent went
// online or offline (signal SignalAgent).
type AgentStatusEvent struct {
	Agent  string `json:"agent"`
	Online bool   `json:"online"`
}

// ConfigureRequest is the argument of the configure update: the pool's
// whole Config, or a JSON merge Patch (RFC 7386) of the pool's config as
// it is (or of the defaults, for a new pool), which the workflow applies
// itself, so that concurrent patches lose nothing. With a Patch, Config is
// what the caller expects it to give (its agent names the workflow's
// agent search attributes when the request starts it); it sets nothing.
type ConfigureRequest struct {
	// Pool names the pool; empty is DefaultPool (as in every request
	// sent before several pools).
	Pool   string          `json:"pool,omitempty"`
	Config PoolConfig      `json:"config"`
	Patch  json.RawMessage `json:"patch,omitempty"`
	Actor  string          `json:"actor,omitempty"`
	// Prices is the server's price list: a pool whose hourlyPrice is 0
	// is priced by it (PriceOf), as at this configure.
	Prices []ProviderPrice `json:"prices,omitempty"`
	// Routes are the repository's pools as the server knows them, with
	// this one as the request makes it (a PoolWorkflow's routes).
	Routes *Routes `json:"routes,omitempty"`
}

// PoolName is the pool the request names.
func (r ConfigureRequest) PoolName() string { return poolOrDefault(r.Pool) }

// DrainRequest is the argument of the drain update: it drains the pool
// named, or every pool of Agent when that is set.
type DrainRequest struct {
	// Pool names the pool; empty is DefaultPool.
	Pool  string `json:"pool,omitempty"`
	Agent string `json:"agent,omitempty"`
	Actor string `json:"actor,omitempty"`
}

// PoolName is the pool the request names.
func (r DrainRequest) PoolName() string { return poolOrDefault(r.Pool) }

func poolOrDefault(name string) string {
	if name == "" {
		return DefaultPool
	}
	return name
}

// RunnerView is one runner as the API shows it.
type RunnerView struct {
	Name string `json:"name"`
	// Pool is set where runners of several pools are listed together.
	Pool      string      `json:"pool,omitempty"`
	State     RunnerState `json:"state"`
	RunnerID  int64       `json:"runnerId,omitempty"`
	JobID     int64       `json:"jobId,omitempty"`
	CreatedAt time.Time   `json:"createdAt"`
	IdleSince *time.Time  `json:"idleSince,omitempty"`
}

// QueuedJob is a job waiting for a runner.
type QueuedJob struct {
	JobID int64 `json:"jobId"`
	RunID int64 `json:"runId,omitempty"`
	// Pool is set where jobs of several pools are listed together.
	Pool     string    `json:"pool,omitempty"`
	Name     string    `json:"name,omitempty"`
	Labels   []string  `json:"labels"`
	QueuedAt time.Time `json:"queuedAt"`
}

// PoolView is a pool's configuration and live state, as the API shows it;
// in the memo it comes without runners and queue.
type PoolView struct {
	Repository string     `json:"repository"`
	Pool       string     `json:"pool"`
	Config     PoolConfig `json:"config"`
	Draining   bool       `json:"draining"`
	Degraded   bool       `json:"degraded"`
	// AgentOffline: the agent missed its heartbeats; provisioning waits.
	AgentOffline bool         `json:"agentOffline,omitempty"`
	LastError    string       `json:"lastError,omitempty"`
	Runners      []RunnerView `json:"runners"`
	Queue        []QueuedJob  `json:"queue"`
	Counts       PoolCounts   `json:"counts"`
	// OldestQueuedAt is when the job waiting longest was queued; zero while
	// the queue is empty. The memo carries it as it was when the counts
	// were last published.
	OldestQueuedAt time.Time `json:"oldestQueuedAt,omitzero"`
	// ConfiguredBy is the identity of the last configure.
	ConfiguredBy string `json:"configuredBy,omitempty"`
	// Usage are the pool's usage figures since it was configured, as at
	// Usage.At (the memo carries them as they were when it was last
	// published).
	Usage *UsageTotals `json:"usage,omitempty"`
}

// PoolCounts sums a pool's runners by state and its queue.
type PoolCounts struct {
	Provisioning int `json:"provisioning"`
	Idle         int `json:"idle"`
	Busy         int `json:"busy"`
	Deleting     int `json:"deleting"`
	Queued       int `json:"queued"`
	JobsDone     int `json:"jobsDone"`
}

// RepositoryView is a repository's pools and the jobs no pool fits: the
// state query, and (pools without runners and queue, no unmatched jobs)
// the memo.
type RepositoryView struct {
	Repository string     `json:"repository"`
	Pools      []PoolView `json:"pools"`
	// Unmatched are the queued jobs whose labels no pool's fit, oldest
	// first.
	Unmatched []QueuedJob `json:"unmatched,omitempty"`
	// UnmatchedJobs counts them.
	UnmatchedJobs int `json:"unmatchedJobs"`
	// UnmatchedTotal counts every job that fitted no pool when it was
	// queued, since the repository's first pool.
	UnmatchedTotal int `json:"unmatchedTotal"`
}

// Pool returns the view of the pool called name.
func (v RepositoryView) Pool(name string) (PoolView, bool) {
	for _, p := range v.Pools {
		if p.Pool == name {
			return p, true
		}
	}
	return PoolView{}, false
}
