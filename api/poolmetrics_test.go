package api

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
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
