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
