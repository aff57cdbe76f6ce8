// Package apiclient is a Go client of Garo's REST API, used by agents and
// operators' tools.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/api"
	"github.com/garo-run/garo/workflows"
)

// Client calls one Garo server with one bearer token.
type Client struct {
	baseURL string
	token   string
	http    *http.Client
}

// New returns a client of the server at baseURL (such as
// "http://localhost:8080") that authenticates with token.
func New(baseURL, token string) *Client {
	return &Client{
		baseURL: strings.TrimSuffix(baseURL, "/"),
		token:   token,
		http:    &http.Client{Timeout: 30 * time.Second},
	}
}

// Error is a problem the server answered with.
type Error struct {
	StatusCode int
	Type       string `json:"type"`
	Title      string `json:"title"`
	Detail     string `json:"detail"`
}

func (e *Error) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%d %s: %s", e.StatusCode, e.Title, e.Detail)
	}
	return fmt.Sprintf("%d %s", e.StatusCode, e.Title)
}

// IsStatus reports whether err is an API error with the given status.
func IsStatus(err error, status int) bool {
	e, ok := err.(*Error)
	return ok && e.StatusCode == status
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = b
	}
	return c.send(ctx, method, path, "application/json", body, out)
}

// send makes one request with body (none when nil) of content type ct and
// decodes a JSON answer into out; an answer of 300 or more is an *Error.
func (c *Client) send(ctx context.Context, method, path, ct string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("read answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		e := &Error{StatusCode: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
		_ = json.Unmarshal(b, e)
		return e
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
	}
	return nil
}

func agentPath(name string, rest string) string {
	return "/api/v1/agents/" + url.PathEscape(name) + rest
}

// RegisterAgent registers the agent called name with its capabilities.
func (c *Client) RegisterAgent(ctx context.Context, name string, caps workflows.AgentCapabilities) (workflows.AgentState, error) {
	var st workflows.AgentState
	err := c.do(ctx, http.MethodPost, agentPath(name, "/register"), caps, &st)
	return st, err
}

// Heartbeat tells the server that the agent is alive, or, with stopping,
// that it shuts down.
func (c *Client) Heartbeat(ctx context.Context, name string, stopping bool) (workflows.AgentState, error) {
	var st workflows.AgentState
	err := c.do(ctx, http.MethodPost, agentPath(name, "/heartbeat"), workflows.HeartbeatRequest{Stopping: stopping}, &st)
	return st, err
}

// ReportRunners tells the server what became of the agent's runners: it
// returns once their pools have the reports.
func (c *Client) ReportRunners(ctx context.Context, name string, reports []activities.PoolRunnerReport) error {
	return c.do(ctx, http.MethodPost, agentPath(name, "/runner-reports"), activities.RunnerReportList{Reports: reports}, nil)
}

// Agent is an agent's record; Drain is set while it is unregistering.
type Agent struct {
	workflows.AgentState
	Drain *Drain `json:"drain,omitempty"`
}

// Drain is what is left of an unregistering agent's pools.
type Drain struct {
	Repositories int `json:"repositories"`
	Pools        int `json:"pools"`
	Runners      int `json:"runners"`
}

// UnregisterAgent starts unregistering the agent called name: its pools
// drain, then its registration ends (GetAgent answers 404 then).
func (c *Client) UnregisterAgent(ctx context.Context, name string) (Agent, error) {
	var a Agent
	err := c.do(ctx, http.MethodDelete, agentPath(name, ""), nil, &a)
	return a, err
}

// GetAgent returns the record of one agent.
func (c *Client) GetAgent(ctx context.Context, name string) (Agent, error) {
	var a Agent
	err := c.do(ctx, http.MethodGet, agentPath(name, ""), nil, &a)
	return a, err
}

// ListAgents returns every registered agent, following the pages.
func (c *Client) ListAgents(ctx context.Context) ([]workflows.AgentState, error) {
	var all []workflows.AgentState
	cursor := ""
	for {
		var page struct {
			Agents     []workflows.AgentState `json:"agents"`
			NextCursor string                 `json:"nextCursor"`
		}
		if err := c.do(ctx, http.MethodGet, "/api/v1/agents?cursor="+url.QueryEscape(cursor), nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Agents...)
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
}

func repoPath(owner, repo, rest string) string {
	return "/api/v1/repositories/" + url.PathEscape(owner) + "/" + url.PathEscape(repo) + rest
}

// poolPath is the route of a pool; pool "" is the repository's own route,
// that of its default pool.
func poolPath(owner, repo, pool string) string {
	if pool == "" {
		return repoPath(owner, repo, "")
	}
	return repoPath(owner, repo, "/pools/"+url.PathEscape(pool))
}

// ConfigurePool creates or changes a runner pool of owner/repo, whole;
// pool "" is the default pool.
func (c *Client) ConfigurePool(ctx context.Context, owner, repo, pool string, cfg workflows.PoolConfig) (workflows.PoolView, error) {
	var v workflows.PoolView
	err := c.do(ctx, http.MethodPut, poolPath(owner, repo, pool), cfg, &v)
	return v, err
}

// PatchPool changes the fields of a pool that a JSON merge patch names
// (creating the pool from the defaults if there is none).
func (c *Client) PatchPool(ctx context.Context, owner, repo, pool string, patch []byte) (workflows.PoolView, error) {
	var v workflows.PoolView
	err := c.send(ctx, http.MethodPatch, poolPath(owner, repo, pool), "application/merge-patch+json", patch, &v)
	return v, err
}

// GetPool returns a pool of owner/repo with its runners and queue.
func (c *Client) GetPool(ctx context.Context, owner, repo, pool string) (workflows.PoolView, error) {
	var v workflows.PoolView
	err := c.do(ctx, http.MethodGet, poolPath(owner, repo, pool), nil, &v)
	return v, err
}

// ListPools returns the pools of owner/repo with their runners and queues.
func (c *Client) ListPools(ctx context.Context, owner, repo string) ([]workflows.PoolView, error) {
	var out struct {
		Pools []workflows.PoolView `json:"pools"`
	}
	err := c.do(ctx, http.MethodGet, repoPath(owner, repo, "/pools"), nil, &out)
	return out.Pools, err
}

// DrainPool drains a pool of owner/repo; it ends once its runners are gone.
func (c *Client) DrainPool(ctx context.Context, owner, repo, pool string) (workflows.PoolView, error) {
	var v workflows.PoolView
	err := c.do(ctx, http.MethodDelete, poolPath(owner, repo, pool), nil, &v)
	return v, err
}

// AllPools returns every pool of every repository, without runners and
// queues, following the pages.
func (c *Client) AllPools(ctx context.Context) ([]workflows.PoolView, error) {
	var all []workflows.PoolView
	cursor := ""
	for {
		var page struct {
			Repositories []workflows.PoolView `json:"repositories"`
			NextCursor   string               `json:"nextCursor"`
		}
		if err := c.do(ctx, http.MethodGet, "/api/v1/repositories?cursor="+url.QueryEscape(cursor), nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Repositories...)
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
}

// Runners returns the runners of every pool of owner/repo.
func (c *Client) Runners(ctx context.Context, owner, repo string) ([]workflows.RunnerView, error) {
	var out struct {
		Runners []workflows.RunnerView `json:"runners"`
	}
	err := c.do(ctx, http.MethodGet, repoPath(owner, repo, "/runners"), nil, &out)
	return out.Runners, err
}

// Jobs returns the jobs waiting in every pool of owner/repo, oldest first.
func (c *Client) Jobs(ctx context.Context, owner, repo string) ([]workflows.QueuedJob, error) {
	var out struct {
		Jobs []workflows.QueuedJob `json:"jobs"`
	}
	err := c.do(ctx, http.MethodGet, repoPath(owner, repo, "/jobs"), nil, &out)
	return out.Jobs, err
}

// UnmatchedJob is a queued job that no pool of its repository fits.
type UnmatchedJob struct {
	workflows.QueuedJob
	Age string `json:"age"`
}

// Unmatched lists the queued jobs of owner/repo that no pool fits, and
// counts all that ever did not.
type Unmatched struct {
	Jobs  []UnmatchedJob `json:"jobs"`
	Total int            `json:"total"`
}

// Unmatched returns the queued jobs of owner/repo that no pool fits.
func (c *Client) Unmatched(ctx context.Context, owner, repo string) (Unmatched, error) {
	var out Unmatched
	err := c.do(ctx, http.MethodGet, repoPath(owner, repo, "/unmatched"), nil, &out)
	return out, err
}

// CreatedAgent is the answer of CreateAgent; Token is shown this once.
type CreatedAgent struct {
	Agent workflows.AgentState `json:"agent"`
	Token string               `json:"token"`
}

// CreateAgent creates an agent and returns its token.
func (c *Client) CreateAgent(ctx context.Context, name string) (CreatedAgent, error) {
	var out CreatedAgent
	err := c.do(ctx, http.MethodPost, "/api/v1/agents", map[string]string{"name": name}, &out)
	return out, err
}

// CreatedToken is the answer of CreateToken; Token is shown this once.
type CreatedToken struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Role  string `json:"role"`
	Token string `json:"token"`
}

// CreateToken creates a reader or admin token.
func (c *Client) CreateToken(ctx context.Context, name, role string) (CreatedToken, error) {
	var out CreatedToken
	err := c.do(ctx, http.MethodPost, "/api/v1/tokens", map[string]string{"name": name, "role": role}, &out)
	return out, err
}

// RevokeToken revokes a token by id.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(id), nil, nil)
}

// AgentConfig is the configuration the server hands an agent: the pools
// it serves, one entry each.
type AgentConfig struct {
	Agent        string `json:"agent"`
	Repositories []struct {
		Repository string               `json:"repository"`
		Pool       string               `json:"pool"`
		Config     workflows.PoolConfig `json:"config"`
	} `json:"repositories"`
}

// GetAgentConfig fetches the agent's configuration unless it still has the
// ETag given; changed is false on 304.
func (c *Client) GetAgentConfig(ctx context.Context, name, etag string) (cfg AgentConfig, newETag string, changed bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+agentPath(name, "/config"), nil)
	if err != nil {
		return cfg, etag, false, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return cfg, etag, false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return cfg, etag, false, nil
	case http.StatusOK:
		if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&cfg); err != nil {
			return cfg, etag, false, fmt.Errorf("decode agent config: %w", err)
		}
		return cfg, resp.Header.Get("ETag"), true, nil
	}
	e := &Error{StatusCode: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(e)
	return cfg, etag, false, e
}

// Usage returns every repository's usage over window ("1h", "24h", "7d").
func (c *Client) Usage(ctx context.Context, window string) (api.UsageReport, error) {
	var out api.UsageReport
	err := c.do(ctx, http.MethodGet, "/api/v1/usage?window="+url.QueryEscape(window), nil, &out)
	return out, err
}

// RepositoryUsage returns the usage of owner/repo's pools over window.
func (c *Client) RepositoryUsage(ctx context.Context, owner, repo, window string) (api.RepositoryUsageReport, error) {
	var out api.RepositoryUsageReport
	err := c.do(ctx, http.MethodGet, repoPath(owner, repo, "/usage?window="+url.QueryEscape(window)), nil, &out)
	return out, err
}

// AgentUsage returns the usage of the pools agent name serves over window.
func (c *Client) AgentUsage(ctx context.Context, name, window string) (api.AgentUsageReport, error) {
	var out api.AgentUsageReport
	err := c.do(ctx, http.MethodGet, agentPath(name, "/usage?window="+url.QueryEscape(window)), nil, &out)
	return out, err
}
