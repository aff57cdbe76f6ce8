package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/workflows"
)

// memPools is an in-memory Pools backend that records what it was asked.
type memPools struct {
	mu     sync.Mutex
	pools  map[string]workflows.PoolView
	last   workflows.ConfigureRequest
	drains []string
}

func (m *memPools) Configure(_ context.Context, owner, repo string, req workflows.ConfigureRequest) (workflows.PoolView, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last = req
	v := workflows.PoolView{Repository: owner + "/" + repo, Config: req.Config, ConfiguredBy: req.Actor,
		Runners: []workflows.RunnerView{}, Queue: []workflows.QueuedJob{{JobID: 9, Labels: []string{"self-hosted"}}}}
	m.pools[workflows.RepositoryWorkflowID(owner, repo)] = v
	return v, nil
}

func (m *memPools) Get(_ context.Context, owner, repo string) (workflows.PoolView, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.pools[workflows.RepositoryWorkflowID(owner, repo)]
	if !ok {
		return v, ErrNotFound
	}
	return v, nil
}

func (m *memPools) Drain(_ context.Context, owner, repo string, _ workflows.DrainRequest) (workflows.PoolView, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.pools[workflows.RepositoryWorkflowID(owner, repo)]
	if !ok {
		return v, ErrNotFound
	}
	v.Draining = true
	m.drains = append(m.drains, owner+"/"+repo)
	return v, nil
}

func (m *memPools) List(_ context.Context, _ int, _, agent string) ([]workflows.PoolView, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []workflows.PoolView
	for _, v := range m.pools {
		if agent == "" || v.Config.Agent == agent {
			out = append(out, v)
		}
	}
	return out, "", nil
}

func newPoolAPIEnv(t *testing.T) (*apiEnv, *memPools) {
	e := newAPIEnv(t)
	e.agents.agents["local"] = workflows.AgentState{Name: "local", Status: workflows.AgentOnline,
		Capabilities: workflows.AgentCapabilities{Providers: []string{"process"}}}
	e.agents.agents["gpu-1"] = workflows.AgentState{Name: "gpu-1", Status: workflows.AgentOnline,
		Capabilities: workflows.AgentCapabilities{Providers: []string{"ec2"}}}
	return e, e.pools
}

func TestPutRepositoryAppliesDefaultsAndRecordsTheCaller(t *testing.T) {
	e, pools := newPoolAPIEnv(t)
	resp, body := e.do("PUT", "/api/v1/repositories/Octo/App", adminToken, "application/json", `{"minIdle":1}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	c := pools.last.Config
	assert.Equal(t, "local", c.Agent)
	assert.Equal(t, []string{"self-hosted", "linux"}, c.Labels)
	assert.Equal(t, 1, c.MinIdle)
	assert.Equal(t, 3, c.MaxRunners)
	assert.True(t, c.Ephemeral)
	assert.Equal(t, "process", c.Provider.Kind())
	assert.Equal(t, "admin", pools.last.Actor, "the caller goes into the workflow's history")
	var v workflows.PoolView
	require.NoError(t, json.Unmarshal(body, &v))
	assert.Equal(t, "Octo/App", v.Repository)
	assert.Contains(t, string(body), `"idleGracePeriod":"2m0s"`)

	resp, body = e.do("GET", "/api/v1/repositories/octo/app/jobs", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.JSONEq(t, `{"jobs":[{"jobId":9,"labels":["self-hosted"],"queuedAt":"0001-01-01T00:00:00Z"}]}`, string(body))
	resp, body = e.do("GET", "/api/v1/repositories/octo/app/runners", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"runners":[]}`, string(body))
	resp, _ = e.do("GET", "/api/v1/repositories", adminToken, "", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	resp, body = e.do("DELETE", "/api/v1/repositories/octo/app", adminToken, "", "")
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", body)
	assert.Contains(t, string(body), `"draining":true`)
	assert.Equal(t, []string{"octo/app"}, pools.drains)
}

func TestPutRepositoryRejectsBadConfigs(t *testing.T) {
	e, pools := newPoolAPIEnv(t)
	cases := []struct {
		name, path, body string
		status           int
		detail           string
	}{
		{"minIdle above maxRunners", "octo/app", `{"minIdle":4,"maxRunners":3}`, 422, "minIdle"},
		{"too many runners", "octo/app", `{"maxRunners":1001}`, 422, "1000"},
		{"bad duration", "octo/app", `{"idleGracePeriod":"soon"}`, 400, "duration"},
		{"grace out of range", "octo/app", `{"idleGracePeriod":"48h"}`, 422, "idleGracePeriod"},
		{"empty labels", "octo/app", `{"labels":[]}`, 422, "labels"},
		{"unknown agent", "octo/app", `{"agent":"nobody"}`, 422, "not registered"},
		{"provider not offered", "octo/app", `{"agent":"gpu-1"}`, 422, "does not offer provider"},
		{"unknown field", "octo/app", `{"minIdel":1}`, 400, "unknown field"},
		{"bad repository", "octo/a%20b", `{}`, 400, "invalid repository"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := e.do("PUT", "/api/v1/repositories/"+c.path, adminToken, "application/json", c.body)
			p := problem(t, resp, body, c.status, ProblemInvalidRequest)
			assert.True(t, strings.Contains(p.Detail, c.detail), "detail %q lacks %q", p.Detail, c.detail)
		})
	}
	assert.Empty(t, pools.pools, "a rejected configuration changes nothing")
	resp, body := e.do("GET", "/api/v1/repositories/octo/app", adminToken, "", "")
	problem(t, resp, body, http.StatusNotFound, ProblemNotFound)
	resp, body = e.do("DELETE", "/api/v1/repositories/octo/app", adminToken, "", "")
	problem(t, resp, body, http.StatusNotFound, ProblemNotFound)
}

func TestAgentConfigAnswersNotModifiedWhileNothingChanged(t *testing.T) {
	e, _ := newPoolAPIEnv(t)
	token := e.issue("/api/v1/agents", `{"name":"lab-9"}`)
	e.agents.agents["lab-9"] = workflows.AgentState{Name: "lab-9", Capabilities: workflows.AgentCapabilities{Providers: []string{"process"}}}
	for _, repo := range []string{"octo/b", "octo/a"} {
		resp, body := e.do("PUT", "/api/v1/repositories/"+repo, adminToken, "application/json", `{"agent":"lab-9"}`)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	}
	resp, body := e.do("PUT", "/api/v1/repositories/other/c", adminToken, "application/json", `{}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)

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
	resp, body = get("")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	etag := resp.Header.Get("ETag")
	require.NotEmpty(t, etag)
	var cfg AgentConfig
	require.NoError(t, json.Unmarshal(body, &cfg))
	require.Len(t, cfg.Repositories, 2, "only the agent's own repositories")
	assert.Equal(t, "octo/a", cfg.Repositories[0].Repository, "in a stable order")

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
	assert.Len(t, list.Repositories, 2)
	resp, b = e.do("GET", "/api/v1/agents?state=lost", adminToken, "", "")
	problem(t, resp, b, http.StatusBadRequest, ProblemInvalidRequest)
}
