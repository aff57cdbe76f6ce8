package githubsim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const hookSecret = "sim-secret"

// receiver is a webhook endpoint that checks signatures as GitHub's
// consumers do and keeps what arrived.
type receiver struct {
	mu     sync.Mutex
	events []received
	bad    int
}

type received struct {
	delivery, action string
	jobID            int64
	runner           string
	headers          http.Header
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	payload, err := github.ValidatePayload(r, []byte(hookSecret))
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err != nil {
		rc.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	ev, err := github.ParseWebHook(github.WebHookType(r), payload)
	if err != nil {
		rc.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	e := ev.(*github.WorkflowJobEvent)
	rc.events = append(rc.events, received{delivery: github.DeliveryID(r), action: e.GetAction(),
		jobID: e.GetWorkflowJob().GetID(), runner: e.GetWorkflowJob().GetRunnerName(), headers: r.Header.Clone()})
	w.WriteHeader(http.StatusAccepted)
}

func (rc *receiver) actions(jobID int64) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, e := range rc.events {
		if e.jobID == jobID {
			out = append(out, e.action)
		}
	}
	return out
}

type simEnv struct {
	t    *testing.T
	sim  *Sim
	srv  *httptest.Server
	recv *receiver
}

func newSimEnv(t *testing.T) *simEnv {
	t.Helper()
	e := &simEnv{t: t, recv: &receiver{}}
	hooks := httptest.NewServer(e.recv)
	t.Cleanup(hooks.Close)
	// One delivery at a time, so that tests can assert the order of events.
	e.sim = New(Options{WebhookURL: hooks.URL, WebhookSecret: hookSecret, Seed: 7, RunnerOfflineAfter: time.Second,
		WebhookConcurrency: 1})
	t.Cleanup(e.sim.Close)
	e.srv = httptest.NewServer(e.sim.Handler())
	t.Cleanup(e.srv.Close)
	e.sim.SetBaseURL(e.srv.URL)
	return e
}

// clients returns go-github clients for github.com-style (/) and
// GHES-style (/api/v3/) paths.
func (e *simEnv) clients() map[string]*github.Client {
	dot := github.NewClient(nil).WithAuthToken("ghs_test")
	dot.BaseURL = mustURL(e.srv.URL + "/")
	ghes, err := github.NewClient(nil).WithAuthToken("ghs_test").WithEnterpriseURLs(e.srv.URL, e.srv.URL)
	require.NoError(e.t, err)
	return map[string]*github.Client{"dotcom": dot, "ghes": ghes}
}

func (e *simEnv) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestJITRunnerRunsOneJobAndIsRemoved(t *testing.T) {
	for _, name := range []string{"dotcom", "ghes"} {
		t.Run(name, func(t *testing.T) {
			e := newSimEnv(t)
			gh := e.clients()[name]
			ctx := context.Background()
			jit, _, err := gh.Actions.GenerateRepoJITConfig(ctx, "octo", "app", &github.GenerateJITConfigRequest{
				Name: "r-1", RunnerGroupID: 1, Labels: []string{"self-hosted", "linux", "gpu"}})
			require.NoError(t, err)
			assert.Equal(t, "r-1", jit.GetRunner().GetName())
			var labels []string
			for _, l := range jit.GetRunner().Labels {
				labels = append(labels, l.GetName())
			}
			assert.Equal(t, []string{"self-hosted", "Linux", "X64", "gpu"}, labels)

			// GitHub's shape: base64 of a JSON map of base64 files.
			url, cred, rf, err := DecodeJITConfig(jit.GetEncodedJITConfig())
			require.NoError(t, err)
			assert.Equal(t, e.srv.URL, url)
			assert.NotEmpty(t, cred)
			assert.Equal(t, "r-1", rf.AgentName)

			_, _, err = gh.Actions.GenerateRepoJITConfig(ctx, "octo", "app", &github.GenerateJITConfigRequest{
				Name: "r-1", RunnerGroupID: 1, Labels: []string{"x"}})
			var ge *github.ErrorResponse
			require.ErrorAs(t, err, &ge)
			assert.Equal(t, http.StatusConflict, ge.Response.StatusCode)

			ids := e.sim.Enqueue("octo", "app", []string{"self-hosted", "linux"}, 50*time.Millisecond, 1, "build")
			done := make(chan error, 1)
			go func() { done <- RunRunner(ctx, RunnerConfig{JITConfig: jit.GetEncodedJITConfig()}) }()
			select {
			case err := <-done:
				require.NoError(t, err, "an ephemeral runner exits after its job")
			case <-time.After(10 * time.Second):
				t.Fatal("runner did not finish its job")
			}
			j := e.sim.Jobs("octo/app")[0]
			assert.Equal(t, ids[0], j.ID)
			assert.Equal(t, StatusCompleted, j.Status)
			assert.Equal(t, "success", j.Conclusion)
			assert.Equal(t, "r-1", j.RunnerName)
			require.NotNil(t, j.StartedAt)
			require.NotNil(t, j.CompletedAt)

			runners, _, err := gh.Actions.ListRunners(ctx, "octo", "app", nil)
			require.NoError(t, err)
			assert.Zero(t, runners.TotalCount, "an ephemeral runner disappears after its job")

			e.eventually("three signed webhooks", func() bool { return len(e.recv.actions(ids[0])) == 3 })
			assert.Equal(t, []string{"queued", "in_progress", "completed"}, e.recv.actions(ids[0]))
			assert.Zero(t, e.recv.bad)
			h := e.recv.events[0].headers
			assert.True(t, strings.HasPrefix(h.Get("User-Agent"), "GitHub-Hookshot/"))
			assert.NotEmpty(t, h.Get("X-GitHub-Delivery"))
		})
	}
}

func TestReusableRunnerWithRegistrationToken(t *testing.T) {
	e := newSimEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gh := e.clients()["ghes"]
	tok, _, err := gh.Actions.CreateRegistrationToken(ctx, "octo", "app")
	require.NoError(t, err)
	assert.True(t, tok.GetExpiresAt().After(time.Now()))
	e.sim.Enqueue("octo", "app", []string{"self-hosted"}, 10*time.Millisecond, 3, "test")
	done := make(chan error, 1)
	go func() { done <- RunRunner(ctx, RunnerConfig{URL: e.srv.URL, Token: tok.GetToken(), Name: "reuse-1"}) }()
	e.eventually("three jobs done by one runner", func() bool {
		n := 0
		for _, j := range e.sim.Jobs("octo/app") {
			if j.Status == StatusCompleted && j.RunnerName == "reuse-1" {
				n++
			}
		}
		return n == 3
	})
	rs := e.sim.Runners("octo/app")
	require.Len(t, rs, 1, "a reusable runner stays registered")
	assert.Equal(t, RunnerOnline, rs[0].Status)
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, RunnerOffline, e.sim.Runners("octo/app")[0].Status, "a stopped runner goes offline at once")

	err = RunRunner(context.Background(), RunnerConfig{URL: e.srv.URL, Token: "bogus", Name: "x"})
	assert.ErrorContains(t, err, "401")
}

func TestBusyRunnerCannotBeRemovedAndKilledRunnerFailsItsJob(t *testing.T) {
	e := newSimEnv(t)
	gh := e.clients()["dotcom"]
	ctx := context.Background()
	jit, _, err := gh.Actions.GenerateRepoJITConfig(ctx, "octo", "app", &github.GenerateJITConfigRequest{
		Name: "busy-1", RunnerGroupID: 1, Labels: []string{"self-hosted"}})
	require.NoError(t, err)
	ids := e.sim.Enqueue("octo", "app", []string{"self-hosted"}, time.Hour, 1, "long")
	rctx, kill := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- RunRunner(rctx, RunnerConfig{JITConfig: jit.GetEncodedJITConfig()}) }()
	e.eventually("job in progress", func() bool { return e.sim.Jobs("octo/app")[0].Status == StatusInProgress })

	_, err = gh.Actions.RemoveRunner(ctx, "octo", "app", jit.GetRunner().GetID())
	var ge *github.ErrorResponse
	require.ErrorAs(t, err, &ge)
	assert.Equal(t, http.StatusUnprocessableEntity, ge.Response.StatusCode, "a busy runner is never removed")
	r, _, err := gh.Actions.GetRunner(ctx, "octo", "app", jit.GetRunner().GetID())
	require.NoError(t, err)
	assert.True(t, r.GetBusy())

	kill()
	<-done
	e.eventually("killed runner's job failed", func() bool {
		j := e.sim.Jobs("octo/app")[0]
		return j.Status == StatusCompleted && j.Conclusion == "failure"
	})
	e.eventually("completed webhook", func() bool { return len(e.recv.actions(ids[0])) == 3 })

	_, err = gh.Actions.RemoveRunner(ctx, "octo", "app", jit.GetRunner().GetID())
	require.NoError(t, err)
	_, resp, err := gh.Actions.GetRunner(ctx, "octo", "app", jit.GetRunner().GetID())
	require.Error(t, err)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestSilentRunnerGoesOfflineAndFailsItsJob(t *testing.T) {
	e := newSimEnv(t)
	gh := e.clients()["dotcom"]
	ctx := context.Background()
	jit, _, err := gh.Actions.GenerateRepoJITConfig(ctx, "octo", "app", &github.GenerateJITConfigRequest{
		Name: "lost-1", RunnerGroupID: 1, Labels: []string{"self-hosted"}})
	require.NoError(t, err)
	e.sim.Enqueue("octo", "app", nil, time.Hour, 1, "long")
	// A runner process that takes the job and then vanishes without a word,
	// as one killed with SIGKILL does.
	_, cred, _, err := DecodeJITConfig(jit.GetEncodedJITConfig())
	require.NoError(t, err)
	c := &runnerClient{url: e.srv.URL, cred: cred, http: http.DefaultClient}
	_, err = c.post(ctx, "/connect", nil, nil)
	require.NoError(t, err)
	var a Assignment
	_, err = c.post(ctx, "/acquire", nil, &a)
	require.NoError(t, err)
	e.eventually("job failed after the runner fell silent", func() bool {
		j := e.sim.Jobs("octo/app")[0]
		return j.Status == StatusCompleted && j.Conclusion == "failure"
	})
	assert.Equal(t, RunnerOffline, e.sim.Runners("octo/app")[0].Status)
}

func TestListRunnersPaginates(t *testing.T) {
	e := newSimEnv(t)
	gh := e.clients()["ghes"]
	ctx := context.Background()
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		_, _, err := gh.Actions.GenerateRepoJITConfig(ctx, "octo", "app", &github.GenerateJITConfigRequest{
			Name: n, RunnerGroupID: 1, Labels: []string{"self-hosted"}})
		require.NoError(t, err)
	}
	var names []string
	opts := &github.ListOptions{PerPage: 2}
	pages := 0
	for {
		rs, resp, err := gh.Actions.ListRunners(ctx, "octo", "app", opts)
		require.NoError(t, err)
		assert.Equal(t, 5, rs.TotalCount)
		pages++
		for _, r := range rs.Runners {
			names = append(names, r.GetName())
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	assert.Equal(t, 3, pages)
	assert.Equal(t, []string{"a", "b", "c", "d", "e"}, names)
}

func TestRunsAndJobs(t *testing.T) {
	e := newSimEnv(t)
	gh := e.clients()["dotcom"]
	ctx := context.Background()
	ids := e.sim.Enqueue("octo", "app", []string{"self-hosted", "linux"}, 0, 2, "lint")
	runs, _, err := gh.Actions.ListRepositoryWorkflowRuns(ctx, "octo", "app", &github.ListWorkflowRunsOptions{Status: "queued"})
	require.NoError(t, err)
	require.Equal(t, 2, runs.GetTotalCount())
	jobs, _, err := gh.Actions.ListWorkflowJobs(ctx, "octo", "app", runs.WorkflowRuns[0].GetID(), nil)
	require.NoError(t, err)
	require.Len(t, jobs.Jobs, 1)
	assert.Equal(t, []string{"self-hosted", "linux"}, jobs.Jobs[0].Labels)
	j, _, err := gh.Actions.GetWorkflowJobByID(ctx, "octo", "app", ids[1])
	require.NoError(t, err)
	assert.Equal(t, "queued", j.GetStatus())
	assert.Nil(t, j.StartedAt, "null, never an empty string")
	runs, _, err = gh.Actions.ListRepositoryWorkflowRuns(ctx, "octo", "app", &github.ListWorkflowRunsOptions{Status: "completed"})
	require.NoError(t, err)
	assert.Zero(t, runs.GetTotalCount())
}

func TestRateLimitHeadersAndFaults(t *testing.T) {
	e := newSimEnv(t)
	gh := e.clients()["ghes"]
	ctx := context.Background()
	_, resp, err := gh.Actions.ListRunners(ctx, "octo", "app", nil)
	require.NoError(t, err)
	assert.Equal(t, 15000, resp.Rate.Limit)
	assert.Equal(t, 14999, resp.Rate.Remaining)
	assert.True(t, resp.Rate.Reset.After(time.Now()))

	e.sim.SetFaults(Faults{Seed: 1, Routes: []RouteFault{
		{Method: "GET", Path: "/repos/octo/app/actions/runners", Kind: FaultError, Status: 502, Count: 1},
	}})
	_, resp, err = gh.Actions.ListRunners(ctx, "octo", "app", nil)
	require.Error(t, err)
	assert.Equal(t, 502, resp.StatusCode)
	_, _, err = gh.Actions.ListRunners(ctx, "octo", "app", nil)
	require.NoError(t, err, "the fault hit once, as its count says")

	e.sim.SetFaults(Faults{Routes: []RouteFault{{Path: "/repos/octo/app", Kind: FaultSecondaryRateLimit, RetryAfterSeconds: 7, Count: 1}}})
	_, _, err = gh.Actions.ListRunners(ctx, "octo", "app", nil)
	var abuse *github.AbuseRateLimitError
	require.ErrorAs(t, err, &abuse)
	assert.Equal(t, 7*time.Second, abuse.GetRetryAfter())

	// A fresh client, since go-github refuses to call before a known reset.
	gh = newSimEnv(t).clients()["dotcom"]
	e2 := newSimEnv(t)
	gh.BaseURL = mustURL(e2.srv.URL + "/")
	e2.sim.SetFaults(Faults{Routes: []RouteFault{{Path: "/repos/", Kind: FaultPrimaryRateLimit, RetryAfterSeconds: 30, Count: 1}}})
	_, _, err = gh.Actions.ListRunners(ctx, "octo", "app", nil)
	var rl *github.RateLimitError
	require.ErrorAs(t, err, &rl)
	assert.WithinDuration(t, time.Now().Add(30*time.Second), rl.Rate.Reset.Time, 2*time.Second)

	stats := e.sim.Stats()
	assert.Equal(t, 1, stats.Requests["GET /repos/{owner}/{repo}/actions/runners 502"])
	assert.Equal(t, 1, stats.Requests["GET /repos/{owner}/{repo}/actions/runners 403"])
	assert.GreaterOrEqual(t, stats.Requests["GET /repos/{owner}/{repo}/actions/runners 200"], 2)
}

func TestWebhookFaultsAreSeeded(t *testing.T) {
	e := newSimEnv(t)
	e.sim.SetFaults(Faults{Seed: 3, Webhooks: WebhookFaults{DropRate: 1}})
	ids := e.sim.Enqueue("octo", "app", nil, 0, 2, "x")
	e.eventually("deliveries processed", e.sim.WebhooksIdle)
	time.Sleep(50 * time.Millisecond)
	assert.Empty(t, e.recv.actions(ids[0]))
	assert.Equal(t, 2, e.sim.Stats().WebhooksDropped)

	e.sim.SetFaults(Faults{Seed: 3, Webhooks: WebhookFaults{DuplicateRate: 1}})
	ids = e.sim.Enqueue("octo", "app", nil, 0, 1, "y")
	e.eventually("duplicate delivered", func() bool { return len(e.recv.actions(ids[0])) == 2 })
	e.recv.mu.Lock()
	n := len(e.recv.events)
	assert.Equal(t, e.recv.events[n-1].delivery, e.recv.events[n-2].delivery, "a duplicate keeps its delivery id")
	e.recv.mu.Unlock()
}

func TestControlAPI(t *testing.T) {
	e := newSimEnv(t)
	post := func(path, body string) (int, string) {
		resp, err := http.Post(e.srv.URL+path, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := post("/_sim/jobs", `{"repo":"octo/app","labels":["self-hosted","linux"],"durationMs":5,"count":3}`)
	require.Equal(t, http.StatusCreated, code, body)
	var created struct{ IDs []int64 }
	require.NoError(t, json.Unmarshal([]byte(body), &created))
	assert.Len(t, created.IDs, 3)

	resp, err := http.Get(e.srv.URL + "/_sim/jobs?repo=octo/app")
	require.NoError(t, err)
	var jobs []map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&jobs))
	resp.Body.Close()
	require.Len(t, jobs, 3)
	for _, k := range []string{"id", "repo", "status", "labels", "runnerName", "createdAt", "startedAt", "completedAt"} {
		assert.Contains(t, jobs[0], k)
	}
	code, _ = post("/_sim/jobs", `{"repo":"bad","count":1}`)
	assert.Equal(t, http.StatusBadRequest, code)
	req, _ := http.NewRequest("PUT", e.srv.URL+"/_sim/faults", strings.NewReader(`{"routes":[{"path":"/x","kind":"meteor"}]}`))
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)

	code, _ = post("/_sim/reset", "")
	assert.Equal(t, http.StatusNoContent, code)
	assert.Empty(t, e.sim.Jobs(""))

	resp, err = http.Get(e.srv.URL + "/repos/octo/app/actions/runners")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "GitHub's API needs a token")
}

func TestInstallationTokenExchange(t *testing.T) {
	e := newSimEnv(t)
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v3/app/installations/1/access_tokens", nil)
	req.Header.Set("Authorization", "Bearer aaa.bbb.ccc")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var tok struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	assert.True(t, strings.HasPrefix(tok.Token, "ghs_"))
	assert.True(t, tok.ExpiresAt.After(time.Now()))
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestRepositoryWebhookOverridesTheAppWebhook(t *testing.T) {
	e := newSimEnv(t)
	own := &receiver{}
	srv := httptest.NewServer(own)
	t.Cleanup(srv.Close)
	body := `{"repo":"octo/own","webhookUrl":"` + srv.URL + `","webhookSecret":"` + hookSecret + `"}`
	resp, err := http.Post(e.srv.URL+"/_sim/repos", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	ownIDs := e.sim.Enqueue("octo", "own", nil, 0, 1, "x")
	appIDs := e.sim.Enqueue("octo", "app", nil, 0, 1, "y")
	e.eventually("both webhooks", func() bool {
		return len(own.actions(ownIDs[0])) == 1 && len(e.recv.actions(appIDs[0])) == 1
	})
	assert.Empty(t, e.recv.actions(ownIDs[0]), "a repository's own webhook replaces the app's")
}

func TestReorderAndLatencyFaults(t *testing.T) {
	e := newSimEnv(t)
	e.sim.SetFaults(Faults{Seed: 1, Webhooks: WebhookFaults{ReorderRate: 1}})
	ids := e.sim.Enqueue("octo", "app", nil, 0, 2, "x")
	e.eventually("both delivered", func() bool {
		return len(e.recv.actions(ids[0])) == 1 && len(e.recv.actions(ids[1])) == 1
	})
	e.recv.mu.Lock()
	assert.Equal(t, ids[1], e.recv.events[0].jobID, "the second event overtook the first")
	e.recv.mu.Unlock()

	e.sim.SetFaults(Faults{Routes: []RouteFault{{Method: "GET", Path: "/repos/", Kind: FaultLatency, LatencyMs: 300, Count: 1}}})
	gh := e.clients()["dotcom"]
	start := time.Now()
	_, _, err := gh.Actions.ListRunners(context.Background(), "octo", "app", nil)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
}

// hookReceiver keeps every delivery with its headers and raw body.
type hookReceiver struct {
	mu    sync.Mutex
	calls []hookCall
}

type hookCall struct {
	header http.Header
	body   []byte
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.calls = append(h.calls, hookCall{r.Header.Clone(), b})
	h.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (h *hookReceiver) events() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, c := range h.calls {
		out = append(out, c.header.Get("X-GitHub-Event"))
	}
	return out
}

func TestRepositoryWebhooksThroughGitHubsAPI(t *testing.T) {
	for _, name := range []string{"dotcom", "ghes"} {
		t.Run(name, func(t *testing.T) {
			e := newSimEnv(t)
			gh := e.clients()[name]
			ctx := context.Background()
			jsonHook, formHook, pushHook := &hookReceiver{}, &hookReceiver{}, &hookReceiver{}
			urls := map[*hookReceiver]string{}
			for _, h := range []*hookReceiver{jsonHook, formHook, pushHook} {
				srv := httptest.NewServer(h)
				t.Cleanup(srv.Close)
				urls[h] = srv.URL
			}
			created, _, err := gh.Repositories.CreateHook(ctx, "octo", "app", &github.Hook{
				Config: &github.HookConfig{URL: github.String(urls[jsonHook]), ContentType: github.String("json"),
					Secret: github.String(hookSecret), InsecureSSL: github.String("0")},
				Events: []string{"workflow_job"}, Active: github.Bool(true)})
			require.NoError(t, err)
			assert.True(t, created.GetActive())
			assert.Equal(t, []string{"workflow_job"}, created.Events)
			assert.Equal(t, "********", created.GetConfig().GetSecret(), "the secret is never shown")
			_, _, err = gh.Repositories.CreateHook(ctx, "octo", "app", &github.Hook{
				Config: &github.HookConfig{URL: github.String(urls[formHook]), ContentType: github.String("form"), Secret: github.String(hookSecret)},
				Events: []string{"*"}})
			require.NoError(t, err)
			_, _, err = gh.Repositories.CreateHook(ctx, "octo", "app", &github.Hook{
				Config: &github.HookConfig{URL: github.String(urls[pushHook]), ContentType: github.String("json")},
				Events: []string{"push"}})
			require.NoError(t, err)
			hooks, _, err := gh.Repositories.ListHooks(ctx, "octo", "app", nil)
			require.NoError(t, err)
			require.Len(t, hooks, 3)

			e.eventually("a ping to each new hook", func() bool {
				return len(jsonHook.events()) == 1 && len(formHook.events()) == 1 && len(pushHook.events()) == 1
			})
			assert.Equal(t, "ping", jsonHook.events()[0])
			ids := e.sim.Enqueue("octo", "app", nil, 0, 1, "x")
			e.eventually("the job's webhook to subscribed hooks and the app", func() bool {
				return len(jsonHook.events()) == 2 && len(formHook.events()) == 2 && len(e.recv.actions(ids[0])) == 1
			})
			assert.Equal(t, []string{"ping"}, pushHook.events(), "a hook gets only its events")

			jsonHook.mu.Lock()
			c := jsonHook.calls[1]
			jsonHook.mu.Unlock()
			assert.Equal(t, "workflow_job", c.header.Get("X-GitHub-Event"))
			assert.Equal(t, strconv.FormatInt(created.GetID(), 10), c.header.Get("X-GitHub-Hook-ID"))
			assert.Equal(t, "repository", c.header.Get("X-GitHub-Hook-Installation-Target-Type"))
			assert.NotEmpty(t, c.header.Get("X-GitHub-Hook-Installation-Target-ID"))
			req := httptest.NewRequest("POST", "/", bytes.NewReader(c.body))
			req.Header = c.header
			_, err = github.ValidatePayload(req, []byte(hookSecret))
			require.NoError(t, err, "signed with the hook's secret")
			formHook.mu.Lock()
			fc := formHook.calls[1]
			formHook.mu.Unlock()
			assert.Equal(t, "application/x-www-form-urlencoded", fc.header.Get("Content-Type"))
			assert.True(t, bytes.HasPrefix(fc.body, []byte("payload=")))

			_, err = gh.Repositories.PingHook(ctx, "octo", "app", created.GetID())
			require.NoError(t, err)
			e.eventually("the ping", func() bool { return len(jsonHook.events()) == 3 })
			_, err = gh.Repositories.DeleteHook(ctx, "octo", "app", created.GetID())
			require.NoError(t, err)
			_, err = gh.Repositories.PingHook(ctx, "octo", "app", created.GetID())
			assert.Error(t, err, "a deleted hook is gone")
		})
	}
}

func TestRedeliveryAndDeliveryLog(t *testing.T) {
	e := newSimEnv(t)
	ids := e.sim.Enqueue("octo", "app", nil, 0, 1, "x")
	// The log records a delivery once its answer is back.
	e.eventually("delivered and logged", func() bool { return len(e.sim.Deliveries()) == 1 })
	d := e.sim.Deliveries()[0]
	assert.Equal(t, http.StatusAccepted, d.StatusCode)
	resp, err := http.Post(e.srv.URL+"/_sim/deliveries/"+d.ID+"/redeliver", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	e.eventually("redelivered", func() bool { return len(e.recv.actions(ids[0])) == 2 })
	e.recv.mu.Lock()
	assert.Equal(t, e.recv.events[0].delivery, e.recv.events[1].delivery, "a redelivery keeps the event's GUID")
	e.recv.mu.Unlock()
	e.eventually("the redelivery logged", func() bool { return len(e.sim.Deliveries()) == 2 })
	again := e.sim.Deliveries()[1]
	assert.True(t, again.Redelivery)
	assert.Greater(t, again.Attempt, d.Attempt, "an attempt of its own")
	resp, err = http.Post(e.srv.URL+"/_sim/deliveries/nope/redeliver", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestConditionalRequestsAndRateLimitResources(t *testing.T) {
	e := newSimEnv(t)
	ctx := context.Background()
	get := func(etag string) *http.Response {
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/v3/repos/octo/app/actions/runs?status=queued", nil)
		req.Header.Set("Authorization", "Bearer ghs_cond")
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	first := get("")
	require.Equal(t, http.StatusOK, first.StatusCode)
	etag := first.Header.Get("ETag")
	require.NotEmpty(t, etag)
	remaining := first.Header.Get("X-RateLimit-Remaining")
	second := get(etag)
	assert.Equal(t, http.StatusNotModified, second.StatusCode)
	assert.Equal(t, remaining, second.Header.Get("X-RateLimit-Remaining"), "a 304 costs nothing")
	e.sim.Enqueue("octo", "app", nil, 0, 1, "x")
	assert.Equal(t, http.StatusOK, get(etag).StatusCode, "a change changes the ETag")

	gh := e.clients()["dotcom"]
	_, _, err := gh.Actions.ListRunners(ctx, "octo", "app", nil)
	require.NoError(t, err)
	limits, _, err := gh.RateLimit.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, 15000, limits.GetCore().Limit)
	assert.Equal(t, 14999, limits.GetCore().Remaining, "the budget the headers report; reading it is free")
	assert.Equal(t, 30, limits.GetSearch().Limit)
	assert.Equal(t, 10000, limits.GetActionsRunnerRegistration().Limit)
}

func TestRerunQueuesANewAttempt(t *testing.T) {
	e := newSimEnv(t)
	gh := e.clients()["ghes"]
	ctx := context.Background()
	ids := e.sim.Enqueue("octo", "app", nil, 0, 1, "x")
	_, err := gh.Actions.RerunJobByID(ctx, "octo", "app", ids[0])
	assert.Error(t, err, "a queued job cannot be rerun")
	jit, _, err := gh.Actions.GenerateRepoJITConfig(ctx, "octo", "app", &github.GenerateJITConfigRequest{Name: "r", RunnerGroupID: 1, Labels: []string{"x"}})
	require.NoError(t, err)
	require.NoError(t, RunRunner(ctx, RunnerConfig{JITConfig: jit.GetEncodedJITConfig()}))
	_, err = gh.Actions.RerunJobByID(ctx, "octo", "app", ids[0])
	require.NoError(t, err)
	jobs := e.sim.Jobs("octo/app")
	require.Len(t, jobs, 2)
	assert.Equal(t, jobs[0].RunID, jobs[1].RunID)
	assert.Equal(t, int64(2), jobs[1].RunAttempt)
	assert.Equal(t, StatusQueued, jobs[1].Status)
	e.eventually("queued webhook of the new attempt", func() bool { return len(e.recv.actions(jobs[1].ID)) == 1 })

	// The run is at its second attempt, and lists that attempt's jobs
	// unless every attempt's are asked for.
	run, _, err := gh.Actions.GetWorkflowRunByID(ctx, "octo", "app", jobs[0].RunID)
	require.NoError(t, err)
	assert.Equal(t, 2, run.GetRunAttempt())
	latest, _, err := gh.Actions.ListWorkflowJobs(ctx, "octo", "app", jobs[0].RunID, nil)
	require.NoError(t, err)
	require.Len(t, latest.Jobs, 1)
	assert.Equal(t, jobs[1].ID, latest.Jobs[0].GetID())
	all, _, err := gh.Actions.ListWorkflowJobs(ctx, "octo", "app", jobs[0].RunID, &github.ListWorkflowJobsOptions{Filter: "all"})
	require.NoError(t, err)
	assert.Len(t, all.Jobs, 2)
}

func TestStaleOfflineRunnersAreRemoved(t *testing.T) {
	sim := New(Options{RunnerOfflineAfter: 200 * time.Millisecond, RunnerRemoveAfter: 300 * time.Millisecond})
	t.Cleanup(sim.Close)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	sim.SetBaseURL(srv.URL)
	gh := github.NewClient(nil).WithAuthToken("x")
	gh.BaseURL = mustURL(srv.URL + "/")
	_, _, err := gh.Actions.GenerateRepoJITConfig(context.Background(), "octo", "app",
		&github.GenerateJITConfigRequest{Name: "never-started", RunnerGroupID: 1, Labels: []string{"x"}})
	require.NoError(t, err)
	require.Len(t, sim.Runners("octo/app"), 1)
	require.Eventually(t, func() bool { return len(sim.Runners("octo/app")) == 0 }, 5*time.Second, 20*time.Millisecond,
		"a runner offline past the limit is removed, as GitHub does")
}

func TestScaleSetRegistrationIsNotFound(t *testing.T) {
	e := newSimEnv(t)
	resp, err := http.Post(e.srv.URL+"/actions/runner-registration", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "as a GHES without runner scale sets")
}

func TestOrganizationRunnersAndHooks(t *testing.T) {
	for _, name := range []string{"dotcom", "ghes"} {
		t.Run(name, func(t *testing.T) {
			e := newSimEnv(t)
			gh := e.clients()[name]
			ctx := context.Background()
			orgHook := &hookReceiver{}
			srv := httptest.NewServer(orgHook)
			t.Cleanup(srv.Close)
			h, _, err := gh.Organizations.CreateHook(ctx, "acme", &github.Hook{
				Config: &github.HookConfig{URL: github.String(srv.URL), ContentType: github.String("json"), Secret: github.String(hookSecret)},
				Events: []string{"workflow_job"}, Active: github.Bool(true)})
			require.NoError(t, err)
			hooks, _, err := gh.Organizations.ListHooks(ctx, "acme", nil)
			require.NoError(t, err)
			require.Len(t, hooks, 1)
			assert.Equal(t, "Organization", hooks[0].GetType())

			other := e.sim.Enqueue("elsewhere", "app", []string{"self-hosted"}, time.Hour, 1, "not ours")
			ids := e.sim.Enqueue("acme", "one", []string{"self-hosted"}, 10*time.Millisecond, 1, "ours")
			jit, _, err := gh.Actions.GenerateOrgJITConfig(ctx, "acme", &github.GenerateJITConfigRequest{
				Name: "org-1", RunnerGroupID: 1, Labels: []string{"self-hosted"}})
			require.NoError(t, err)
			runners, _, err := gh.Actions.ListOrganizationRunners(ctx, "acme", nil)
			require.NoError(t, err)
			require.Equal(t, 1, runners.TotalCount)
			_, _, err = gh.Actions.GetOrganizationRunner(ctx, "acme", jit.GetRunner().GetID())
			require.NoError(t, err)
			repoRunners, _, err := gh.Actions.ListRunners(ctx, "acme", "one", nil)
			require.NoError(t, err)
			assert.Zero(t, repoRunners.TotalCount, "an org runner is not a repository's")

			require.NoError(t, RunRunner(ctx, RunnerConfig{JITConfig: jit.GetEncodedJITConfig()}))
			jobs := e.sim.Jobs("acme/one")
			assert.Equal(t, ids[0], jobs[0].ID)
			assert.Equal(t, "org-1", jobs[0].RunnerName, "an org runner serves the org's repositories")
			assert.Equal(t, StatusQueued, e.sim.Jobs("elsewhere/app")[0].Status, "and no one else's")
			assert.Equal(t, other[0], e.sim.Jobs("elsewhere/app")[0].ID)

			e.eventually("org hook: ping and the job's three events", func() bool { return len(orgHook.events()) == 4 })
			orgHook.mu.Lock()
			last := orgHook.calls[3]
			orgHook.mu.Unlock()
			assert.Equal(t, "organization", last.header.Get("X-GitHub-Hook-Installation-Target-Type"))
			assert.Equal(t, strconv.FormatInt(h.GetID(), 10), last.header.Get("X-GitHub-Hook-ID"))

			tok, _, err := gh.Actions.CreateOrganizationRegistrationToken(ctx, "acme")
			require.NoError(t, err)
			assert.NotEmpty(t, tok.GetToken())
			_, err = gh.Actions.RemoveOrganizationRunner(ctx, "acme", jit.GetRunner().GetID())
			require.Error(t, err, "an ephemeral runner is gone after its job")
			_, err = gh.Organizations.DeleteHook(ctx, "acme", h.GetID())
			require.NoError(t, err)
		})
	}
}

// TestEveryRouteWithGoGitHub calls every simulated REST route through
// go-github v60, at / (github.com) and at /api/v3/ (GHES), and checks the
// answer's shape.
func TestEveryRouteWithGoGitHub(t *testing.T) {
	for _, name := range []string{"dotcom", "ghes"} {
		t.Run(name, func(t *testing.T) {
			e := newSimEnv(t)
			gh := e.clients()[name]
			ctx := context.Background()
			check := func(what string, err error) {
				t.Helper()
				require.NoError(t, err, what)
			}

			dl, _, err := gh.Actions.ListRunnerApplicationDownloads(ctx, "octo", "app")
			check("repo downloads", err)
			require.Len(t, dl, 6)
			var platforms []string
			for _, d := range dl {
				platforms = append(platforms, d.GetOS()+"/"+d.GetArchitecture())
				assert.NotEmpty(t, d.GetDownloadURL())
				assert.NotEmpty(t, d.GetFilename())
				assert.Len(t, d.GetSHA256Checksum(), 64)
			}
			assert.ElementsMatch(t, []string{"linux/x64", "linux/arm64", "osx/x64", "osx/arm64", "win/x64", "win/arm64"}, platforms)
			dl, _, err = gh.Actions.ListOrganizationRunnerApplicationDownloads(ctx, "octo")
			check("org downloads", err)
			assert.Len(t, dl, 6)

			reg, _, err := gh.Actions.CreateRegistrationToken(ctx, "octo", "app")
			check("registration token", err)
			assert.NotEmpty(t, reg.GetToken())
			rm, _, err := gh.Actions.CreateRemoveToken(ctx, "octo", "app")
			check("remove token", err)
			assert.True(t, rm.GetExpiresAt().After(time.Now()))
			orm, _, err := gh.Actions.CreateOrganizationRemoveToken(ctx, "octo")
			check("org remove token", err)
			assert.NotEmpty(t, orm.GetToken())

			jit, _, err := gh.Actions.GenerateRepoJITConfig(ctx, "octo", "app", &github.GenerateJITConfigRequest{
				Name: "every-1", RunnerGroupID: 1, Labels: []string{"self-hosted", "fast"}})
			check("jit", err)
			id := jit.GetRunner().GetID()
			r, _, err := gh.Actions.GetRunner(ctx, "octo", "app", id)
			check("get runner", err)
			assert.Equal(t, "offline", r.GetStatus())
			assert.False(t, r.GetBusy())
			rs, _, err := gh.Actions.ListRunners(ctx, "octo", "app", &github.ListOptions{PerPage: 1})
			check("list runners", err)
			assert.Equal(t, 1, rs.TotalCount)
			_, err = gh.Actions.RemoveRunner(ctx, "octo", "app", id)
			check("remove runner", err)

			ids := e.sim.Enqueue("octo", "app", []string{"self-hosted"}, 0, 1, "build")
			runs, _, err := gh.Actions.ListRepositoryWorkflowRuns(ctx, "octo", "app", &github.ListWorkflowRunsOptions{Status: "queued"})
			check("runs", err)
			require.Equal(t, 1, runs.GetTotalCount())
			jobs, _, err := gh.Actions.ListWorkflowJobs(ctx, "octo", "app", runs.WorkflowRuns[0].GetID(), nil)
			check("run jobs", err)
			require.Len(t, jobs.Jobs, 1)
			j, _, err := gh.Actions.GetWorkflowJobByID(ctx, "octo", "app", ids[0])
			check("job", err)
			assert.Equal(t, int64(1), j.GetRunAttempt())
			assert.True(t, strings.HasPrefix(j.GetRunURL(), e.srv.URL+"/"), "URLs on the simulator's own host")
			assert.True(t, strings.HasPrefix(j.GetHTMLURL(), e.srv.URL+"/"))
			_, err = gh.Actions.RerunJobByID(ctx, "octo", "app", ids[0])
			assert.Error(t, err, "rerun of a queued job")

			limits, _, err := gh.RateLimit.Get(ctx)
			check("rate limit", err)
			assert.Equal(t, 15000, limits.GetCore().Limit)

			inst, _, err := gh.Apps.FindRepositoryInstallation(ctx, "octo", "app")
			check("repo installation", err)
			assert.Equal(t, int64(InstallationID), inst.GetID())
			insts, _, err := gh.Apps.ListInstallations(ctx, nil)
			check("installations", err)
			require.Len(t, insts, 1)
			tok, _, err := gh.Apps.CreateInstallationToken(ctx, InstallationID, nil)
			// go-github sends the client's own token here; the simulator
			// wants a JWT, as GitHub does.
			assert.Error(t, err, "an installation token needs an app JWT")
			assert.Nil(t, tok)
		})
	}
}

// TestRunsOfSeveralJobs: POST /_sim/runs starts a run of several jobs; a
// sequential run queues each job only when the one before it succeeded,
// and the run's status is GitHub's: queued, then in_progress while any
// job is left, then completed.
func TestRunsOfSeveralJobs(t *testing.T) {
	e := newSimEnv(t)
	gh := e.clients()["dotcom"]
	ctx := context.Background()
	resp, err := http.Post(e.srv.URL+"/_sim/runs", "application/json", strings.NewReader(`{"repo":"octo/app","sequential":true,
		"jobs":[{"name":"build","labels":["self-hosted"],"durationMs":10},{"name":"test","labels":["self-hosted"],"durationMs":10}]}`))
	require.NoError(t, err)
	var created struct {
		RunID int64   `json:"runId"`
		IDs   []int64 `json:"ids"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&created))
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.Len(t, created.IDs, 2)
	status := func() string {
		run, _, err := gh.Actions.GetWorkflowRunByID(ctx, "octo", "app", created.RunID)
		require.NoError(t, err)
		return run.GetStatus()
	}
	assert.Equal(t, "queued", status())
	jobs := e.sim.Jobs("octo/app")
	require.Len(t, jobs, 1, "the second job waits for the first")
	assert.Equal(t, created.RunID, jobs[0].RunID)

	jit, _, err := gh.Actions.GenerateRepoJITConfig(ctx, "octo", "app", &github.GenerateJITConfigRequest{
		Name: "r-1", RunnerGroupID: 1, Labels: []string{"self-hosted"}})
	require.NoError(t, err)
	require.NoError(t, RunRunner(ctx, RunnerConfig{JITConfig: jit.GetEncodedJITConfig()}))
	assert.Equal(t, "in_progress", status(), "one job done, one queued")
	runs, _, err := gh.Actions.ListRepositoryWorkflowRuns(ctx, "octo", "app", &github.ListWorkflowRunsOptions{Status: "queued"})
	require.NoError(t, err)
	assert.Zero(t, runs.GetTotalCount(), "a run with a job done is not queued")
	jobs = e.sim.Jobs("octo/app")
	require.Len(t, jobs, 2)
	assert.Equal(t, StatusQueued, jobs[1].Status)
	e.eventually("the second job's queued webhook", func() bool { return len(e.recv.actions(created.IDs[1])) == 1 })

	jit, _, err = gh.Actions.GenerateRepoJITConfig(ctx, "octo", "app", &github.GenerateJITConfigRequest{
		Name: "r-2", RunnerGroupID: 1, Labels: []string{"self-hosted"}})
	require.NoError(t, err)
	require.NoError(t, RunRunner(ctx, RunnerConfig{JITConfig: jit.GetEncodedJITConfig()}))
	assert.Equal(t, "completed", status())

	resp, err = http.Post(e.srv.URL+"/_sim/runs", "application/json", strings.NewReader(`{"repo":"octo/app","jobs":[]}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

// TestHookDeliveriesAPI: GitHub's hook deliveries routes, through
// go-github: a repository hook's failed attempts are listed newest first
// with cursor pagination and the event's GUID (shared with the app's
// delivery of the same event), shown with their request, and redelivered
// on request (202), which adds an attempt flagged as a redelivery. The
// app's hook deliveries need the app's JWT.
func TestHookDeliveriesAPI(t *testing.T) {
	e := newSimEnv(t)
	ctx := context.Background()
	var failing atomic.Bool
	failing.Store(true)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(down.Close)
	gh := e.clients()["ghes"]
	hook, _, err := gh.Repositories.CreateHook(ctx, "octo", "app", &github.Hook{Events: []string{"workflow_job"},
		Config: &github.HookConfig{URL: github.String(down.URL), ContentType: github.String("json")}})
	require.NoError(t, err)
	ids := e.sim.Enqueue("octo", "app", nil, 0, 3, "x")
	e.eventually("delivered", func() bool { return len(e.sim.Deliveries()) == 7 }) // a ping, and 3 events to 2 hooks

	var all []*github.HookDelivery
	opts := &github.ListCursorOptions{PerPage: 2}
	for {
		page, resp, err := gh.Repositories.ListHookDeliveries(ctx, "octo", "app", hook.GetID(), opts)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), 2)
		all = append(all, page...)
		if resp.Cursor == "" {
			break
		}
		opts.Cursor = resp.Cursor
	}
	require.Len(t, all, 4, "the ping and three queued events")
	newest := all[0]
	assert.Equal(t, "workflow_job", newest.GetEvent())
	assert.Equal(t, "queued", newest.GetAction())
	assert.Equal(t, http.StatusServiceUnavailable, newest.GetStatusCode())
	assert.Equal(t, "Invalid HTTP Response: 503", newest.GetStatus())
	assert.False(t, newest.GetRedelivery())
	assert.Greater(t, newest.GetID(), all[1].GetID(), "newest first")
	var appGUID string
	for _, d := range e.sim.Deliveries() {
		if d.JobID == ids[2] && d.HookID == 1 {
			appGUID = d.ID
		}
	}
	assert.Equal(t, appGUID, newest.GetGUID(), "one GUID per event, for every hook")

	one, _, err := gh.Repositories.GetHookDelivery(ctx, "octo", "app", hook.GetID(), newest.GetID())
	require.NoError(t, err)
	assert.Contains(t, string(*one.Request.RawPayload), `"workflow_job"`)

	failing.Store(false)
	_, _, err = gh.Repositories.RedeliverHookDelivery(ctx, "octo", "app", hook.GetID(), newest.GetID())
	var accepted *github.AcceptedError
	require.ErrorAs(t, err, &accepted, "202 Accepted")
	e.eventually("redelivered", func() bool {
		list, _, err := gh.Repositories.ListHookDeliveries(ctx, "octo", "app", hook.GetID(), nil)
		return err == nil && len(list) == 5 && list[0].GetRedelivery() && list[0].GetStatusCode() == http.StatusAccepted &&
			list[0].GetGUID() == newest.GetGUID()
	})
	_, _, err = gh.Repositories.ListHookDeliveries(ctx, "octo", "app", 999, nil)
	assert.Error(t, err, "an unknown hook is 404")

	_, _, err = gh.Apps.ListHookDeliveries(ctx, nil)
	assert.Error(t, err, "the app's deliveries need its JWT")
	app := github.NewClient(nil).WithAuthToken("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOjF9.c2ln")
	app.BaseURL = mustURL(e.srv.URL + "/")
	appList, _, err := app.Apps.ListHookDeliveries(ctx, &github.ListCursorOptions{PerPage: 100})
	require.NoError(t, err)
	assert.Len(t, appList, 3, "the app's hook got the three events")
}

func TestWebhooksAreDeliveredSeveralAtOnce(t *testing.T) {
	const concurrency = 4
	var mu sync.Mutex
	inFlight, most := 0, 0
	release := make(chan struct{})
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		<-release
		mu.Lock()
		inFlight--
		mu.Unlock()
	}))
	t.Cleanup(hooks.Close)
	sim := New(Options{WebhookURL: hooks.URL, WebhookSecret: hookSecret, Seed: 7, WebhookConcurrency: concurrency})
	t.Cleanup(sim.Close)
	t.Cleanup(func() { close(release) })
	sim.Enqueue("octo", "app", nil, 0, 10, "x")
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := most
		mu.Unlock()
		if n == concurrency {
			break
		}
		require.True(t, time.Now().Before(deadline), "only %d deliveries in flight at once", n)
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, concurrency, most, "never more than the concurrency")
}

func TestStatsCountEveryRoute(t *testing.T) {
	e := newSimEnv(t)
	for _, path := range []string{"/repos/octo/app/actions/runners", "/api/v3/repos/octo/app/actions/runners", "/no/such/route"} {
		req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "token ghs_x")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
	}
	resp, err := http.Post(e.srv.URL+"/actions/runner-registration", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	resp, err = http.Get(e.srv.URL + "/repos/octo/app/actions/runners") // unauthenticated
	require.NoError(t, err)
	resp.Body.Close()
	resp, err = http.Get(e.srv.URL + "/_sim/jobs")
	require.NoError(t, err)
	resp.Body.Close()

	got := e.sim.Stats().Requests
	assert.Equal(t, 2, got["GET /repos/{owner}/{repo}/actions/runners 200"], "GHES's /api/v3 counts as the same route")
	assert.Equal(t, 1, got["GET /repos/{owner}/{repo}/actions/runners 401"], "a request refused before routing")
	assert.Equal(t, 1, got["POST /actions/runner-registration 404"], "the host-root route")
	assert.Equal(t, 1, got["GET unknown 404"])
	assert.Equal(t, 1, got["GET /_sim/jobs 200"], "the control API")
}
