package workflows

import "time"

// RepositoryInput starts a RepositoryWorkflow; Repository is set when it
// continues as new.
type RepositoryInput struct {
	Owner      string           `json:"owner"`
	Repo       string           `json:"repo"`
	Repository *RepositoryState `json:"repository,omitempty"`
}

// RepositoryState is everything a repository carries across
// continue-as-new.
type RepositoryState struct {
	// Configured: a pool was configured once. A repository whose pools
	// have all ended then ends too.
	Configured bool `json:"configured"`
	// Pools, by name.
	Pools []PoolState `json:"pools"`
	// Unmatched are the queued jobs no pool fits, oldest first.
	Unmatched      []QueuedJob `json:"unmatched,omitempty"`
	UnmatchedTotal int         `json:"unmatchedTotal,omitempty"`
	// Seen is the dedupe window of job events ("jobID/action"), oldest
	// first.
	Seen []string `json:"seen"`
	// Seq numbers the runners of all pools; Prefix (from the first run
	// id) makes their names unique on GitHub.
	Seq    int    `json:"seq"`
	Prefix string `json:"prefix"`
	// LastPoll is when the repository last asked GitHub for its queued
	// jobs.
	LastPoll time.Time `json:"lastPoll"`
	// Recheck are jobs whose runner was lost while it ran them: the next
	// poll puts those GitHub lists as queued back into the queue.
	Recheck []int64 `json:"recheck,omitempty"`
	// Running are the jobs seen start on a runner of the repository and
	// not seen end, oldest first: a reconciliation asks GitHub how they
	// ended when their webhook was missed, so that each is counted.
	Running []RunningJob `json:"running,omitempty"`
	// Lost are the jobs whose runner was lost while it ran them, in pools
	// that retry lost jobs, until GitHub reports how they ended; Retried
	// the jobs run again, each once.
	Lost    []RunningJob `json:"lost,omitempty"`
	Retried []int64      `json:"retried,omitempty"`
	// Usage are the rolling usage aggregates of the pools, one per pool
	// and agent (usage.go has their limits).
	Usage []UsageLedger `json:"usage,omitempty"`
}

// RunningJob is a job in progress on one of the repository's runners.
type RunningJob struct {
	JobID  int64  `json:"jobId"`
	Pool   string `json:"pool"`
	Runner string `json:"runner"`
}

// PoolState is one pool's part of the RepositoryState.
type PoolState struct {
	Name         string         `json:"name"`
	Config       PoolConfig     `json:"config"`
	ConfiguredBy string         `json:"configuredBy,omitempty"`
	Runners      []RunnerRecord `json:"runners"`
	Queue        []QueuedJob    `json:"queue"`
	Failures     int            `json:"failures"`
	BackoffUntil time.Time      `json:"backoffUntil"`
	Degraded     bool           `json:"degraded"`
	LastError    string         `json:"lastError,omitempty"`
	Draining     bool           `json:"draining"`
	JobsDone     int            `json:"jobsDone"`
	AgentOffline bool           `json:"agentOffline,omitempty"`
	// AgentUnchecked: the pool has not learnt yet whether its agent is
	// online, and starts no runner until it has.
	AgentUnchecked bool `json:"agentUnchecked,omitempty"`
	// UsageTotals are the pool's usage since it was configured.
	UsageTotals UsageTotals `json:"usageTotals,omitzero"`
	// ListPrice is the server's price list's price of its runner-hour, as
	// at its last configure; hourlyPrice, when set, comes first.
	ListPrice float64 `json:"listPrice,omitempty"`
}

// RunnerRecord is a pool's record of one of its runners.
type RunnerRecord struct {
	Name       string      `json:"name"`
	State      RunnerState `json:"state"`
	RunnerID   int64       `json:"runnerId,omitempty"`
	JobID      int64       `json:"jobId,omitempty"`
	CreatedAt  time.Time   `json:"createdAt"`
	IdleSince  *time.Time  `json:"idleSince,omitempty"`
	DeleteSent bool        `json:"deleteSent,omitempty"`
	// Since is when the runner's time in its state was last counted in
	// the usage; a run sets it, at its start, for a runner from before
	// usage was kept.
	Since time.Time `json:"since,omitzero"`
}
