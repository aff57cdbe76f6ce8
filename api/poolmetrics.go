package api

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/garo-run/garo/workflows"
)

// PoolMetrics exports every pool's runners by state, queued jobs and
// degraded state, read from the repositories' memos (at most every
// MaxAge, so that scrapes cost Temporal one listing at most then).
type PoolMetrics struct {
	repos  Repositories
	log    *slog.Logger
	maxAge time.Duration

	runners, queued, oldest, degraded, jobsDone *prometheus.Desc
	usage                                       usageDescs
	// now is the clock; nil is time.Now.
	now func() time.Time

	mu    sync.Mutex
	at    time.Time
	pools []workflows.PoolView
}

// NewPoolMetrics returns the collector of repos' pools.
func NewPoolMetrics(repos Repositories, log *slog.Logger) *PoolMetrics {
	labels := []string{"repository", "pool", "agent"}
	return &PoolMetrics{repos: repos, log: log, maxAge: 10 * time.Second,
		runners: prometheus.NewDesc("garo_pool_runners", "Runners of a pool by state (as its memo shows them, at most 5 s late).", append(labels, "state"), nil),
		queued:  prometheus.NewDesc("garo_pool_queued_jobs", "Jobs waiting in a pool's queue.", labels, nil),
		oldest: prometheus.NewDesc("garo_pool_oldest_queued_seconds",
			"How long the job waiting longest in a pool's queue has waited (0 with none).", labels, nil),
		degraded: prometheus.NewDesc("garo_pool_degraded", "1 while a pool is degraded (its runners fail to come up).", labels, nil),
		jobsDone: prometheus.NewDesc("garo_pool_jobs_done", "Jobs a pool's runners have done (in its current state).", labels, nil),
		usage:    newUsageDescs(labels),
	}
}

// Describe sends the descriptions of the pool metrics.
func (m *PoolMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.runners, m.queued, m.oldest, m.degraded, m.jobsDone} {
		ch <- d
	}
	m.usage.describe(ch)
}

// Collect lists the pools (or reuses a recent listing) and sends their
// figures.
func (m *PoolMetrics) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	if m.now != nil {
		now = m.now()
	}
	for _, p := range m.list() {
		l := []string{p.Repository, p.Pool, p.Config.Agent}
		c := p.Counts
		for state, n := range map[string]int{"provisioning": c.Provisioning, "idle": c.Idle, "busy": c.Busy, "deleting": c.Deleting} {
			ch <- prometheus.MustNewConstMetric(m.runners, prometheus.GaugeValue, float64(n), append(l, state)...)
		}
		ch <- prometheus.MustNewConstMetric(m.queued, prometheus.GaugeValue, float64(c.Queued), l...)
		age := 0.0
		if c.Queued > 0 && !p.OldestQueuedAt.IsZero() {
			age = max(0, now.Sub(p.OldestQueuedAt).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(m.oldest, prometheus.GaugeValue, age, l...)
		degraded := 0.0
		if p.Degraded {
			degraded = 1
		}
		ch <- prometheus.MustNewConstMetric(m.degraded, prometheus.GaugeValue, degraded, l...)
		ch <- prometheus.MustNewConstMetric(m.jobsDone, prometheus.GaugeValue, float64(c.JobsDone), l...)
		m.usage.collect(ch, p, now, l)
	}
}

func (m *PoolMetrics) list() []workflows.PoolView {
	m.mu.Lock()
	defer m.mu.Unlock()
	if time.Since(m.at) < m.maxAge {
		return m.pools
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	repos, err := listAllRepositories(ctx, m.repos)
	if err != nil {
		m.log.Warn("Pool metrics: listing the repositories failed; serving the last listing", "error", err)
		return m.pools
	}
	var pools []workflows.PoolView
	for _, r := range repos {
		pools = append(pools, r.Pools...)
	}
	m.pools, m.at = pools, time.Now()
	return pools
}
