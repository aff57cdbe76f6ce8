package workflows

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Workflow type names of the runner lifecycle.
const (
	RepositoryWorkflowName = "RepositoryWorkflow"
	RunnerWorkflowName     = "RunnerWorkflow"
)

// Updates, signals and queries of RepositoryWorkflow and RunnerWorkflow.
const (
	UpdateConfigure = "configure"
	UpdateDrain     = "drain"
	// SignalRunner carries a RunnerEvent from a runner to its pool.
	SignalRunner = "runner"
	// SignalControl carries a RunnerControl from a pool to a runner.
	SignalControl = "control"
	// SignalAgent carries an AgentStatusEvent to the agent's pools.
	SignalAgent = "agent"
)

// AgentStatusEvent tells a pool that its agent went online or offline.
type AgentStatusEvent struct {
	Agent  string `json:"agent"`
	Online bool   `json:"online"`
}

// Defaults and limits of a pool's configuration.
const (
	DefaultAgent            = "local"
	DefaultMaxRunners       = 3
	DefaultIdleGracePeriod  = 2 * time.Minute
	DefaultBootstrapTimeout = 10 * time.Minute
	DefaultRunnerGroup      = "default"
	DefaultProviderKind     = "process"
	DefaultQueuePoll        = 2 * time.Minute
	MaxRunnersLimit         = 1000
	MaxPoolLabels           = 64
)

// DefaultPoolLabels are the labels of a pool that names none.
func DefaultPoolLabels() []string { return []string{"self-hosted", "linux"} }

// ProviderConfig selects the provider of a pool's runners: "kind" and the
// provider's own options, all strings.
type ProviderConfig map[string]string

// Kind is the provider kind.
func (p ProviderConfig) Kind() string { return p["kind"] }

// PoolConfig is the runner configuration of one repository.
type PoolConfig struct {
	Agent            string   `json:"agent"`
	Labels           []string `json:"labels"`
	MinIdle          int      `json:"minIdle"`
	MaxRunners       int      `json:"maxRunners"`
	IdleGracePeriod  Duration `json:"idleGracePeriod"`
	BootstrapTimeout Duration `json:"bootstrapTimeout"`
	// QueuePollInterval is how often the pool asks GitHub for its queued
	// jobs, to find those whose webhook never arrived (conditional
	// requests: an unchanged queue costs no rate limit).
	QueuePollInterval Duration       `json:"queuePollInterval,omitempty"`
	Ephemeral         bool           `json:"ephemeral"`
	RunnerGroup       string         `json:"runnerGroup"`
	Provider          ProviderConfig `json:"provider"`
}

// PoolConfigRequest is the body of PUT /api/v1/repositories/{owner}/{repo}:
// omitted fields take their defaults.
type PoolConfigRequest struct {
	Agent             *string        `json:"agent,omitempty"`
	Labels            []string       `json:"labels,omitempty"`
	MinIdle           *int           `json:"minIdle,omitempty"`
	MaxRunners        *int           `json:"maxRunners,omitempty"`
	IdleGracePeriod   *Duration      `json:"idleGracePeriod,omitempty"`
	BootstrapTimeout  *Duration      `json:"bootstrapTimeout,omitempty"`
	QueuePollInterval *Duration      `json:"queuePollInterval,omitempty"`
	Ephemeral         *bool          `json:"ephemeral,omitempty"`
	RunnerGroup       *string        `json:"runnerGroup,omitempty"`
	Provider          ProviderConfig `json:"provider,omitempty"`
}

// Config applies the defaults to r.
func (r PoolConfigRequest) Config() PoolConfig {
	c := PoolConfig{Agent: DefaultAgent, Labels: DefaultPoolLabels(), MaxRunners: DefaultMaxRunners,
		IdleGracePeriod: Duration(DefaultIdleGracePeriod), BootstrapTimeout: Duration(DefaultBootstrapTimeout),
		QueuePollInterval: Duration(DefaultQueuePoll),
		Ephemeral:         true, RunnerGroup: DefaultRunnerGroup, Provider: ProviderConfig{"kind": DefaultProviderKind}}
	if r.Agent != nil {
		c.Agent = *r.Agent
	}
	if r.Labels != nil {
		c.Labels = r.Labels
	}
	if r.MinIdle != nil {
		c.MinIdle = *r.MinIdle
	}
	if r.MaxRunners != nil {
		c.MaxRunners = *r.MaxRunners
	}
	if r.IdleGracePeriod != nil {
		c.IdleGracePeriod = *r.IdleGracePeriod
	}
	if r.BootstrapTimeout != nil {
		c.BootstrapTimeout = *r.BootstrapTimeout
	}
	if r.QueuePollInterval != nil {
		c.QueuePollInterval = *r.QueuePollInterval
	}
	if r.Ephemeral != nil {
		c.Ephemeral = *r.Ephemeral
	}
	if r.RunnerGroup != nil {
		c.RunnerGroup = *r.RunnerGroup
	}
	if r.Provider != nil {
		c.Provider = r.Provider
	}
	return c
}

// Validate checks a pool's configuration, except what needs I/O (that the
// agent exists and offers the provider), which the API checks.
func (c PoolConfig) Validate() error {
	var errs []error
	if err := ValidateAgentName(c.Agent); err != nil {
		errs = append(errs, err)
	}
	if c.MinIdle < 0 || c.MinIdle > c.MaxRunners || c.MaxRunners > MaxRunnersLimit {
		errs = append(errs, fmt.Errorf("want 0 <= minIdle (%d) <= maxRunners (%d) <= %d", c.MinIdle, c.MaxRunners, MaxRunnersLimit))
	}
	if c.MaxRunners < 1 {
		errs = append(errs, errors.New("maxRunners must be at least 1"))
	}
	if d := c.IdleGracePeriod.D(); d < time.Second || d > 24*time.Hour {
		errs = append(errs, fmt.Errorf("idleGracePeriod %s out of range [1s, 24h]", c.IdleGracePeriod))
	}
	if d := c.BootstrapTimeout.D(); d < 10*time.Second || d > 6*time.Hour {
		errs = append(errs, fmt.Errorf("bootstrapTimeout %s out of range [10s, 6h]", c.BootstrapTimeout))
	}
	if d := c.QueuePollInterval.D(); d != 0 && (d < 10*time.Second || d > time.Hour) {
		errs = append(errs, fmt.Errorf("queuePollInterval %s out of range [10s, 1h]", c.QueuePollInterval))
	}
	if len(c.Labels) == 0 || len(c.Labels) > MaxPoolLabels {
		errs = append(errs, fmt.Errorf("labels: want 1 to %d", MaxPoolLabels))
	}
	for _, l := range c.Labels {
		if strings.TrimSpace(l) == "" || len(l) > MaxAgentLabelLen || strings.Contains(l, ",") {
			errs = append(errs, fmt.Errorf("label %q must be 1-%d characters without commas", l, MaxAgentLabelLen))
		}
	}
	if _, err := RunnerGroupID(c.RunnerGroup); err != nil {
		errs = append(errs, err)
	}
	if c.Provider.Kind() == "" {
		errs = append(errs, errors.New("provider.kind is required"))
	}
	if len(c.Provider) > 32 {
		errs = append(errs, errors.New("provider: at most 32 options"))
	}
	for k, v := range c.Provider {
		if len(k) > 64 || len(v) > 1024 {
			errs = append(errs, fmt.Errorf("provider option %q too long", k))
		}
	}
	return errors.Join(errs...)
}

// RunnerGroupID maps a runner group to GitHub's id: "default" is 1; other
// groups are given by id.
func RunnerGroupID(group string) (int64, error) {
	if group == "" || group == DefaultRunnerGroup {
		return 1, nil
	}
	id, err := strconv.ParseInt(group, 10, 64)
	if err != nil || id < 1 {
		return 0, fmt.Errorf("runnerGroup %q: want \"default\" or a group id", group)
	}
	return id, nil
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

// RunnerEvent is what a RunnerWorkflow tells its pool.
type RunnerEvent struct {
	Name     string      `json:"name"`
	State    RunnerState `json:"state"`
	RunnerID int64       `json:"runnerId,omitempty"`
	Error    string      `json:"error,omitempty"`
}

// Runner controls a pool sends.
const (
	ControlBusy     = "busy"
	ControlJobDone  = "jobDone"
	ControlDelete   = "delete"
	ControlFinished = "finished"
)

// RunnerControl is what a pool tells one of its runners.
type RunnerControl struct {
	Action string `json:"action"`
	JobID  int64  `json:"jobId,omitempty"`
}

// RunnerView is one runner as the API shows it.
type RunnerView struct {
	Name      string      `json:"name"`
	State     RunnerState `json:"state"`
	RunnerID  int64       `json:"runnerId,omitempty"`
	JobID     int64       `json:"jobId,omitempty"`
	CreatedAt time.Time   `json:"createdAt"`
	IdleSince *time.Time  `json:"idleSince,omitempty"`
}

// QueuedJob is a job waiting for a runner.
type QueuedJob struct {
	JobID    int64     `json:"jobId"`
	RunID    int64     `json:"runId,omitempty"`
	Name     string    `json:"name,omitempty"`
	Labels   []string  `json:"labels"`
	QueuedAt time.Time `json:"queuedAt"`
}

// PoolView is a pool's configuration and live state: the state query, the
// memo (without runners and queue) and the REST API.
type PoolView struct {
	Repository string     `json:"repository"`
	Config     PoolConfig `json:"config"`
	Draining   bool       `json:"draining"`
	Degraded   bool       `json:"degraded"`
	// AgentOffline: the agent missed its heartbeats; provisioning waits.
	AgentOffline bool         `json:"agentOffline,omitempty"`
	LastError    string       `json:"lastError,omitempty"`
	Runners      []RunnerView `json:"runners"`
	Queue        []QueuedJob  `json:"queue"`
	Counts       PoolCounts   `json:"counts"`
	// ConfiguredBy is the identity of the last configure.
	ConfiguredBy string `json:"configuredBy,omitempty"`
}

// PoolCounts sums the runners by state and the queue.
type PoolCounts struct {
	Provisioning int `json:"provisioning"`
	Idle         int `json:"idle"`
	Busy         int `json:"busy"`
	Deleting     int `json:"deleting"`
	Queued       int `json:"queued"`
	JobsDone     int `json:"jobsDone"`
}

// ConfigureRequest is the argument of the configure update.
type ConfigureRequest struct {
	Config PoolConfig `json:"config"`
	Actor  string     `json:"actor,omitempty"`
}

// DrainRequest is the argument of the drain update.
type DrainRequest struct {
	Actor string `json:"actor,omitempty"`
}

// RunnerWorkflowID is the workflow id of runner name of owner/repo.
func RunnerWorkflowID(owner, repo, name string) string {
	return "garo/runner/" + strings.ToLower(owner) + "/" + strings.ToLower(repo) + "/" + name
}

// LabelsMatch reports whether every label a job asks for is among the
// pool's, case-insensitively, as GitHub matches runs-on.
func LabelsMatch(job, pool []string) bool {
	for _, j := range job {
		found := false
		for _, p := range pool {
			if strings.EqualFold(j, p) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
