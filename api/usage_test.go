package api

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/workflows"
)

// usageBucket is a bucket starting at start with waits (seconds) and the
// figures of c.
func usageBucket(start int64, c workflows.UsageCounts, waits ...float64) workflows.UsageBucket {
	b := workflows.UsageBucket{Start: start, UsageCounts: c}
	for _, w := range waits {
		b.Waits.Add(w)
	}
	return b
}

// newUsageEnv has three repositories: o/a (its default pool on local,
// on gpu-1 before), o/b (default on local, gpu on gpu-1) and o/c (on
// local, no usage yet).
func newUsageEnv(t *testing.T) *apiEnv {
	e, repos := newPoolAPIEnv(t)
	pool := func(name, agent string) workflows.PoolView {
		return workflows.PoolView{Pool: name, Config: workflows.PoolConfig{Agent: agent}}
	}
	repos.set(workflows.RepositoryView{Repository: "o/a", Pools: []workflows.PoolView{pool("default", "local")}})
	repos.set(workflows.RepositoryView{Repository: "o/b", Pools: []workflows.PoolView{pool("default", "local"), pool("gpu", "gpu-1")}})
	repos.set(workflows.RepositoryView{Repository: "o/c", Pools: []workflows.PoolView{pool("default", "local")}})
	const t0, t1 = 1_799_996_400, 1_799_996_700
	repos.usage = map[string][]workflows.LedgerUsage{
		"o/a": {{Pool: "default", Agent: "local", Buckets: []workflows.UsageBucket{
			usageBucket(t0, workflows.UsageCounts{Served: 2, BusyMs: 120_000, IdleMs: 60_000, UsefulCost: 2, WasteCost: 1}, 10, 20),
			usageBucket(t1, workflows.UsageCounts{Served: 1, Failed: 1}, 40),
		}}, {Pool: "default", Agent: "gpu-1", Buckets: []workflows.UsageBucket{
			usageBucket(t0, workflows.UsageCounts{Served: 1, BusyMs: 60_000})}}},
		"o/b": {
			{Pool: "default", Agent: "local", Buckets: []workflows.UsageBucket{
				usageBucket(t1, workflows.UsageCounts{Lost: 1, BootstrapFailures: 2, BootingMs: 30_000, WasteCost: 0.5}, 100)}},
			{Pool: "gpu", Agent: "gpu-1", Buckets: []workflows.UsageBucket{
				usageBucket(t0, workflows.UsageCounts{Served: 3, BusyMs: 180_000, UsefulCost: 6}, 5, 5, 5)}},
		},
	}
	return e
}

func getJSON(t *testing.T, e *apiEnv, path string, out any) {
	t.Helper()
	resp, body := e.do("GET", path, adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, body)
	require.NoError(t, json.Unmarshal(body, out))
}

func TestRepositoryUsageSumsItsPoolsAndBuckets(t *testing.T) {
	e := newUsageEnv(t)
	var a RepositoryUsageReport
	getJSON(t, e, "/api/v1/repositories/o/a/usage?window=1h", &a)
	assert.Equal(t, "1h", a.Window)
	assert.Equal(t, "5m0s", a.Step)
	assert.Equal(t, JobFigures{Served: 4, Failed: 1}, a.Figures.Jobs, "on local and, before, on gpu-1")
	assert.Equal(t, RunnerMinutes{Busy: 3, Idle: 1}, a.Figures.RunnerMinutes)
	require.Len(t, a.Pools, 2, "the default pool under each agent")
	assert.Equal(t, JobFigures{Served: 1}, a.Pools[1].Figures.Jobs)
	assert.Equal(t, "gpu-1", a.Pools[1].Agent)
	assert.Equal(t, CostFigures{Useful: 2, Waste: 1, Total: 3}, a.Figures.Cost)
	assert.Equal(t, 3, a.Figures.QueueWait.Count)
	assert.InEpsilon(t, 20, a.Figures.QueueWait.P50, workflows.WaitAccuracy)
	assert.InEpsilon(t, 20, a.Figures.QueueWait.P95, workflows.WaitAccuracy, "rank 0.95·2 is the 2nd")
	assert.Equal(t, 40.0, a.Figures.QueueWait.Max)
	require.Len(t, a.Series, 2)
	assert.Equal(t, JobFigures{Served: 3}, a.Series[0].Figures.Jobs)
	assert.Equal(t, int64(1_799_996_700), a.Series[1].Start.Unix())

	var b RepositoryUsageReport
	getJSON(t, e, "/api/v1/repositories/o/b/usage", &b)
	assert.Equal(t, "24h", b.Window, "the default window")
	assert.Equal(t, JobFigures{Served: 3, Lost: 1}, b.Figures.Jobs)
	assert.Equal(t, 2, b.Figures.BootstrapFailures)
	assert.Equal(t, CostFigures{Useful: 6, Waste: 0.5, Total: 6.5}, b.Figures.Cost)
	require.Len(t, b.Pools, 2)
	assert.Equal(t, PoolUsage{Pool: "gpu", Agent: "gpu-1", Figures: b.Pools[1].Figures}, b.Pools[1])
	assert.Equal(t, 3, b.Pools[1].Figures.Jobs.Served)
	assert.Equal(t, 100.0, b.Pools[0].Figures.QueueWait.Max)

	resp, body := e.do("GET", "/api/v1/repositories/o/a/usage?window=2h", adminToken, "", "")
	p := problem(t, resp, body, http.StatusBadRequest, ProblemInvalidRequest)
	assert.Contains(t, p.Detail, "want 1h, 24h or 7d")
	resp, body = e.do("GET", "/api/v1/repositories/o/none/usage", adminToken, "", "")
	problem(t, resp, body, http.StatusNotFound, ProblemNotFound)
}

func TestAgentUsageCountsOnlyItsOwnPools(t *testing.T) {
	e := newUsageEnv(t)
	var gpu AgentUsageReport
	getJSON(t, e, "/api/v1/agents/gpu-1/usage?window=7d", &gpu)
	assert.Equal(t, "gpu-1", gpu.Agent)
	assert.Equal(t, JobFigures{Served: 4}, gpu.Figures.Jobs, "not o/b's default pool, which local serves")
	require.Len(t, gpu.Repositories, 2)
	assert.Equal(t, RepositoryUsage{Repository: "o/a", Figures: gpu.Repositories[0].Figures}, gpu.Repositories[0],
		"o/a's pool, which gpu-1 served before local")
	assert.Equal(t, 1, gpu.Repositories[0].Figures.Jobs.Served)
	assert.Equal(t, "o/b", gpu.Repositories[1].Repository)

	var local AgentUsageReport
	getJSON(t, e, "/api/v1/agents/local/usage?window=7d", &local)
	assert.Equal(t, JobFigures{Served: 3, Failed: 1, Lost: 1}, local.Figures.Jobs)
	assert.Len(t, local.Repositories, 3)
	assert.Equal(t, 4, local.Figures.QueueWait.Count)

	resp, body := e.do("GET", "/api/v1/agents/nobody/usage", adminToken, "", "")
	problem(t, resp, body, http.StatusNotFound, ProblemNotFound)
}

func TestUsageTotalsAndRanksTheRepositories(t *testing.T) {
	e := newUsageEnv(t)
	reader := e.issue("/api/v1/tokens", `{"name":"portal","role":"reader"}`)
	resp, body := e.do("GET", "/api/v1/usage?window=7d", reader, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "a reader reads usage: %s", body)
	var u UsageReport
	require.NoError(t, json.Unmarshal(body, &u))
	assert.Equal(t, 3, u.Repositories)
	assert.Equal(t, JobFigures{Served: 7, Failed: 1, Lost: 1}, u.Figures.Jobs)
	assert.Equal(t, CostFigures{Useful: 8, Waste: 1.5, Total: 9.5}, u.Figures.Cost)
	assert.Equal(t, 7, u.Figures.QueueWait.Count)
	assert.Equal(t, 100.0, u.Figures.QueueWait.Max)
	require.Len(t, u.Series, 2)
	assert.Equal(t, 6, u.Series[0].Figures.Jobs.Served, "o/a's 3 and o/b's gpu 3 in the first bucket")

	names := func(rs []RepositoryUsage) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Repository)
		}
		return out
	}
	assert.Equal(t, []string{"o/b", "o/a"}, names(u.TopByCost), "by cost; o/c has spent nothing")
	assert.Equal(t, []string{"o/a", "o/b"}, names(u.TopByWait), "by p95: o/a 20 s, o/b 5 s (its 100 s is the max)")
}

// TestEveryConfigureCarriesThePriceList: PUT and PATCH send the server's
// price list to the pool, which prices itself by it.
func TestEveryConfigureCarriesThePriceList(t *testing.T) {
	prices := []workflows.ProviderPrice{{Kind: "process", Price: 0.01}}
	e := newAPIEnvWith(t, func(c *Config) { c.Prices = prices })
	e.agents.agents["local"] = workflows.AgentState{Name: "local", Status: workflows.AgentOnline, Capabilities: processCapabilities()}
	resp, body := e.do("PUT", "/api/v1/repositories/o/a", adminToken, "application/json", `{"agent":"local"}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Equal(t, prices, e.repos.last.Prices)
	resp, body = e.do("PATCH", "/api/v1/repositories/o/a", adminToken, "application/merge-patch+json", `{"maxRunners":4}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Equal(t, prices, e.repos.last.Prices)
}

// TestUsageIsReadOnceARepositoryWithinTenSeconds: a portal reads
// everyone's, an agent's and a repository's usage together; each
// repository's workflow is asked once, and again once 10 s have passed.
func TestUsageIsReadOnceARepositoryWithinTenSeconds(t *testing.T) {
	e := newUsageEnv(t)
	var all UsageReport
	getJSON(t, e, "/api/v1/usage?window=1h", &all)
	var agent AgentUsageReport
	getJSON(t, e, "/api/v1/agents/local/usage?window=1h", &agent)
	var repo RepositoryUsageReport
	getJSON(t, e, "/api/v1/repositories/o/a/usage?window=1h", &repo)
	assert.Equal(t, 3, e.repos.usageReads, "o/a, o/b and o/c once each")
	getJSON(t, e, "/api/v1/repositories/o/a/usage?window=24h", &repo)
	assert.Equal(t, 4, e.repos.usageReads, "another window is another reading")
	e.clock = e.clock.Add(10 * time.Second)
	getJSON(t, e, "/api/v1/repositories/o/a/usage?window=1h", &repo)
	assert.Equal(t, 5, e.repos.usageReads, "10 s later, a new reading")
	assert.Equal(t, 4, repo.Figures.Jobs.Served)
}
