package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/activities/provider"
	"github.com/garo-run/garo/activities/provider/process"
	"github.com/garo-run/garo/workflows"
)

// memRepositories is an in-memory Repositories backend that records what
// it was asked. Draining a pool removes it at once.
type memRepositories struct {
	mu    sync.Mutex
	repos map[string]*workflows.RepositoryView
	// usage is each repository's usage, by "owner/repo"; usageReads
	// counts the readings.
	usage      map[string][]workflows.LedgerUsage
	usageReads int
	last       workflows.ConfigureRequest
	drains     []workflows.DrainRequest
}

func (m *memRepositories) ConfigurePool(_ context.Context, owner, repo string, req workflows.ConfigureRequest) (workflows.PoolView, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last = req
	id := workflows.RepositoryWorkflowID(owner, repo)
	r := m.repos[id]
	if r == nil {
		r = &workflows.RepositoryView{Repository: owner + "/" + repo}
		m.repos[id] = r
	}
	cfg := req.Config
	if len(req.Patch) > 0 { // as the workflow does: the patch on the pool as it is
		base := workflows.DefaultPoolConfig()
		if p, ok := r.Pool(req.PoolName()); ok {
			base = p.Config
		}
		var err error
		if cfg, err = workflows.PatchPoolConfig(base, req.Patch); err != nil {
			return workflows.PoolView{}, &RejectedError{Type: workflows.ErrTypeInvalidRequest, Message: err.Error()}
		}
	}
	v := workflows.PoolView{Repository: r.Repository, Pool: req.PoolName(), Config: cfg, ConfiguredBy: req.Actor,
		Runners: []workflows.RunnerView{}, Queue: []workflows.QueuedJob{}}
	for i, p := range r.Pools {
		if p.Pool == v.Pool {
			v.Runners, v.Queue = p.Runners, p.Queue
			r.Pools[i] = v
			return v, nil
		}
	}
	r.Pools = append(r.Pools, v)
	return v, nil
}

func (m *memRepositories) Get(_ context.Context, owner, repo string) (workflows.RepositoryView, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.repos[workflows.RepositoryWorkflowID(owner, repo)]
	if !ok {
		return workflows.RepositoryView{}, ErrNotFound
	}
	return *r, nil
}

func (m *memRepositories) DrainPool(_ context.Context, owner, repo string, req workflows.DrainRequest) (workflows.RepositoryView, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.repos[workflows.RepositoryWorkflowID(owner, repo)]
	if !ok {
		return workflows.RepositoryView{}, ErrNotFound
	}
	for i, p := range r.Pools {
		if p.Pool == req.PoolName() {
			m.drains = append(m.drains, req)
			r.Pools[i].Draining = true
			v := *r
			v.Pools = append([]workflows.PoolView(nil), r.Pools...)
			r.Pools = append(r.Pools[:i:i], r.Pools[i+1:]...)
			return v, nil
		}
	}
	return workflows.RepositoryView{}, &RejectedError{Type: workflows.ErrTypeNotFound, Message: "no pool " + req.PoolName()}
}

func (m *memRepositories) List(_ context.Context, limit int, cursor, agent string) ([]workflows.RepositoryView, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := slices.Sorted(maps.Keys(m.repos))
	var out []workflows.RepositoryView
	for _, id := range ids {
		r := m.repos[id]
		if id <= cursor || !slices.ContainsFunc(r.Pools, func(p workflows.PoolView) bool { return agent == "" || p.Config.Agent == agent }) {
			continue
		}
		if len(out) == limit {
			return out, cursor, nil
		}
		// As the memo has it: no runners, queues or unmatched jobs.
		v := *r
		v.Pools, v.Unmatched = nil, nil
		for _, p := range r.Pools {
			p.Runners, p.Queue = nil, nil
			v.Pools = append(v.Pools, p)
		}
		out = append(out, v)
		cursor = id
	}
	return out, "", nil
}

func (m *memRepositories) Usage(_ context.Context, owner, repo string, req workflows.UsageRequest) (workflows.RepositoryUsage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.usageReads++
	if _, ok := m.repos[workflows.RepositoryWorkflowID(owner, repo)]; !ok {
		return workflows.RepositoryUsage{}, ErrNotFound
	}
	u := workflows.RepositoryUsage{Repository: owner + "/" + repo, Window: req.Window, To: req.Now,
		Pools: append([]workflows.LedgerUsage{}, m.usage[owner+"/"+repo]...)}
	return u, nil
}

// set puts a repository's live state in place.
func (m *memRepositories) set(v workflows.RepositoryView) {
	m.mu.Lock()
	defer m.mu.Unlock()
	owner, repo, _ := strings.Cut(v.Repository, "/")
	m.repos[workflows.RepositoryWorkflowID(owner, repo)] = &v
}

func newPoolAPIEnv(t testing.TB) (*apiEnv, *memRepositories) {
	e := newAPIEnv(t)
	e.agents.agents["local"] = workflows.AgentState{Name: "local", Status: workflows.AgentOnline,
		Capabilities: processCapabilities()}
	e.agents.agents["gpu-1"] = workflows.AgentState{Name: "gpu-1", Status: workflows.AgentOnline,
		Capabilities: workflows.AgentCapabilities{Providers: []string{"ec2"}}}
	e.agents.agents["going"] = workflows.AgentState{Name: "going", Status: workflows.AgentUnregistering,
		Capabilities: workflows.AgentCapabilities{Providers: []string{"process"}}}
	return e, e.repos
}

// processCapabilities are those of an agent with the process provider.
func processCapabilities() workflows.AgentCapabilities {
	var p *process.Provider
	return workflows.AgentCapabilities{Providers: []string{process.Kind},
		ProviderOptions: map[string][]provider.Option{process.Kind: p.Options()}}
}

func TestPutRepositoryIsTheDefaultPoolWithDefaultsAndTheCaller(t *testing.T) {
	e, repos := newPoolAPIEnv(t)
	resp, body := e.do("PUT", "/api/v1/repositories/Octo/App", adminToken, "application/json", `{"minIdle":1}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	c := repos.last.Config
	assert.Equal(t, workflows.DefaultPool, repos.last.PoolName(), "the route without a pool is the default pool")
	assert.Equal(t, "local", c.Agent)
	assert.Equal(t, []string{"self-hosted", "linux"}, c.Labels)
	assert.Equal(t, 1, c.MinIdle)
	assert.Equal(t, 3, c.MaxRunners)
	assert.True(t, c.Ephemeral)
	assert.Equal(t, "process", c.Provider.Kind())
	assert.Equal(t, "admin", repos.last.Actor, "the caller goes into the workflow's history")
	var v workflows.PoolView
	require.NoError(t, json.Unmarshal(body, &v))
	assert.Equal(t, "Octo/App", v.Repository)
	assert.Equal(t, "default", v.Pool)
	assert.Contains(t, string(body), `"idleGracePeriod":"2m0s"`)

	// The same pool, by either route.
	_, byRepo := e.do("GET", "/api/v1/repositories/octo/app", adminToken, "", "")
	resp, byPool := e.do("GET", "/api/v1/repositories/octo/app/pools/default", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", byPool)
	assert.JSONEq(t, string(byRepo), string(byPool))

	resp, body = e.do("DELETE", "/api/v1/repositories/octo/app", adminToken, "", "")
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", body)
	assert.Contains(t, string(body), `"draining":true`)
	require.Len(t, repos.drains, 1)
	assert.Equal(t, workflows.DefaultPool, repos.drains[0].PoolName())
}

func TestSeveralPoolsOfOneRepository(t *testing.T) {
	e, repos := newPoolAPIEnv(t)
	for pool, body := range map[string]string{
		"linux": `{"labels":["self-hosted","linux"]}`,
		"gpu":   `{"labels":["self-hosted","gpu"],"maxRunners":1}`,
	} {
		resp, b := e.do("PUT", "/api/v1/repositories/octo/app/pools/"+pool, adminToken, "application/json", body)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
		assert.Equal(t, pool, repos.last.Pool)
	}
	resp, body := e.do("GET", "/api/v1/repositories/octo/app/pools", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var list struct {
		Pools []workflows.PoolView `json:"pools"`
	}
	require.NoError(t, json.Unmarshal(body, &list))
	assert.Len(t, list.Pools, 2)
	resp, body = e.do("GET", "/api/v1/repositories/octo/app/pools/gpu", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Contains(t, string(body), `"maxRunners":1`)
	resp, body = e.do("GET", "/api/v1/repositories/octo/app", adminToken, "", "")
	p := problem(t, resp, body, http.StatusNotFound, ProblemNotFound)
	assert.Contains(t, p.Detail, "no pool default", "this repository has no default pool")
	resp, body = e.do("GET", "/api/v1/repositories/octo/app/pools/arm", adminToken, "", "")
	problem(t, resp, body, http.StatusNotFound, ProblemNotFound)

	resp, body = e.do("GET", "/api/v1/repositories", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var all PoolList
	require.NoError(t, json.Unmarshal(body, &all))
	assert.Len(t, all.Repositories, 2, "the list has one entry per pool")

	resp, body = e.do("DELETE", "/api/v1/repositories/octo/app/pools/gpu", adminToken, "", "")
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", body)
	assert.Contains(t, string(body), `"pool":"gpu"`)
	resp, body = e.do("DELETE", "/api/v1/repositories/octo/app/pools/gpu", adminToken, "", "")
	problem(t, resp, body, http.StatusNotFound, ProblemNotFound)
}

func TestRunnersJobsAndUnmatchedOfEveryPool(t *testing.T) {
	e, repos := newPoolAPIEnv(t)
	at := e.clock.Add(-90 * time.Second)
	repos.set(workflows.RepositoryView{Repository: "octo/app", UnmatchedTotal: 3, Pools: []workflows.PoolView{
		{Pool: "gpu", Runners: []workflows.RunnerView{{Name: "garo-1-gpu-2", State: workflows.RunnerIdle}},
			Queue: []workflows.QueuedJob{{JobID: 8, Labels: []string{"gpu"}, QueuedAt: at.Add(time.Second)}}},
		{Pool: "linux", Runners: []workflows.RunnerView{{Name: "garo-1-linux-1", State: workflows.RunnerBusy, JobID: 5}},
			Queue: []workflows.QueuedJob{{JobID: 7, Labels: []string{"linux"}, QueuedAt: at}}},
	}, Unmatched: []workflows.QueuedJob{{JobID: 9, Name: "build", Labels: []string{"self-hosted", "arm64"}, QueuedAt: at}}})
	resp, body := e.do("GET", "/api/v1/repositories/octo/app/runners", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Contains(t, string(body), `"name":"garo-1-gpu-2","pool":"gpu"`)
	assert.Contains(t, string(body), `"name":"garo-1-linux-1","pool":"linux"`)
	resp, body = e.do("GET", "/api/v1/repositories/octo/app/jobs", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var jobs struct {
		Jobs []workflows.QueuedJob `json:"jobs"`
	}
	require.NoError(t, json.Unmarshal(body, &jobs))
	require.Len(t, jobs.Jobs, 2)
	assert.Equal(t, int64(7), jobs.Jobs[0].JobID, "oldest first, whatever its pool")
	assert.Equal(t, "linux", jobs.Jobs[0].Pool)
	resp, body = e.do("GET", "/api/v1/repositories/octo/app/unmatched", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.JSONEq(t, `{"jobs":[{"jobId":9,"name":"build","labels":["self-hosted","arm64"],
		"queuedAt":"`+at.UTC().Format(time.RFC3339)+`","age":"1m30s"}],"total":3}`, string(body))
	resp, body = e.do("GET", "/api/v1/repositories/octo/none/unmatched", adminToken, "", "")
	problem(t, resp, body, http.StatusNotFound, ProblemNotFound)
}

func TestPutPoolRejectsBadConfigs(t *testing.T) {
	e, repos := newPoolAPIEnv(t)
	cases := []struct {
		name, path, body string
		status           int
		typ, detail      string
	}{
		{"minIdle above maxRunners", "octo/app", `{"minIdle":4,"maxRunners":3}`, 422, ProblemInvalidRequest, "minIdle"},
		{"too many runners", "octo/app", `{"maxRunners":5001}`, 422, ProblemInvalidRequest, "5000"},
		{"bad duration", "octo/app", `{"idleGracePeriod":"soon"}`, 400, ProblemInvalidRequest, "duration"},
		{"grace out of range", "octo/app", `{"idleGracePeriod":"48h"}`, 422, ProblemInvalidRequest, "idleGracePeriod"},
		{"empty labels", "octo/app", `{"labels":[]}`, 422, ProblemInvalidRequest, "labels"},
		{"label with a newline", "octo/app", `{"labels":["self-hosted","linux\ninjected"]}`, 422, ProblemInvalidRequest, "printable"},
		{"provider option name", "octo/app", `{"provider":{"kind":"process","../x":"y"}}`, 422, ProblemInvalidRequest, "provider option"},
		{"provider option value", "octo/app", `{"provider":{"kind":"process","env.A":"a\nb"}}`, 422, ProblemInvalidRequest, "printable"},
		{"unknown provider option", "octo/app", `{"provider":{"kind":"process","image":"x"}}`, 422, ProblemInvalidRequest, `takes no option "image" (it takes: env.NAME)`},
		{"provider option key", "octo/app", `{"provider":{"kind":"process","env.1X":"y"}}`, 422, ProblemInvalidRequest, `"1X" after "env." must match`},
		{"label with a control character", "octo/app", `{"labels":["self-hosted","a\u0007b"]}`, 422, ProblemInvalidRequest, "printable"},
		{"unknown agent", "octo/app", `{"agent":"nobody"}`, 422, ProblemInvalidRequest, "not registered"},
		{"provider not offered", "octo/app", `{"agent":"gpu-1"}`, 422, ProblemInvalidRequest, "does not offer provider"},
		{"agent unregistering", "octo/app", `{"agent":"going"}`, 409, ProblemConflict, "being unregistered"},
		{"unknown field", "octo/app", `{"minIdel":1}`, 400, ProblemInvalidRequest, "unknown field"},
		{"null body", "octo/app", `null`, 400, ProblemInvalidRequest, "want an object"},
		{"array body", "octo/app", `[{"minIdle":1}]`, 400, ProblemInvalidRequest, "want an object"},
		{"bad repository", "octo/a%20b", `{}`, 400, ProblemInvalidRequest, "invalid repository"},
		{"dot segment owner", "../one", `{}`, 400, ProblemInvalidRequest, "invalid repository"},
		{"leading hyphen", "-probe/one", `{}`, 400, ProblemInvalidRequest, "invalid repository"},
		{".git suffix", "probe/one.git", `{}`, 400, ProblemInvalidRequest, "invalid repository"},
		{"double hyphen", "pro--be/one", `{}`, 400, ProblemInvalidRequest, "invalid repository"},
		{"bad pool name", "octo/app/pools/GPU", `{}`, 400, ProblemInvalidRequest, "invalid pool name"},
		{"long pool name", "octo/app/pools/" + strings.Repeat("a", 33), `{}`, 400, ProblemInvalidRequest, "invalid pool name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := e.do("PUT", "/api/v1/repositories/"+c.path, adminToken, "application/json", c.body)
			p := problem(t, resp, body, c.status, c.typ)
			assert.True(t, strings.Contains(p.Detail, c.detail), "detail %q lacks %q", p.Detail, c.detail)
		})
	}
	assert.Empty(t, repos.repos, "a rejected configuration changes nothing")
	resp, body := e.do("GET", "/api/v1/repositories/octo/app", adminToken, "", "")
	problem(t, resp, body, http.StatusNotFound, ProblemNotFound)
	resp, body = e.do("DELETE", "/api/v1/repositories/octo/app", adminToken, "", "")
	problem(t, resp, body, http.StatusNotFound, ProblemNotFound)
}

func TestAgentConfigAnswersNotModifiedWhileNothingChanged(t *testing.T) {
	e, _ := newPoolAPIEnv(t)
	token := e.issue("/api/v1/agents", `{"name":"lab-9"}`)
	e.agents.agents["lab-9"] = workflows.AgentState{Name: "lab-9", Capabilities: workflows.AgentCapabilities{Providers: []string{"process"}}}
	for _, path := range []string{"octo/b", "octo/a", "octo/a/pools/gpu"} {
		resp, body := e.do("PUT", "/api/v1/repositories/"+path, adminToken, "application/json", `{"agent":"lab-9"}`)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	}
	for _, path := range []string{"other/c", "octo/a/pools/arm"} {
		resp, body := e.do("PUT", "/api/v1/repositories/"+path, adminToken, "application/json", `{}`)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	}

	get := func(etag string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/agents/lab-9/config", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := e.client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, body := get("")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	etag := resp.Header.Get("ETag")
	require.NotEmpty(t, etag)
	var cfg AgentConfig
	require.NoError(t, json.Unmarshal(body, &cfg))
	require.Len(t, cfg.Repositories, 3, "only the agent's own pools")
	for i, want := range []string{"octo/a/default", "octo/a/gpu", "octo/b/default"} {
		assert.Equal(t, want, cfg.Repositories[i].Repository+"/"+cfg.Repositories[i].Pool, "in a stable order")
	}

	resp, body = get(etag)
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)
	assert.Empty(t, body)

	resp, _ = e.do("PUT", "/api/v1/repositories/octo/a", adminToken, "application/json", `{"agent":"lab-9","maxRunners":9}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = get(etag)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a change changes the ETag")
	assert.NotEqual(t, etag, resp.Header.Get("ETag"))

	resp, b := e.do("GET", "/api/v1/repositories?agent=Bad_Name", adminToken, "", "")
	problem(t, resp, b, http.StatusBadRequest, ProblemInvalidRequest)
	resp, b = e.do("GET", "/api/v1/repositories?agent=lab-9", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var list PoolList
	require.NoError(t, json.Unmarshal(b, &list))
	assert.Len(t, list.Repositories, 3, "the agent's pools, not the other pools of their repositories")
	resp, b = e.do("GET", "/api/v1/agents?state=lost", adminToken, "", "")
	problem(t, resp, b, http.StatusBadRequest, ProblemInvalidRequest)
}

// TestPatchPoolRejectsWhatIsNotAFieldPatch: a PATCH must be an object of
// known fields, and a rejected one changes nothing.
func TestPatchPoolRejectsWhatIsNotAFieldPatch(t *testing.T) {
	e, repos := newPoolAPIEnv(t)
	for _, body := range []string{`null`, `[]`, `"minIdle"`, ``, `{"minIdel":1}`} {
		resp, out := e.do("PATCH", "/api/v1/repositories/octo/app", adminToken, "application/merge-patch+json", body)
		problem(t, resp, out, http.StatusBadRequest, ProblemInvalidRequest)
	}
	assert.Empty(t, repos.repos, "a rejected patch changes nothing")
}

// TestAgentNeverGetsAPoolWithoutItsConfig: a pool whose published config
// is not whole (only its agent) is not sent to the agent.
func TestAgentNeverGetsAPoolWithoutItsConfig(t *testing.T) {
	e, repos := newPoolAPIEnv(t)
	whole := workflows.DefaultPoolConfig()
	repos.set(workflows.RepositoryView{Repository: "octo/a", Pools: []workflows.PoolView{
		{Pool: "half", Config: workflows.PoolConfig{Agent: "local"}},
		{Pool: "whole", Config: whole},
	}})
	resp, body := e.do("GET", "/api/v1/agents/local/config", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var cfg AgentConfig
	require.NoError(t, json.Unmarshal(body, &cfg))
	require.Len(t, cfg.Repositories, 1, "%s", body)
	assert.Equal(t, "whole", cfg.Repositories[0].Pool)
	assert.Equal(t, "process", cfg.Repositories[0].Config.Provider.Kind())
}

// TestAgentConfigReadsEveryPage: an agent with more pools than one page of
// the visibility store gets them all.
func TestAgentConfigReadsEveryPage(t *testing.T) {
	e, repos := newPoolAPIEnv(t)
	const n = configPageSize + 5
	local, other := workflows.DefaultPoolConfig(), workflows.DefaultPoolConfig()
	other.Agent = "gpu-1"
	for i := range n {
		repos.set(workflows.RepositoryView{Repository: fmt.Sprintf("octo/r%04d", i), Pools: []workflows.PoolView{
			{Pool: "default", Config: local}, {Pool: "other", Config: other}}})
	}
	resp, body := e.do("GET", "/api/v1/agents/local/config", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var cfg AgentConfig
	require.NoError(t, json.Unmarshal(body, &cfg))
	assert.Len(t, cfg.Repositories, n)
}
