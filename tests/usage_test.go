package tests

import (
	"encoding/json"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/api"
	"github.com/garo-run/garo/tests/githubsim"
	"github.com/garo-run/garo/workflows"
)

// TestUsageFiguresMatchGitHubsUnderLostWebhooks: 12 jobs, 3 of them
// failing, run while a fifth of the webhooks are lost. Once the
// reconciliation has caught up, the usage of the repository, of its agent
// and of everything counts each job once, served or failed as GitHub
// says, and the queue waits are GitHub's own (started_at − created_at, to
// the second): the maximum exactly, p50 and p95 within 5 %. The runner
// time is priced by the server's price list (the pool sets no
// hourlyPrice), and the CLI and the Prometheus counters agree.
func TestUsageFiguresMatchGitHubsUnderLostWebhooks(t *testing.T) {
	t.Parallel()
	const repo, jobs = "e2e/usage", 12
	prices := filepath.Join(t.TempDir(), "prices")
	require.NoError(t, os.WriteFile(prices, []byte("ec2 instanceType=m5.large 0.096\nprocess 3.6 # a second is 0.001\n"), 0o600))
	e := newPoolEnvWith(t, &poolEnv{t: t, ns: "e2e-usage", agent: "usage-1", addr: temporalAddr,
		serverArgs: []string{"--hourly-prices", prices}})
	e.sim.SetFaults(githubsim.Faults{Seed: 7, Webhooks: githubsim.WebhookFaults{DropRate: 0.2}})
	code, b := e.do("PUT", "/api/v1/repositories/"+repo,
		`{"agent":"usage-1","maxRunners":3,"labels":["self-hosted","linux"]}`)
	require.Equal(t, http.StatusOK, code, "%s", b)
	var run []githubsim.RunJob
	for i := range jobs {
		j := githubsim.RunJob{Name: "build", Labels: []string{"self-hosted", "linux"}, DurationMs: 1000 + int64(i%4)*500}
		if i%4 == 3 {
			j.Conclusion = "failure"
		}
		run = append(run, j)
	}
	e.sim.EnqueueRun("e2e", "usage", run, false)
	ended := func() []githubsim.Job {
		var out []githubsim.Job
		for _, j := range e.sim.Jobs(repo) {
			if j.Status == githubsim.StatusCompleted {
				out = append(out, j)
			}
		}
		return out
	}
	eventually(t, 4*time.Minute, "every job ended on GitHub", func() bool { return len(ended()) == jobs })
	var u api.RepositoryUsageReport
	eventually(t, 3*time.Minute, "every job counted by the usage, lost webhooks reconciled", func() bool {
		u = repoUsage(t, e, repo)
		return u.Figures.Jobs.Served == jobs && u.Figures.QueueWait.Count == jobs
	})
	assert.Positive(t, e.sim.Stats().WebhooksDropped, "webhooks were lost")

	var waits []float64
	failed := 0
	var ran time.Duration
	for _, j := range ended() {
		require.NotNil(t, j.StartedAt)
		ran += j.CompletedAt.Sub(*j.StartedAt)
		waits = append(waits, j.StartedAt.Truncate(time.Second).Sub(j.CreatedAt.Truncate(time.Second)).Seconds())
		if j.Conclusion != "success" {
			failed++
		}
	}
	slices.Sort(waits)
	quantile := func(q float64) float64 { return waits[int(q*float64(len(waits)-1))] }
	f := u.Figures
	assert.Equal(t, api.JobFigures{Served: jobs, Failed: 3, Lost: 0}, f.Jobs)
	assert.Equal(t, 3, failed, "GitHub's view agrees")
	assert.Equal(t, waits[len(waits)-1], f.QueueWait.Max, "the longest wait, exactly")
	assert.InDelta(t, quantile(0.5), f.QueueWait.P50, math.Max(0.1, quantile(0.5)*workflows.WaitAccuracy)+0.05, "p50 of %v", waits)
	assert.InDelta(t, quantile(0.95), f.QueueWait.P95, math.Max(0.1, quantile(0.95)*workflows.WaitAccuracy)+0.05, "p95 of %v", waits)
	rm := f.RunnerMinutes
	assert.InDelta(t, ran.Minutes(), rm.Busy, 0.1*ran.Minutes(), "runners were busy as long as GitHub says the jobs ran (%s); %+v", ran, rm)
	assert.Positive(t, rm.Booting)
	assert.InDelta(t, rm.Busy*0.06, f.Cost.Useful, 0.001, "the list's 3.6 an hour is 0.06 a minute")
	assert.InDelta(t, (rm.Idle+rm.Booting)*0.06, f.Cost.Waste, 0.001)
	require.Len(t, u.Pools, 1)
	assert.Equal(t, "usage-1", u.Pools[0].Agent)

	var agent api.AgentUsageReport
	getUsage(t, e, "/api/v1/agents/usage-1/usage?window=1h", &agent)
	assert.Equal(t, api.JobFigures{Served: jobs, Failed: 3}, agent.Figures.Jobs)
	var all api.UsageReport
	getUsage(t, e, "/api/v1/usage?window=7d", &all)
	assert.Equal(t, jobs, all.Figures.Jobs.Served)
	require.NotEmpty(t, all.TopByWait)
	assert.Equal(t, repo, all.TopByWait[0].Repository)

	// The CLI reads the same figures.
	code, out, errOut := garo(t, e.url, adminToken, "usage", repo, "--window", "1h", "-o", "json")
	require.Zero(t, code, "%s", errOut)
	var cli api.RepositoryUsageReport
	require.NoError(t, json.Unmarshal([]byte(out), &cli))
	assert.Equal(t, f.Jobs, cli.Figures.Jobs)
	code, out, errOut = garo(t, e.url, adminToken, "usage", "--agent", "usage-1", "--window", "1h")
	require.Zero(t, code, "%s", errOut)
	assert.Regexp(t, `(?m)^e2e/usage\s+12\s+3\s+0\s`, out, "a line per repository: served, failed, lost")
	code, out, errOut = garo(t, e.url, adminToken, "usage", "--window", "7d")
	require.Zero(t, code, "%s", errOut)
	assert.Regexp(t, `(?m)^total of 1 repositories, 7d\s+12\s+3\s+0\s`, out, "everyone's usage, the costliest first")
	code, _, errOut = garo(t, e.url, adminToken, "usage", "--window", "2h")
	assert.NotZero(t, code, "a bad window fails")
	assert.Contains(t, errOut, "want 1h, 24h or 7d")

	eventually(t, time.Minute, "the counters show the usage", func() bool {
		return strings.Contains(e.metrics(), `garo_pool_jobs_served_total{agent="usage-1",pool="default",repository="e2e/usage"} 12`)
	})
	assert.Contains(t, e.metrics(), `garo_pool_jobs_failed_total{agent="usage-1",pool="default",repository="e2e/usage"} 3`)
}

func repoUsage(t *testing.T, e *poolEnv, repo string) api.RepositoryUsageReport {
	var u api.RepositoryUsageReport
	getUsage(t, e, "/api/v1/repositories/"+repo+"/usage?window=1h", &u)
	return u
}

func getUsage(t *testing.T, e *poolEnv, path string, out any) {
	t.Helper()
	code, b := e.do("GET", path, "")
	require.Equal(t, http.StatusOK, code, "%s", b)
	require.NoError(t, json.Unmarshal(b, out))
}

// metrics scrapes the server's /metrics.
func (e *poolEnv) metrics() string {
	e.t.Helper()
	code, b := e.do("GET", "/metrics", "")
	require.Equal(e.t, http.StatusOK, code, "%s", b)
	return string(b)
}
