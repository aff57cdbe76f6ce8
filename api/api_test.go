package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/garo-run/garo/workflows"
)

const adminToken = "s3cret-admin-token"

// memAgents is an in-memory Agents backend that records what the API asked.
type memAgents struct {
	mu       sync.Mutex
	agents   map[string]workflows.AgentState
	lastReg  workflows.RegisterRequest
	lastUnrg workflows.UnregisterRequest
	failWith error
}

func (m *memAgents) Register(_ context.Context, name string, req workflows.RegisterRequest) (workflows.AgentState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failWith != nil {
		return workflows.AgentState{}, m.failWith
	}
	m.lastReg = req
	st := workflows.AgentState{Name: name, Status: workflows.AgentOnline, TaskQueue: workflows.AgentTaskQueue(name),
		Capabilities: req.Capabilities, HeartbeatInterval: req.HeartbeatInterval, OfflineAfter: req.OfflineAfter}
	m.agents[name] = st
	return st, nil
}

func (m *memAgents) Heartbeat(_ context.Context, name string, req workflows.HeartbeatRequest) (workflows.AgentState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.agents[name]
	if !ok {
		return st, &RejectedError{Type: workflows.ErrTypeNotRegistered, Message: "agent is not registered"}
	}
	if req.Stopping {
		st.Status = workflows.AgentOffline
	}
	m.agents[name] = st
	return st, nil
}

func (m *memAgents) Unregister(_ context.Context, name string, req workflows.UnregisterRequest) (workflows.AgentState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.agents[name]
	if !ok {
		return st, ErrNotFound
	}
	m.lastUnrg = req
	st.Status = workflows.AgentUnregistering
	m.agents[name] = st
	return st, nil
}

// unregistered ends an unregistering agent, as its workflow does once its
// pools have drained.
func (m *memAgents) unregistered(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.agents, name)
}

func (m *memAgents) Get(_ context.Context, name string) (workflows.AgentState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failWith != nil {
		return workflows.AgentState{}, m.failWith
	}
	st, ok := m.agents[name]
	if !ok {
		return st, ErrNotFound
	}
	return st, nil
}

func (m *memAgents) List(_ context.Context, limit int, cursor string) ([]workflows.AgentState, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for n := range m.agents {
		if n > cursor {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var out []workflows.AgentState
	next := ""
	for i, n := range names {
		if i == limit {
			next = out[len(out)-1].Name
			break
		}
		out = append(out, m.agents[n])
	}
	return out, next, nil
}

// memTokens is an in-memory TokenStore over the agents of a memAgents.
type memTokens struct {
	mu     sync.Mutex
	recs   []workflows.TokenRecord
	agents *memAgents
	hashes map[string]string // agent name -> token hash
	calls  int
}

func (m *memTokens) ListTokens(context.Context) ([]workflows.TokenRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	return append([]workflows.TokenRecord(nil), m.recs...), nil
}

func (m *memTokens) CreateToken(_ context.Context, rec workflows.TokenRecord) (workflows.TokenRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, rec)
	return rec, nil
}

func (m *memTokens) RevokeToken(_ context.Context, id, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, r := range m.recs {
		if r.ID == id {
			m.recs = append(m.recs[:i], m.recs[i+1:]...)
			return nil
		}
	}
	return &RejectedError{Type: workflows.ErrTypeNotFound, Message: "no token " + id}
}

func (m *memTokens) AgentTokenHash(_ context.Context, name string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	h, ok := m.hashes[name]
	if !ok {
		return "", ErrNotFound
	}
	return h, nil
}

func (m *memTokens) CreateAgent(_ context.Context, name string, req workflows.CreateAgentRequest) (workflows.AgentState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.hashes[name]; ok {
		return workflows.AgentState{}, &RejectedError{Type: workflows.ErrTypeConflict, Message: "exists"}
	}
	m.hashes[name] = req.TokenHash
	st := workflows.AgentState{Name: name, Status: workflows.AgentOffline, TaskQueue: workflows.AgentTaskQueue(name)}
	m.agents.mu.Lock()
	m.agents.agents[name] = st
	m.agents.mu.Unlock()
	return st, nil
}

type apiEnv struct {
	t      testing.TB
	agents *memAgents
	repos  *memRepositories
	tokens *memTokens
	auth   *Tokens
	clock  time.Time
	srv    *httptest.Server
	client *http.Client
	ready  error
}

func newAPIEnv(t testing.TB) *apiEnv { return newAPIEnvWith(t, nil) }

// newAPIEnvWith is newAPIEnv with its router's Config changed by change.
func newAPIEnvWith(t testing.TB, change func(*Config)) *apiEnv {
	e := &apiEnv{t: t, agents: &memAgents{agents: map[string]workflows.AgentState{}},
		repos: &memRepositories{repos: map[string]*workflows.RepositoryView{}}, clock: time.Unix(1_800_000_000, 0)}
	e.tokens = &memTokens{agents: e.agents, hashes: map[string]string{}}
	e.auth = NewTokens(adminToken, e.tokens, 5*time.Second)
	e.auth.failBurst = 1 << 20 // these tests fail on purpose, from one address
	e.auth.now = func() time.Time { return e.clock }
	cfg := Config{
		Agents:            e.agents,
		Repositories:      e.repos,
		Now:               func() time.Time { return e.clock },
		Tokens:            e.auth,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready:             func(context.Context) error { return e.ready },
		HeartbeatInterval: 5 * time.Second,
		OfflineAfter:      20 * time.Second,
	}
	if change != nil {
		change(&cfg)
	}
	e.srv = httptest.NewServer(NewRouter(cfg))
	t.Cleanup(e.srv.Close)
	e.client = newSpecClient(t)
	return e
}

func (e *apiEnv) do(method, path, token, contentType, body string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	require.NoError(e.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.client.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp, b
}

// problem asserts that the answer is a problem of the given status and type.
func problem(t *testing.T, resp *http.Response, body []byte, status int, typ string) Problem {
	t.Helper()
	require.Equal(t, status, resp.StatusCode, "body: %s", body)
	assert.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	var p Problem
	require.NoError(t, json.Unmarshal(body, &p))
	assert.Equal(t, typ, p.Type)
	assert.Equal(t, status, p.Status)
	assert.NotEmpty(t, p.Title)
	return p
}

func TestEveryAPIRouteNeedsAToken(t *testing.T) {
	e := newAPIEnv(t)
	// Every route the router serves under /api/v1, and /metrics.
	var routes [][2]string
	params := strings.NewReplacer("{name}", "a1", "{owner}", "o", "{repo}", "r", "{pool}", "gpu", "{id}", "t1")
	require.NoError(t, chi.Walk(e.srv.Config.Handler.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if strings.HasPrefix(route, "/api/v1/") || route == "/metrics" {
			routes = append(routes, [2]string{method, params.Replace(route)})
		}
		return nil
	}))
	require.Greater(t, len(routes), 20)
	for _, r := range routes {
		for _, tok := range []string{"", "wrong-token", adminToken + "x"} {
			resp, body := e.do(r[0], r[1], tok, "", "")
			problem(t, resp, body, http.StatusUnauthorized, ProblemUnauthorized)
			assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
		}
	}
	assert.Empty(t, e.agents.agents, "no unauthenticated call reached the backend")
	assert.Empty(t, e.repos.repos)
	resp, _ := e.do("GET", "/healthz", "", "", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = e.do("GET", "/openapi.yaml", "", "", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestRegisterHeartbeatListUnregister(t *testing.T) {
	e := newAPIEnv(t)
	resp, body := e.do("POST", "/api/v1/agents/lab-1/register", adminToken, "application/json",
		`{"version":"v1","hostname":"h","providers":["process"],"labels":["linux"]}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var st workflows.AgentState
	require.NoError(t, json.Unmarshal(body, &st))
	assert.Equal(t, workflows.AgentOnline, st.Status)
	assert.Equal(t, "garo-agent-lab-1", st.TaskQueue)
	assert.Contains(t, string(body), `"heartbeatInterval":"5s"`, "durations are Go duration strings")
	assert.Equal(t, 20*time.Second, e.agents.lastReg.OfflineAfter.D(), "the server sets the liveness policy")
	assert.Equal(t, "admin", e.agents.lastReg.Actor, "the caller is recorded")

	resp, body = e.do("POST", "/api/v1/agents/lab-1/heartbeat", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	resp, body = e.do("POST", "/api/v1/agents/lab-2/heartbeat", adminToken, "application/json", `{}`)
	problem(t, resp, body, http.StatusNotFound, ProblemNotFound)
	resp, body = e.do("POST", "/api/v1/agents/lab-2/heartbeat", adminToken, "", `{}`)
	problem(t, resp, body, http.StatusUnsupportedMediaType, ProblemUnsupportedMedia)

	resp, body = e.do("GET", "/api/v1/agents", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var list AgentList
	require.NoError(t, json.Unmarshal(body, &list))
	require.Len(t, list.Agents, 1)
	assert.Equal(t, "lab-1", list.Agents[0].Name)

	// Unregistering answers at once; GET shows the drain's progress.
	cfg := workflows.DefaultPoolConfig()
	cfg.Agent = "lab-1"
	e.repos.set(workflows.RepositoryView{Repository: "octo/app", Pools: []workflows.PoolView{
		{Pool: "default", Config: cfg, Draining: true, Counts: workflows.PoolCounts{Busy: 2, Deleting: 1}},
		{Pool: "gpu", Config: workflows.DefaultPoolConfig(), Counts: workflows.PoolCounts{Idle: 4}}}})
	resp, body = e.do("DELETE", "/api/v1/agents/lab-1?reason=decommissioned", adminToken, "", "")
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", body)
	var v AgentView
	require.NoError(t, json.Unmarshal(body, &v))
	assert.Equal(t, workflows.AgentUnregistering, v.Status)
	assert.Equal(t, &DrainProgress{Repositories: 1, Pools: 1, Runners: 3}, v.Drain, "the agent's own pools only")
	assert.Equal(t, "decommissioned", e.agents.lastUnrg.Reason)
	resp, body = e.do("GET", "/api/v1/agents/lab-1", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Contains(t, string(body), `"drain":{"repositories":1,"pools":1,"runners":3}`)

	e.agents.unregistered("lab-1")
	resp, body = e.do("GET", "/api/v1/agents/lab-1", adminToken, "", "")
	problem(t, resp, body, http.StatusNotFound, ProblemNotFound)
	resp, body = e.do("DELETE", "/api/v1/agents/lab-1", adminToken, "", "")
	problem(t, resp, body, http.StatusNotFound, ProblemNotFound)

	resp, body = e.do("GET", "/api/v1/agents", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"agents":[]}`, string(body))
}

func TestListPaginates(t *testing.T) {
	e := newAPIEnv(t)
	for _, n := range []string{"a", "b", "c"} {
		resp, body := e.do("POST", "/api/v1/agents/"+n+"/register", adminToken, "", "")
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	}
	var names []string
	cursor := ""
	for range 3 {
		resp, body := e.do("GET", "/api/v1/agents?limit=2&cursor="+cursor, adminToken, "", "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var list AgentList
		require.NoError(t, json.Unmarshal(body, &list))
		for _, a := range list.Agents {
			names = append(names, a.Name)
		}
		if cursor = list.NextCursor; cursor == "" {
			break
		}
	}
	assert.Equal(t, []string{"a", "b", "c"}, names)
	for _, bad := range []string{"0", "1001", "x", "-1"} {
		resp, body := e.do("GET", "/api/v1/agents?limit="+bad, adminToken, "", "")
		problem(t, resp, body, http.StatusBadRequest, ProblemInvalidRequest)
	}
}

func TestMalformedInputs(t *testing.T) {
	e := newAPIEnv(t)
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		typ                             string
	}{
		{"bad agent name", "POST", "/api/v1/agents/Lab_1/register", "", "", 400, ProblemInvalidRequest},
		{"name too long", "POST", "/api/v1/agents/" + strings.Repeat("a", 64) + "/register", "", "", 400, ProblemInvalidRequest},
		{"unknown field", "POST", "/api/v1/agents/lab-1/register", "application/json", `{"versoin":"x"}`, 400, ProblemInvalidRequest},
		{"not JSON", "POST", "/api/v1/agents/lab-1/register", "application/json", `{`, 400, ProblemInvalidRequest},
		{"trailing data", "POST", "/api/v1/agents/lab-1/register", "application/json", `{} {}`, 400, ProblemInvalidRequest},
		{"wrong media type", "POST", "/api/v1/agents/lab-1/register", "text/plain", `{}`, 415, ProblemUnsupportedMedia},
		{"too large", "POST", "/api/v1/agents/lab-1/register", "application/json", `{"version":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, 413, ProblemTooLarge},
		{"label too long", "POST", "/api/v1/agents/lab-1/register", "application/json", `{"labels":["` + strings.Repeat("x", 257) + `"]}`, 422, ProblemInvalidRequest},
		{"empty label", "POST", "/api/v1/agents/lab-1/register", "application/json", `{"labels":[""]}`, 422, ProblemInvalidRequest},
		{"unknown heartbeat field", "POST", "/api/v1/agents/lab-1/heartbeat", "application/json", `{"stop":true}`, 400, ProblemInvalidRequest},
		{"no such route", "GET", "/api/v1/nope", "", "", 404, ProblemNotFound},
		{"wrong method", "PUT", "/api/v1/agents/lab-1", "", "", 405, ProblemMethodNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := e.do(c.method, c.path, adminToken, c.ctype, c.body)
			problem(t, resp, body, c.status, c.typ)
		})
	}
	assert.Empty(t, e.agents.agents, "no malformed request registered anything")
}

func TestBackendErrorsMapToProblems(t *testing.T) {
	e := newAPIEnv(t)
	cases := []struct {
		err    error
		status int
		typ    string
	}{
		{&RejectedError{Type: workflows.ErrTypeUnregistering, Message: "agent is being unregistered"}, 409, ProblemConflict},
		{&RejectedError{Type: workflows.ErrTypeInvalidRequest, Message: "bad"}, 422, ProblemInvalidRequest},
		{&RejectedError{Type: workflows.ErrTypeNotRegistered, Message: "agent is not registered"}, 404, ProblemNotFound},
		{&RejectedError{Type: workflows.ErrTypeNotFound, Message: "no pool gpu"}, 404, ProblemNotFound},
		{&RejectedError{Type: workflows.ErrTypeConflict, Message: "exists"}, 409, ProblemConflict},
		{&RejectedError{Type: workflows.ErrTypeDraining, Message: "pool gpu is draining"}, 409, ProblemConflict},
		{&RejectedError{Type: workflows.ErrTypeClosing, Message: "finishing; retry"}, 503, ProblemUnavailable},
		{&RejectedError{Type: "SomethingNew", Message: "boom"}, 500, ProblemInternal},
		{ErrUnavailable, 503, ProblemUnavailable},
		{ErrUnregistered, 410, ProblemUnregistered},
		{context.DeadlineExceeded, 503, ProblemUnavailable},
		{errors.New("boom"), 500, ProblemInternal},
	}
	for _, c := range cases {
		e.agents.failWith = c.err
		resp, body := e.do("POST", "/api/v1/agents/lab-1/register", adminToken, "", "")
		p := problem(t, resp, body, c.status, c.typ)
		assert.NotContains(t, p.Detail, "boom", "internal errors are logged, not shown")
	}
}

func TestReadiness(t *testing.T) {
	e := newAPIEnv(t)
	resp, _ := e.do("GET", "/readyz", "", "", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	e.ready = errors.New("temporal: connecting to 10.0.0.7:7233")
	resp, body := e.do("GET", "/readyz", "", "", "")
	p := problem(t, resp, body, http.StatusServiceUnavailable, ProblemUnavailable)
	assert.NotContains(t, p.Detail, "10.0.0.7", "no detail for anyone")
	resp, body = e.do("GET", "/api/v1/status", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"ready":false,"detail":"temporal: connecting to 10.0.0.7:7233","role":"admin"}`, string(body),
		"the details, with a token, and who asks")
}

// TestOpenAPIMatchesRoutes fails when a route is served that the spec does
// not document, or documented but not served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var spec struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	require.NoError(t, yaml.Unmarshal(OpenAPISpec(), &spec))
	documented := map[string]bool{}
	for path, ops := range spec.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	served := map[string]bool{}
	h := NewRouter(Config{Tokens: NewTokens("x", nil, 0), Logger: slog.Default()})
	require.NoError(t, chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		served[method+" "+strings.TrimSuffix(route, "/")] = true
		return nil
	}))
	assert.Equal(t, documented, served)
}
