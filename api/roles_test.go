package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// issue creates a token or an agent as admin and returns its secret.
func (e *apiEnv) issue(path, body string) string {
	e.t.Helper()
	resp, b := e.do("POST", path, adminToken, "application/json", body)
	require.Equal(e.t, http.StatusCreated, resp.StatusCode, "%s", b)
	var out struct {
		Token string `json:"token"`
	}
	require.NoError(e.t, json.Unmarshal(b, &out))
	require.NotEmpty(e.t, out.Token)
	return out.Token
}

// TestEveryRoleAgainstEveryRoute: readers read, admins also write, an
// agent reaches only its own endpoints, nobody without a token.
func TestEveryRoleAgainstEveryRoute(t *testing.T) {
	e := newAPIEnv(t)
	reader := e.issue("/api/v1/tokens", `{"name":"portal","role":"reader"}`)
	admin2 := e.issue("/api/v1/tokens", `{"name":"ops","role":"admin"}`)
	lab1 := e.issue("/api/v1/agents", `{"name":"lab-1"}`)
	lab2 := e.issue("/api/v1/agents", `{"name":"lab-2"}`)
	assert.True(t, strings.HasPrefix(lab1, "garoa_lab-1_"))

	const (
		ok  = 0 // anything but 401 and 403
		no  = http.StatusForbidden
		out = http.StatusUnauthorized
	)
	who := []struct{ name, token string }{{"none", ""}, {"bad", "garo_zzzzzzzzzzzz_nope"}, {"admin", adminToken},
		{"admin2", admin2}, {"reader", reader}, {"self", lab1}, {"other agent", lab2}}
	routes := []struct {
		method, path string
		want         [7]int // by who
	}{
		{"GET", "/api/v1/status", [7]int{out, out, ok, ok, ok, no, no}},
		{"GET", "/api/v1/agents", [7]int{out, out, ok, ok, ok, no, no}},
		{"POST", "/api/v1/agents", [7]int{out, out, ok, ok, no, no, no}},
		{"GET", "/api/v1/agents/lab-1", [7]int{out, out, ok, ok, ok, ok, no}},
		{"DELETE", "/api/v1/agents/lab-1", [7]int{out, out, ok, ok, no, ok, no}},
		{"POST", "/api/v1/agents/lab-1/register", [7]int{out, out, ok, ok, no, ok, no}},
		{"POST", "/api/v1/agents/lab-1/heartbeat", [7]int{out, out, ok, ok, no, ok, no}},
		{"POST", "/api/v1/agents/lab-1/runner-reports", [7]int{out, out, ok, ok, no, ok, no}},
		{"GET", "/api/v1/agents/lab-1/config", [7]int{out, out, ok, ok, ok, ok, no}},
		{"GET", "/api/v1/agents/lab-1/usage", [7]int{out, out, ok, ok, ok, ok, no}},
		{"GET", "/api/v1/usage", [7]int{out, out, ok, ok, ok, no, no}},
		{"GET", "/api/v1/repositories/o/r/usage", [7]int{out, out, ok, ok, ok, no, no}},
		{"GET", "/api/v1/repositories", [7]int{out, out, ok, ok, ok, no, no}},
		{"GET", "/api/v1/repositories/o/r", [7]int{out, out, ok, ok, ok, no, no}},
		{"PUT", "/api/v1/repositories/o/r", [7]int{out, out, ok, ok, no, no, no}},
		{"DELETE", "/api/v1/repositories/o/r", [7]int{out, out, ok, ok, no, no, no}},
		{"GET", "/api/v1/repositories/o/r/runners", [7]int{out, out, ok, ok, ok, no, no}},
		{"GET", "/api/v1/repositories/o/r/jobs", [7]int{out, out, ok, ok, ok, no, no}},
		{"GET", "/api/v1/repositories/o/r/unmatched", [7]int{out, out, ok, ok, ok, no, no}},
		{"GET", "/api/v1/repositories/o/r/pools", [7]int{out, out, ok, ok, ok, no, no}},
		{"GET", "/api/v1/repositories/o/r/pools/gpu", [7]int{out, out, ok, ok, ok, no, no}},
		{"PUT", "/api/v1/repositories/o/r/pools/gpu", [7]int{out, out, ok, ok, no, no, no}},
		{"PATCH", "/api/v1/repositories/o/r/pools/gpu", [7]int{out, out, ok, ok, no, no, no}},
		{"PATCH", "/api/v1/repositories/o/r", [7]int{out, out, ok, ok, no, no, no}},
		{"DELETE", "/api/v1/repositories/o/r/pools/gpu", [7]int{out, out, ok, ok, no, no, no}},
		{"GET", "/api/v1/tokens", [7]int{out, out, ok, ok, no, no, no}},
		{"POST", "/api/v1/tokens", [7]int{out, out, ok, ok, no, no, no}},
		{"DELETE", "/api/v1/tokens/none", [7]int{out, out, ok, ok, no, no, no}},
		{"GET", "/metrics", [7]int{out, out, ok, ok, ok, no, no}},
	}
	// The table covers every route the router serves.
	params := strings.NewReplacer("{name}", "lab-1", "{owner}", "o", "{repo}", "r", "{pool}", "gpu", "{id}", "none")
	require.NoError(t, chi.Walk(e.srv.Config.Handler.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if !strings.HasPrefix(route, "/api/v1/") && route != "/metrics" {
			return nil
		}
		path := params.Replace(route)
		assert.True(t, slices.ContainsFunc(routes, func(r struct {
			method, path string
			want         [7]int
		}) bool {
			return r.method == method && r.path == path
		}), "%s %s is missing from the table", method, path)
		return nil
	}))
	for _, r := range routes {
		for i, w := range who {
			// A request body that the handler rejects after authorization:
			// what is checked here is only who gets that far.
			resp, body := e.do(r.method, r.path, w.token, "application/json", `{"x":1}`)
			got := resp.StatusCode
			switch want := r.want[i]; want {
			case ok:
				assert.NotContains(t, []int{401, 403}, got, "%s %s as %s: %s", r.method, r.path, w.name, body)
			default:
				assert.Equal(t, want, got, "%s %s as %s", r.method, r.path, w.name)
			}
		}
	}
}

func TestRevokedTokenStopsWorkingWithinTheCacheTTL(t *testing.T) {
	e := newAPIEnv(t)
	reader := e.issue("/api/v1/tokens", `{"name":"portal","role":"reader"}`)
	// A second server replica over the same store.
	other := NewTokens(adminToken, e.tokens, 5*time.Second)
	other.failBurst = 1 << 20
	other.now = func() time.Time { return e.clock }
	replica := httptest.NewServer(NewRouter(Config{Agents: e.agents, Repositories: e.repos, Tokens: other,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	t.Cleanup(replica.Close)
	get := func(base string) int {
		req, _ := http.NewRequest("GET", base+"/api/v1/agents", nil)
		req.Header.Set("Authorization", "Bearer "+reader)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, get(replica.URL))

	resp, body := e.do("GET", "/api/v1/tokens", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotContains(t, string(body), "hash", "hashes are never shown")
	var list struct {
		Tokens []TokenView `json:"tokens"`
	}
	require.NoError(t, json.Unmarshal(body, &list))
	require.Len(t, list.Tokens, 1)
	assert.Empty(t, list.Tokens[0].Token, "the secret is shown only when created")
	assert.Equal(t, "admin", list.Tokens[0].CreatedBy)

	resp, _ = e.do("DELETE", "/api/v1/tokens/"+list.Tokens[0].ID, adminToken, "", "")
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, http.StatusUnauthorized, get(e.srv.URL), "at once on the server that revoked it")
	assert.Equal(t, http.StatusOK, get(replica.URL), "a replica still has it cached")
	e.clock = e.clock.Add(5 * time.Second)
	assert.Equal(t, http.StatusUnauthorized, get(replica.URL), "and drops it within 5 seconds")

	resp, b := e.do("DELETE", "/api/v1/tokens/"+list.Tokens[0].ID, adminToken, "", "")
	problem(t, resp, b, http.StatusNotFound, ProblemNotFound)
}

func TestTokenLookupsAreCached(t *testing.T) {
	e := newAPIEnv(t)
	reader := e.issue("/api/v1/tokens", `{"name":"portal","role":"reader"}`)
	e.tokens.calls = 0
	for range 10 {
		resp, _ := e.do("GET", "/api/v1/agents", reader, "", "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	assert.Equal(t, 1, e.tokens.calls, "one store lookup per TTL, not per request")
}

func TestCreateAgentAndTokenValidation(t *testing.T) {
	e := newAPIEnv(t)
	e.issue("/api/v1/agents", `{"name":"lab-1"}`)
	resp, b := e.do("POST", "/api/v1/agents", adminToken, "application/json", `{"name":"lab-1"}`)
	problem(t, resp, b, http.StatusConflict, ProblemConflict)
	resp, b = e.do("POST", "/api/v1/agents", adminToken, "application/json", `{"name":"Lab 1"}`)
	problem(t, resp, b, http.StatusUnprocessableEntity, ProblemInvalidRequest)
	resp, b = e.do("POST", "/api/v1/tokens", adminToken, "application/json", `{"name":"x","role":"root"}`)
	problem(t, resp, b, http.StatusUnprocessableEntity, ProblemInvalidRequest)
	resp, b = e.do("POST", "/api/v1/tokens", adminToken, "application/json", `{"name":"","role":"reader"}`)
	problem(t, resp, b, http.StatusUnprocessableEntity, ProblemInvalidRequest)
}
