package tests

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/tests/githubsim"
)

// TestEveryJobCompletesUnderEveryFaultAtOnce: 10% of webhooks dropped, 10%
// duplicated, deliveries reordered, 5% of GitHub's API answers 502, and a
// primary rate limit that shuts the API for 60 s. Every job completes, the
// pool counts each one once, and nothing is left behind.
func TestEveryJobCompletesUnderEveryFaultAtOnce(t *testing.T) {
	t.Parallel()
	const repo, jobs = "e2e/faults", 30
	e := newPoolEnv(t, "e2e-faults", "faults-1")
	e.sim.SetFaults(githubsim.Faults{Seed: 12,
		Webhooks: githubsim.WebhookFaults{DropRate: 0.1, DuplicateRate: 0.1, ReorderRate: 0.2, DelayMs: 50},
		Routes: []githubsim.RouteFault{
			{Path: "/repos/", Kind: githubsim.FaultPrimaryRateLimit, RetryAfterSeconds: 60, Count: 1},
			{Path: "/repos/", Kind: githubsim.FaultError, Status: http.StatusBadGateway, Rate: 0.05},
		}})
	code, b := e.do("PUT", "/api/v1/repositories/"+repo,
		`{"agent":"faults-1","maxRunners":4,"bootstrapTimeout":"2m","labels":["self-hosted","linux"]}`)
	require.Equal(t, http.StatusOK, code, "%s", b)
	peak := e.watchPeak(repo)
	began := time.Now()
	e.sim.Enqueue("e2e", "faults", []string{"self-hosted", "linux"}, time.Second, jobs, "build")
	eventually(t, 5*time.Minute, "every job served", func() bool { return completed(e.sim, repo) == jobs })
	took := time.Since(began)
	t.Cleanup(func() {
		if t.Failed() {
			v := e.pool(repo)
			t.Logf("pool at the end: %+v, runners %+v; GitHub's runners %+v", v.Counts, v.Runners, e.sim.Runners(repo))
		}
	})
	// A job whose completed webhook was dropped is counted by the next
	// reconciliation (every minute while jobs are in flight); one that
	// meets the fault run's 502s waits for the one after.
	eventually(t, 3*time.Minute, "every job counted once, no runner left", func() bool {
		v := e.pool(repo)
		return v.Counts.JobsDone == jobs && len(v.Runners) == 0 && len(e.sim.Runners(repo)) == 0
	})
	assert.LessOrEqual(t, peak.Load(), int64(4), "never more than maxRunners runners")

	st := e.sim.Stats()
	total := 0
	byRoute := map[string]int{}
	for k, n := range st.Requests {
		total += n
		f := strings.Fields(k)
		byRoute[f[0]+" "+f[1]] += n
	}
	t.Logf("%d jobs of 1s took %.1fs under faults; webhooks sent %d, dropped %d; GitHub requests %d, %.1f a job; by route: %v",
		jobs, took.Seconds(), st.WebhooksSent, st.WebhooksDropped, total, float64(total)/jobs, byRoute)
	assert.Positive(t, st.WebhooksDropped, "webhooks were dropped")
	var limited, failed int
	for k, n := range st.Requests {
		switch {
		case strings.HasSuffix(k, " 403"):
			limited += n
		case strings.HasSuffix(k, " 502"):
			failed += n
		}
	}
	assert.Positive(t, limited, "the rate limit was hit")
	assert.Positive(t, failed, "GitHub's API failed some requests")
}
