package github

import (
	"sync"
	"time"

	"github.com/garo-run/garo/activities"
)

// runCache keeps the jobs of queued runs. A run stays queued until one of
// its jobs starts, and any change of it (a job started, the run cancelled)
// changes its status and its updated_at: so while GitHub lists a run as
// queued with the updated_at its jobs were listed at, its jobs are those,
// all queued, and a reconciliation need not ask again. That spares one
// request per waiting run and look, which grows with the queue. An entry
// is trusted for runCacheTTL at most.
type runCache struct {
	mu   sync.Mutex
	runs map[int64]cachedRun
}

type cachedRun struct {
	updated, stored time.Time
	attempt         int
	jobs            []activities.JobState
}

const (
	runCacheTTL = 10 * time.Minute
	maxRunCache = 10000
)

func newRunCache() *runCache { return &runCache{runs: map[int64]cachedRun{}} }

// get returns the jobs of attempt of run id listed when it was last
// updated at updated.
func (c *runCache) get(id int64, attempt int, updated time.Time) ([]activities.JobState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.runs[id]
	if !ok || r.attempt != attempt || !r.updated.Equal(updated) || updated.IsZero() || time.Since(r.stored) > runCacheTTL {
		return nil, false
	}
	return r.jobs, true
}

// put keeps the jobs of attempt of run id, updated at updated.
func (c *runCache) put(id int64, attempt int, updated time.Time, jobs []activities.JobState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.runs) >= maxRunCache {
		for k, r := range c.runs {
			if time.Since(r.stored) > runCacheTTL {
				delete(c.runs, k)
			}
		}
		if len(c.runs) >= maxRunCache {
			clear(c.runs)
		}
	}
	c.runs[id] = cachedRun{updated: updated, stored: time.Now(), attempt: attempt, jobs: jobs}
}
