package api

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/workflows"
)

// TestPoolMetricsShowEachPoolsRunnersQueueAndState: the gauges follow the
// pools as the repositories' memos show them.
func TestPoolMetricsShowEachPoolsRunnersQueueAndState(t *testing.T) {
	repos := &memRepositories{repos: map[string]*workflows.RepositoryView{}}
	cfg := workflows.DefaultPoolConfig()
	repos.set(workflows.RepositoryView{Repository: "octo/app", Pools: []workflows.PoolView{
		{Repository: "octo/app", Pool: "default", Config: cfg, Degraded: true,
			Counts: workflows.PoolCounts{Provisioning: 1, Idle: 2, Busy: 3, Queued: 4, JobsDone: 9}}}})
	m := NewPoolMetrics(repos, slog.New(slog.DiscardHandler))
	want := `
# HELP garo_pool_queued_jobs Jobs waiting in a pool's queue.
# TYPE garo_pool_queued_jobs gauge
garo_pool_queued_jobs{agent="local",pool="default",repository="octo/app"} 4
# HELP garo_pool_degraded 1 while a pool is degraded (its runners fail to come up).
# TYPE garo_pool_degraded gauge
garo_pool_degraded{agent="local",pool="default",repository="octo/app"} 1
`
	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(want), "garo_pool_queued_jobs", "garo_pool_degraded"))
	require.Equal(t, 4, testutil.CollectAndCount(m, "garo_pool_runners"), "one series per state")
}

// TestPoolMetricsShowHowLongTheOldestQueuedJobHasWaited: the age of the
// queue's oldest job, 0 once the queue is empty.
func TestPoolMetricsShowHowLongTheOldestQueuedJobHasWaited(t *testing.T) {
	repos := &memRepositories{repos: map[string]*workflows.RepositoryView{}}
	cfg := workflows.DefaultPoolConfig()
	pool := workflows.PoolView{Repository: "octo/app", Pool: "default", Config: cfg,
		Counts: workflows.PoolCounts{Queued: 2}, OldestQueuedAt: time.Now().Add(-90 * time.Second)}
	repos.set(workflows.RepositoryView{Repository: "octo/app", Pools: []workflows.PoolView{pool}})
	m := NewPoolMetrics(repos, slog.New(slog.DiscardHandler))
	age := gauge(t, m, "garo_pool_oldest_queued_seconds")
	assert.InDelta(t, 90, age, 5)

	pool.Counts.Queued, pool.OldestQueuedAt = 0, time.Time{}
	repos.set(workflows.RepositoryView{Repository: "octo/app", Pools: []workflows.PoolView{pool}})
	m = NewPoolMetrics(repos, slog.New(slog.DiscardHandler))
	assert.Zero(t, gauge(t, m, "garo_pool_oldest_queued_seconds"))
}

// gauge is the value of the one series of the named gauge that c exports.
func gauge(t *testing.T, c prometheus.Collector, name string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name {
			require.Len(t, f.GetMetric(), 1)
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s is not exported", name)
	return 0
}

// TestPoolMetricsCountUsage: the memo's usage totals become counters, the
// runner time since the memo added at the pool's counts.
func TestPoolMetricsCountUsage(t *testing.T) {
	repos := &memRepositories{repos: map[string]*workflows.RepositoryView{}}
	cfg := workflows.DefaultPoolConfig()
	cfg.HourlyPrice = 3.6 // 0.001 a second
	at := time.Unix(1_800_000_000, 0)
	repos.set(workflows.RepositoryView{Repository: "octo/app", Pools: []workflows.PoolView{
		{Repository: "octo/app", Pool: "default", Config: cfg, Counts: workflows.PoolCounts{Idle: 2, Busy: 1},
			Usage: &workflows.UsageTotals{UsageCounts: workflows.UsageCounts{Served: 5, Failed: 1, Lost: 2, BootstrapFailures: 3,
				BusyMs: 60_000, IdleMs: 30_000, BootingMs: 10_000, UsefulCost: 0.06, WasteCost: 0.04},
				WaitBuckets: []int{1, 0, 2, 0, 0, 0, 0, 0, 0, 1}, WaitCount: 5, WaitSeconds: 3612, At: at, Price: 3.6}}}})
	m := NewPoolMetrics(repos, slog.New(slog.DiscardHandler))
	m.now = func() time.Time { return at.Add(10 * time.Second) }
	want := `
# HELP garo_pool_jobs_served_total Jobs that ran to their end on a pool's runners, whatever their conclusion.
# TYPE garo_pool_jobs_served_total counter
garo_pool_jobs_served_total{agent="local",pool="default",repository="octo/app"} 5
# HELP garo_pool_jobs_lost_total Jobs whose runner was lost while it ran them.
# TYPE garo_pool_jobs_lost_total counter
garo_pool_jobs_lost_total{agent="local",pool="default",repository="octo/app"} 2
# HELP garo_pool_runner_seconds_total Runner time by what the runners did: busy, idle (or being deleted) or booting.
# TYPE garo_pool_runner_seconds_total counter
garo_pool_runner_seconds_total{agent="local",pool="default",repository="octo/app",state="booting"} 10
garo_pool_runner_seconds_total{agent="local",pool="default",repository="octo/app",state="busy"} 70
garo_pool_runner_seconds_total{agent="local",pool="default",repository="octo/app",state="idle"} 50
# HELP garo_pool_queue_wait_seconds How long jobs waited from queued to in progress on a pool's runners.
# TYPE garo_pool_queue_wait_seconds histogram
garo_pool_queue_wait_seconds_bucket{agent="local",pool="default",repository="octo/app",le="1"} 1
garo_pool_queue_wait_seconds_bucket{agent="local",pool="default",repository="octo/app",le="5"} 1
garo_pool_queue_wait_seconds_bucket{agent="local",pool="default",repository="octo/app",le="10"} 3
garo_pool_queue_wait_seconds_bucket{agent="local",pool="default",repository="octo/app",le="30"} 3
garo_pool_queue_wait_seconds_bucket{agent="local",pool="default",repository="octo/app",le="60"} 3
garo_pool_queue_wait_seconds_bucket{agent="local",pool="default",repository="octo/app",le="120"} 3
garo_pool_queue_wait_seconds_bucket{agent="local",pool="default",repository="octo/app",le="300"} 3
garo_pool_queue_wait_seconds_bucket{agent="local",pool="default",repository="octo/app",le="600"} 3
garo_pool_queue_wait_seconds_bucket{agent="local",pool="default",repository="octo/app",le="1800"} 3
garo_pool_queue_wait_seconds_bucket{agent="local",pool="default",repository="octo/app",le="3600"} 4
garo_pool_queue_wait_seconds_bucket{agent="local",pool="default",repository="octo/app",le="+Inf"} 5
garo_pool_queue_wait_seconds_sum{agent="local",pool="default",repository="octo/app"} 3612
garo_pool_queue_wait_seconds_count{agent="local",pool="default",repository="octo/app"} 5
`
	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(want), "garo_pool_jobs_served_total",
		"garo_pool_jobs_lost_total", "garo_pool_runner_seconds_total", "garo_pool_queue_wait_seconds"))
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(m))
	fams, err := reg.Gather()
	require.NoError(t, err)
	cost := map[string]float64{}
	for _, f := range fams {
		for _, mm := range f.GetMetric() {
			if f.GetName() == "garo_pool_cost_total" {
				cost[mm.GetLabel()[1].GetValue()] = mm.GetCounter().GetValue()
			}
		}
	}
	require.Len(t, cost, 2, "useful and waste")
	assert.InDelta(t, 0.07, cost["useful"], 1e-9, "0.06 and 10 s of one busy runner")
	assert.InDelta(t, 0.06, cost["waste"], 1e-9, "0.04 and 10 s of two idle runners")
}
