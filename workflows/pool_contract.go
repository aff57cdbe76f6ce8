package workflows

import (
	"strings"

	"github.com/garo-run/garo/activities"
)

// PoolWorkflow's contract: workflow `garo/pool/repo/OWNER/REPO/POOL`
// (owner and repository lower-cased) of type PoolWorkflow on the server's
// task queue owns one runner pool: its config, its demand (a count of
// queued jobs and a bounded page of the oldest), its runners by state,
// and its usage. Its runners are RunnerWorkflows that it starts through
// the server's activity StartRunners. Search attributes GaroRepository,
// GaroPool, GaroAgent and GaroAgents; memo summary: the PoolView without
// runners and queue. QueryState answers the PoolStatus, QueryUsage the
// pool's usage.
const PoolWorkflowName = "PoolWorkflow"

// poolIDPrefix starts the workflow id of every repository pool.
const poolIDPrefix = "garo/pool/repo/"

// PoolWorkflowID is the workflow id of pool of owner/repo.
func PoolWorkflowID(owner, repo, pool string) string {
	return poolIDPrefix + strings.ToLower(owner) + "/" + strings.ToLower(repo) + "/" + pool
}

// PoolRef names a pool: its repository and its name.
type PoolRef struct {
	Owner string `json:"owner"`
	Repo  string `json:"repo"`
	Pool  string `json:"pool"`
}

// Repository is the pool's repository, owner/repo.
func (r PoolRef) Repository() string { return r.Owner + "/" + r.Repo }

// WorkflowID is the pool's workflow id.
func (r PoolRef) WorkflowID() string { return PoolWorkflowID(r.Owner, r.Repo, r.Pool) }

// Key names the pool in the search attribute GaroPool: owner/repo/pool,
// lower-cased as its workflow id.
func (r PoolRef) Key() string {
	return strings.ToLower(r.Owner) + "/" + strings.ToLower(r.Repo) + "/" + r.Pool
}

// ParsePoolWorkflowID reads a pool's workflow id; false when id is not
// one, or names what GitHub or Garo would refuse.
func ParsePoolWorkflowID(id string) (PoolRef, bool) {
	rest, ok := strings.CutPrefix(id, poolIDPrefix)
	if !ok {
		return PoolRef{}, false
	}
	i := strings.LastIndex(rest, "/")
	if i < 0 {
		return PoolRef{}, false
	}
	owner, repo, err := ParseRepository(rest[:i])
	if err != nil || ValidatePoolName(rest[i+1:]) != nil {
		return PoolRef{}, false
	}
	return PoolRef{Owner: owner, Repo: repo, Pool: rest[i+1:]}, true
}

// Signals of PoolWorkflow, beside SignalAgent and SignalResync.
const (
	// SignalIntake carries an IntakeBatch: job events of GitHub's webhook
	// that the server routed to the pool, reports of its runners'
	// agents, and jobs another pool of the repository handed on.
	SignalIntake = "intake"
	// SignalRoutes carries the repository's Routes after its pools
	// changed.
	SignalRoutes = "routes"
)

// IntakeBatch is what the server (or another pool) delivers to a pool in
// one signal: events in the order they arrived.
type IntakeBatch struct {
	Jobs    []JobEvent                `json:"jobs,omitempty"`
	Runners []activities.RunnerReport `json:"runners,omitempty"`
	// RoutesVersion is the version of the routes the sender routed the
	// jobs with: a pool whose routes are newer routes them again.
	RoutesVersion int64 `json:"routesVersion,omitempty"`
}

// Size is how many events the batch carries.
func (b IntakeBatch) Size() int { return len(b.Jobs) + len(b.Runners) }

// PoolInput starts a PoolWorkflow; Carried is set when it continues as
// new (or when a repository's workflow from before pools hands its pools
// over).
type PoolInput struct {
	Owner string `json:"owner"`
	Repo  string `json:"repo"`
	Pool  string `json:"pool"`
	// Version is the version of the pool's rules this run follows
	// (poolVersions): a run started by an older release replays as it
	// ran, and the next run takes the current version.
	Version int `json:"version"`
	// Routes are the repository's pools as the server knew them when it
	// started the pool.
	Routes  *Routes      `json:"routes,omitempty"`
	Carried *PoolCarried `json:"carried,omitempty"`
}

// Ref names the pool of the input.
func (in PoolInput) Ref() PoolRef { return PoolRef{Owner: in.Owner, Repo: in.Repo, Pool: in.Pool} }

// PoolStatus answers QueryState: the pool's whole view, and the jobs of
// its repository that no pool fits, when it is the pool that keeps them.
type PoolStatus struct {
	PoolView
	Unmatched      []QueuedJob `json:"unmatched,omitempty"`
	UnmatchedTotal int         `json:"unmatchedTotal,omitempty"`
	Routes         Routes      `json:"routes"`
}

// PoolOfRunner reads the pool a runner's name names: garo-PREFIX-N is a
// runner of the default pool, garo-PREFIX-POOL-N one of pool POOL (PREFIX
// six hexadecimal digits).
func PoolOfRunner(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "garo-")
	if !ok || len(rest) < 8 || rest[6] != '-' {
		return "", false
	}
	for _, c := range rest[:6] {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return "", false
		}
	}
	rest = rest[7:]
	i := strings.LastIndex(rest, "-")
	if i < 0 {
		return DefaultPool, rest != ""
	}
	pool := rest[:i]
	return pool, ValidatePoolName(pool) == nil
}
