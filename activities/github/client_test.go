package github

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/tests/githubsim"
)

var repo = Repo{Owner: "octo", Name: "app"}

func newSim(t *testing.T) (*githubsim.Sim, string) {
	t.Helper()
	sim := githubsim.New(githubsim.Options{Seed: 1})
	t.Cleanup(sim.Close)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	sim.SetBaseURL(srv.URL)
	return sim, srv.URL
}

// newClient returns a token client of the simulator as a GHES (/api/v3).
func newClient(t *testing.T, url string) *Client {
	t.Helper()
	c, err := New(Config{URL: url, Token: "ghp_test", Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	return c
}

func appErr(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "want an application error, got %v", err)
	return ae
}

func TestCreateJITConfigAndRunnerLifecycle(t *testing.T) {
	sim, url := newSim(t)
	c := newClient(t, url)
	ctx := context.Background()
	jit, err := c.CreateJITConfig(ctx, repo, "r-1", []string{"self-hosted", "linux"}, 0)
	require.NoError(t, err)
	assert.NotZero(t, jit.RunnerID)
	_, _, _, err = githubsim.DecodeJITConfig(jit.EncodedConfig)
	require.NoError(t, err)

	r, found, err := c.RunnerByName(ctx, repo, "r-1")
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, jit.RunnerID, r.ID)
	assert.Contains(t, r.Labels, "Linux")
	assert.Equal(t, "offline", r.Status)

	require.NoError(t, c.RemoveRunner(ctx, repo, jit.RunnerID))
	require.NoError(t, c.RemoveRunner(ctx, repo, jit.RunnerID), "removing a removed runner is a success")
	assert.Empty(t, sim.Runners("octo/app"))
	_, found, err = c.RunnerByName(ctx, repo, "r-1")
	require.NoError(t, err)
	assert.False(t, found)
	assert.Equal(t, 1.0, c.RequestCount("POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig", 201))
	assert.Equal(t, 1.0, c.RequestCount("DELETE /repos/{owner}/{repo}/actions/runners/{id}", 204))
	assert.Equal(t, 1.0, c.RequestCount("DELETE /repos/{owner}/{repo}/actions/runners/{id}", 404))
}

func TestCreateJITConfigReplacesAStaleRunnerOfTheSameName(t *testing.T) {
	sim, url := newSim(t)
	c := newClient(t, url)
	ctx := context.Background()
	first, err := c.CreateJITConfig(ctx, repo, "r-1", []string{"self-hosted"}, 1)
	require.NoError(t, err)
	// The first attempt's activity died before it started the runner; the
	// retry meets 409, removes the stale registration and tries once more.
	second, err := c.CreateJITConfig(ctx, repo, "r-1", []string{"self-hosted"}, 1)
	require.NoError(t, err)
	assert.NotEqual(t, first.RunnerID, second.RunnerID)
	rs := sim.Runners("octo/app")
	require.Len(t, rs, 1)
	assert.Equal(t, second.RunnerID, rs[0].ID)
	assert.Equal(t, 1.0, c.RequestCount("POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig", 409))
}

// busyRunner registers r-busy and has it take a long job.
func busyRunner(t *testing.T, sim *githubsim.Sim, c *Client) JITConfig {
	t.Helper()
	jit, err := c.CreateJITConfig(context.Background(), repo, "r-busy", []string{"self-hosted"}, 1)
	require.NoError(t, err)
	sim.Enqueue("octo", "app", []string{"self-hosted"}, time.Hour, 1, "long")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- githubsim.RunRunner(ctx, githubsim.RunnerConfig{JITConfig: jit.EncodedConfig}) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool {
		rs := sim.Runners("octo/app")
		return len(rs) == 1 && rs[0].Busy
	}, 10*time.Second, 20*time.Millisecond)
	return jit
}

func TestBusyRunnerIsNeverRemoved(t *testing.T) {
	sim, url := newSim(t)
	c := newClient(t, url)
	jit := busyRunner(t, sim, c)
	err := c.RemoveRunner(context.Background(), repo, jit.RunnerID)
	ae := appErr(t, err)
	assert.Equal(t, activities.ErrTypeRunnerBusy, ae.Type())
	assert.True(t, ae.NonRetryable(), "the workflow waits for the job; the activity does not retry")
	assert.Len(t, sim.Runners("octo/app"), 1)

	// Nor is a busy runner that holds the name a new runner asks for.
	_, err = c.CreateJITConfig(context.Background(), repo, "r-busy", []string{"self-hosted"}, 1)
	assert.Equal(t, activities.ErrTypeNameInUse, appErr(t, err).Type())
	assert.Len(t, sim.Runners("octo/app"), 1)
}

func TestRateLimitsBecomeRetryDelays(t *testing.T) {
	cases := []struct {
		name  string
		fault githubsim.RouteFault
		want  time.Duration
	}{
		{"primary 403", githubsim.RouteFault{Path: "/repos/", Kind: githubsim.FaultPrimaryRateLimit, RetryAfterSeconds: 30, Count: 1}, 31 * time.Second},
		{"primary 429", githubsim.RouteFault{Path: "/repos/", Kind: githubsim.FaultPrimaryRateLimit, Status: 429, RetryAfterSeconds: 20, Count: 1}, 21 * time.Second},
		{"secondary", githubsim.RouteFault{Path: "/repos/", Kind: githubsim.FaultSecondaryRateLimit, RetryAfterSeconds: 60, Count: 1}, 61 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sim, url := newSim(t)
			c := newClient(t, url)
			sim.SetFaults(githubsim.Faults{Routes: []githubsim.RouteFault{tc.fault}})
			_, err := c.ListRunners(context.Background(), repo)
			ae := appErr(t, err)
			assert.Equal(t, activities.ErrTypeRateLimited, ae.Type())
			assert.False(t, ae.NonRetryable())
			assert.InDelta(t, tc.want.Seconds(), ae.NextRetryDelay().Seconds(), 2, "wait as long as GitHub asks")
		})
	}
}

func TestServerErrorsRetryAndClientErrorsDoNot(t *testing.T) {
	sim, url := newSim(t)
	c := newClient(t, url)
	// A GET that meets a 502 three times in a row fails, and the activity
	// tries it again.
	sim.SetFaults(githubsim.Faults{Routes: []githubsim.RouteFault{{Path: "/repos/", Kind: githubsim.FaultError, Status: 502, Count: 3}}})
	_, err := c.ListRunners(context.Background(), repo)
	require.Error(t, err)
	var ae *temporal.ApplicationError
	assert.False(t, errors.As(err, &ae) && ae.NonRetryable(), "a 502 is retried")
	assert.Equal(t, 3.0, c.RequestCount("GET /repos/{owner}/{repo}/actions/runners", 502), "each attempt counts")
	_, err = c.ListRunners(context.Background(), repo)
	require.NoError(t, err)
	// One that meets it once is tried again at once, and succeeds.
	sim.SetFaults(githubsim.Faults{Routes: []githubsim.RouteFault{{Path: "/repos/", Kind: githubsim.FaultError, Status: 502, Count: 1}}})
	_, err = c.ListRunners(context.Background(), repo)
	require.NoError(t, err, "a transient 502 does not fail the call")

	_, err = c.CreateJITConfig(context.Background(), repo, "x", nil, 1)
	ae = appErr(t, err)
	assert.Equal(t, activities.ErrTypeInvalid, ae.Type(), "no labels: GitHub answers 422")
	assert.True(t, ae.NonRetryable())
}

func TestListRunnersFollowsEveryPage(t *testing.T) {
	_, url := newSim(t)
	c := newClient(t, url)
	ctx := context.Background()
	for i := range 130 {
		_, err := c.CreateJITConfig(ctx, repo, "r-"+string(rune('a'+i/26))+string(rune('a'+i%26)), []string{"self-hosted"}, 1)
		require.NoError(t, err)
	}
	rs, err := c.ListRunners(ctx, repo)
	require.NoError(t, err)
	assert.Len(t, rs, 130)
	assert.Equal(t, 2.0, c.RequestCount("GET /repos/{owner}/{repo}/actions/runners", 200), "two pages of 100")
}

func TestListQueuedJobs(t *testing.T) {
	sim, url := newSim(t)
	c := newClient(t, url)
	ids := sim.Enqueue("octo", "app", []string{"self-hosted", "gpu"}, 0, 3, "train")
	jobs, err := c.ListQueuedJobs(context.Background(), repo)
	require.NoError(t, err)
	require.Len(t, jobs, 3)
	var got []int64
	for _, j := range jobs {
		got = append(got, j.ID)
		assert.Equal(t, []string{"self-hosted", "gpu"}, j.Labels)
	}
	assert.ElementsMatch(t, ids, got)
}

// TestListQueuedJobsOfARunInProgress: a run whose first job is done (or
// running) is in_progress while its next job waits in the queue: that job
// is listed too.
func TestListQueuedJobsOfARunInProgress(t *testing.T) {
	sim, url := newSim(t)
	c := newClient(t, url)
	ctx := context.Background()
	runID, ids := sim.EnqueueRun("octo", "app", []githubsim.RunJob{
		{Name: "build", Labels: []string{"self-hosted"}}, {Name: "test", Labels: []string{"self-hosted"}}}, true)
	jobs, err := c.ListQueuedJobs(ctx, repo)
	require.NoError(t, err)
	require.Len(t, jobs, 1, "the second job waits for the first")
	assert.Equal(t, ids[0], jobs[0].ID)

	// A runner does the first job: the run is in progress, the second
	// job queued.
	jit, err := c.CreateJITConfig(ctx, repo, "r-1", []string{"self-hosted"}, 1)
	require.NoError(t, err)
	runCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, githubsim.RunRunner(runCtx, githubsim.RunnerConfig{URL: url, JITConfig: jit.EncodedConfig}))
	run, _, err := c.gh.Actions.GetWorkflowRunByID(ctx, repo.Owner, repo.Name, runID)
	require.NoError(t, err)
	assert.Equal(t, "in_progress", run.GetStatus())
	jobs, err = c.ListQueuedJobs(ctx, repo)
	require.NoError(t, err)
	require.Len(t, jobs, 1, "the queued job of a run in progress is listed")
	assert.Equal(t, ids[1], jobs[0].ID)
	assert.Equal(t, runID, jobs[0].RunID)
}

func TestGitHubAppAuthExchangesAnInstallationToken(t *testing.T) {
	sim, url := newSim(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	c, err := New(Config{URL: url, AppID: githubsim.AppID, InstallationID: githubsim.InstallationID,
		PrivateKeyPEM: pemKey, Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	_, err = c.CreateJITConfig(context.Background(), repo, "app-runner", []string{"self-hosted"}, 1)
	require.NoError(t, err)
	_, err = c.ListRunners(context.Background(), repo)
	require.NoError(t, err)
	assert.Equal(t, 1.0, c.RequestCount("POST /app/installations/{id}/access_tokens", 201), "one token serves many calls")
	assert.Equal(t, 1, sim.Stats().Requests["POST /app/installations/{id}/access_tokens 201"])
}

func TestConfigErrors(t *testing.T) {
	_, err := New(Config{})
	assert.ErrorContains(t, err, "no GitHub credentials")
	_, err = New(Config{AppID: 1})
	assert.ErrorContains(t, err, "installation id")
	_, err = New(Config{AppID: 1, InstallationID: 1, PrivateKeyPEM: []byte("junk")})
	assert.Error(t, err)
}

func TestRoute(t *testing.T) {
	for in, want := range map[string]string{
		"/api/v3/repos/o/r/actions/runners/12":          "/repos/{owner}/{repo}/actions/runners/{id}",
		"/repos/o/r/actions/runs/5/jobs":                "/repos/{owner}/{repo}/actions/runs/{id}/jobs",
		"/app/installations/1/access_tokens":            "/app/installations/{id}/access_tokens",
		"/repos/o/r/actions/runners/registration-token": "/repos/{owner}/{repo}/actions/runners/registration-token",
	} {
		assert.Equal(t, want, Route(in), in)
	}
}

func TestPollingAnUnchangedQueueCostsNoRateLimit(t *testing.T) {
	sim, url := newSim(t)
	c := newClient(t, url)
	ctx := context.Background()
	sim.Enqueue("octo", "app", []string{"self-hosted"}, 0, 2, "build")
	first, err := c.ListQueuedJobs(ctx, repo)
	require.NoError(t, err)
	require.Len(t, first, 2)
	for range 3 {
		again, err := c.ListQueuedJobs(ctx, repo)
		require.NoError(t, err)
		assert.Equal(t, first, again, "a 304 is answered from the cache")
	}
	// A poll lists the runs of four statuses, then the jobs of each run;
	// the jobs of a run still queued and unchanged are known already.
	assert.Equal(t, 3.0*4, c.RequestCount("GET /repos/{owner}/{repo}/actions/runs", 304))
	assert.Zero(t, c.RequestCount("GET /repos/{owner}/{repo}/actions/runs/{id}/jobs", 304))
	win, _, err := c.gh.RateLimit.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, 15000-6, win.GetCore().Remaining, "only the first poll's six requests were counted")

	sim.Enqueue("octo", "app", []string{"self-hosted"}, 0, 1, "build")
	third, err := c.ListQueuedJobs(ctx, repo)
	require.NoError(t, err)
	assert.Len(t, third, 3, "a change is seen at once")
}

// TestReconcile: GitHub's view of a repository, as a reconciliation takes
// it: the queued job, the job running on its runner, the running job that
// ended (looked up alone, its run being over), one GitHub never knew, and
// the runners asked for with their busy flag.
func TestReconcile(t *testing.T) {
	sim, url := newSim(t)
	c := newClient(t, url)
	ctx := context.Background()
	done := sim.Enqueue("octo", "app", []string{"self-hosted"}, 0, 1, "done")
	jit, err := c.CreateJITConfig(ctx, repo, "r-done", []string{"self-hosted"}, 1)
	require.NoError(t, err)
	runCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, githubsim.RunRunner(runCtx, githubsim.RunnerConfig{URL: url, JITConfig: jit.EncodedConfig}))

	long := sim.Enqueue("octo", "app", []string{"self-hosted"}, time.Hour, 1, "long")
	jit, err = c.CreateJITConfig(ctx, repo, "r-long", []string{"self-hosted"}, 1)
	require.NoError(t, err)
	go func() {
		_ = githubsim.RunRunner(runCtx, githubsim.RunnerConfig{URL: url, JITConfig: jit.EncodedConfig})
	}()
	require.Eventually(t, func() bool { return sim.Jobs("octo/app")[1].Status == githubsim.StatusInProgress },
		5*time.Second, 10*time.Millisecond)
	queued := sim.Enqueue("octo", "app", []string{"self-hosted"}, 0, 1, "queued")

	got, err := c.Reconcile(ctx, activities.ReconcileInput{Repo: repo, Running: []int64{done[0], long[0], 999999},
		Runners: []string{"r-long", "r-done", "r-other"}})
	require.NoError(t, err)
	require.Len(t, got.Queued, 1)
	assert.Equal(t, queued[0], got.Queued[0].ID)
	require.Len(t, got.Started, 1)
	assert.Equal(t, long[0], got.Started[0].ID)
	assert.Equal(t, "r-long", got.Started[0].RunnerName)
	require.Len(t, got.Ended, 2)
	assert.Equal(t, done[0], got.Ended[0].ID)
	assert.Equal(t, "completed", got.Ended[0].Status)
	assert.Equal(t, "success", got.Ended[0].Conclusion)
	assert.Equal(t, "r-done", got.Ended[0].RunnerName)
	assert.Equal(t, int64(999999), got.Ended[1].ID)
	assert.Equal(t, "gone", got.Ended[1].Status)
	require.Len(t, got.Runners, 1, "the ephemeral runner that did its job is no longer registered")
	assert.Equal(t, activities.RunnerState{Name: "r-long", ID: got.Runners[0].ID, Status: "online", Busy: true}, got.Runners[0])
	assert.Equal(t, 2.0, c.RequestCount("GET /repos/{owner}/{repo}/actions/jobs/{id}", 200)+
		c.RequestCount("GET /repos/{owner}/{repo}/actions/jobs/{id}", 404), "only the jobs not in an active run are looked up")
}

// TestRerunJobRunsAJobAgainOnce: a failed job is run again as a new
// attempt of its run; asking again (a retry whose answer was lost) starts
// no other attempt; a job still queued cannot be run again.
func TestRerunJobRunsAJobAgainOnce(t *testing.T) {
	sim, url := newSim(t)
	c := newClient(t, url)
	ctx := context.Background()
	ids := sim.Enqueue("octo", "app", []string{"self-hosted"}, 0, 1, "build")
	_, err := c.RerunJob(ctx, repo, ids[0])
	assert.Equal(t, activities.ErrTypeInvalid, appErr(t, err).Type(), "a queued job cannot be run again")

	jit, err := c.CreateJITConfig(ctx, repo, "r-1", []string{"self-hosted"}, 1)
	require.NoError(t, err)
	runCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, githubsim.RunRunner(runCtx, githubsim.RunnerConfig{URL: url, JITConfig: jit.EncodedConfig}))
	res, err := c.RerunJob(ctx, repo, ids[0])
	require.NoError(t, err)
	assert.True(t, res.Rerun)
	res, err = c.RerunJob(ctx, repo, ids[0])
	require.NoError(t, err)
	assert.Equal(t, activities.RerunResult{Already: true}, res)
	jobs := sim.Jobs("octo/app")
	require.Len(t, jobs, 2, "one new attempt")
	assert.Equal(t, githubsim.StatusQueued, jobs[1].Status)
}

// TestNamesGitHubWouldRefuseNeverReachIt: a repository name that could
// reach another URL (a dot segment, a leading hyphen, a .git suffix) is
// refused before any request, as a non-retryable Invalid error.
func TestNamesGitHubWouldRefuseNeverReachIt(t *testing.T) {
	sim, url := newSim(t)
	c := newClient(t, url)
	ctx := context.Background()
	for _, r := range []Repo{{Owner: "..", Name: "one"}, {Owner: "-probe", Name: "one"}, {Owner: "probe", Name: "one.git"}, {Owner: "octo", Name: "a/b"}} {
		_, err := c.ListRunners(ctx, r)
		assert.Equal(t, activities.ErrTypeInvalid, appErr(t, err).Type(), "%+v", r)
		_, err = c.CreateJITConfig(ctx, r, "garo-x-1", []string{"self-hosted"}, 1)
		assert.Equal(t, activities.ErrTypeInvalid, appErr(t, err).Type(), "%+v", r)
		_, err = c.Reconcile(ctx, activities.ReconcileInput{Repo: r})
		assert.Equal(t, activities.ErrTypeInvalid, appErr(t, err).Type(), "%+v", r)
	}
	assert.Empty(t, sim.Stats().Requests, "no request went out")
}

// TestReconcileLeavesTheReserveOfTheRateLimitToRunners: once GitHub's
// rate limit left falls within ReconcileReserve, a reconciliation is
// refused (non-retryably, whole: a partial look would read as jobs gone),
// and runners are still created with the budget kept. The jobs of a run
// still queued and unchanged are not asked for again.
func TestReconcileLeavesTheReserveOfTheRateLimitToRunners(t *testing.T) {
	sim := githubsim.New(githubsim.Options{Seed: 1, RateLimit: 100})
	t.Cleanup(sim.Close)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	sim.SetBaseURL(srv.URL)
	reg := prometheus.NewRegistry()
	c, err := New(Config{URL: srv.URL, Token: "ghp_test", Registerer: reg})
	require.NoError(t, err)
	ctx := context.Background()
	sim.Enqueue("octo", "app", []string{"self-hosted"}, 0, 5, "build") // five runs of one job
	jobLists := func() float64 {
		return c.RequestCount("GET /repos/{owner}/{repo}/actions/runs/{id}/jobs", 200) +
			c.RequestCount("GET /repos/{owner}/{repo}/actions/runs/{id}/jobs", 304)
	}

	// 1 + 4 lists of runs + 5 lists of jobs: 90 left.
	_, err = c.CreateJITConfig(ctx, repo, "r-0", []string{"self-hosted"}, 1)
	require.NoError(t, err)
	got, err := c.Reconcile(ctx, activities.ReconcileInput{Repo: repo})
	require.NoError(t, err)
	assert.Len(t, got.Queued, 5)
	assert.Equal(t, 90.0, remaining(t, reg))
	got, err = c.Reconcile(ctx, activities.ReconcileInput{Repo: repo})
	require.NoError(t, err)
	assert.Len(t, got.Queued, 5)
	assert.Equal(t, 5.0, jobLists(), "the jobs of runs still queued and unchanged are not asked for again")

	// Down to 21 left, and two new runs: the next look lists the queued
	// runs, changed (20 left; unchanged answers, 304, are free), and the
	// jobs of the newest run (19 left), then stops.
	for i := 1; i <= 69; i++ {
		_, err = c.CreateJITConfig(ctx, repo, fmt.Sprintf("r-%d", i), []string{"self-hosted"}, 1)
		require.NoError(t, err)
	}
	sim.Enqueue("octo", "app", []string{"self-hosted"}, 0, 2, "more")
	_, err = c.Reconcile(ctx, activities.ReconcileInput{Repo: repo})
	ae := appErr(t, err)
	assert.Equal(t, activities.ErrTypeRateLimited, ae.Type())
	assert.True(t, ae.NonRetryable(), "tried at the reconciliation's next turn, not at once")
	assert.Contains(t, ae.Error(), "kept for creating and removing runners")
	_, err = c.Reconcile(ctx, activities.ReconcileInput{Repo: repo})
	require.Error(t, err, "refused before any request")
	assert.Equal(t, 19.0, remaining(t, reg))

	_, err = c.CreateJITConfig(ctx, repo, "r-kept", []string{"self-hosted"}, 1)
	require.NoError(t, err, "runners are still created")
}

// remaining is the value of garo_github_rate_limit_remaining in reg.
func remaining(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == "garo_github_rate_limit_remaining" {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("garo_github_rate_limit_remaining is not registered")
	return 0
}

// TestAQueuedRunRunAgainIsListedAfresh: the jobs of a queued run are
// known from the last look only while the run is unchanged; run again, it
// is queued with a new attempt and new jobs, which are listed.
func TestAQueuedRunRunAgainIsListedAfresh(t *testing.T) {
	sim, url := newSim(t)
	c := newClient(t, url)
	ctx := context.Background()
	ids := sim.Enqueue("octo", "app", []string{"self-hosted"}, 0, 1, "build")
	jobs, err := c.ListQueuedJobs(ctx, repo)
	require.NoError(t, err)
	require.Len(t, jobs, 1)

	jit, err := c.CreateJITConfig(ctx, repo, "r-1", []string{"self-hosted"}, 1)
	require.NoError(t, err)
	runCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, githubsim.RunRunner(runCtx, githubsim.RunnerConfig{URL: url, JITConfig: jit.EncodedConfig}))
	jobs, err = c.ListQueuedJobs(ctx, repo)
	require.NoError(t, err)
	require.Empty(t, jobs)
	res, err := c.RerunJob(ctx, repo, ids[0])
	require.NoError(t, err)
	require.True(t, res.Rerun)

	jobs, err = c.ListQueuedJobs(ctx, repo)
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	assert.NotEqual(t, ids[0], jobs[0].ID, "the new attempt's job")
}
