package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/garo-run/garo/activities/provider"
	"github.com/garo-run/garo/workflows"
)

// Repositories is the control plane of repositories and their runner
// pools, backed by their workflows.
type Repositories interface {
	// ConfigurePool creates or changes a pool.
	ConfigurePool(ctx context.Context, owner, repo string, req workflows.ConfigureRequest) (workflows.PoolView, error)
	// Get returns a repository's pools with their runners and queues;
	// ErrNotFound when it has none.
	Get(ctx context.Context, owner, repo string) (workflows.RepositoryView, error)
	// DrainPool drains a pool, or every pool of req.Agent.
	DrainPool(ctx context.Context, owner, repo string, req workflows.DrainRequest) (workflows.RepositoryView, error)
	// List returns a page of repositories, with their pools' summaries;
	// only those with a pool of agent when agent is set.
	List(ctx context.Context, limit int, cursor, agent string) ([]workflows.RepositoryView, string, error)
	// Usage returns a repository's usage over req.Window; ErrNotFound
	// when it has no pools.
	Usage(ctx context.Context, owner, repo string, req workflows.UsageRequest) (workflows.RepositoryUsage, error)
}

// PoolList is the answer of GET /api/v1/repositories: every pool of every
// repository of the page, one entry each (the key is from before several
// pools, when a repository had one pool).
type PoolList struct {
	Repositories []workflows.PoolView `json:"repositories"`
	NextCursor   string               `json:"nextCursor,omitempty"`
}

// UnmatchedJob is a queued job whose labels no pool of its repository
// fits.
type UnmatchedJob struct {
	workflows.QueuedJob
	// Age is how long it has waited, e.g. "3m12s".
	Age string `json:"age"`
}

// UnmatchedList is the answer of GET .../unmatched.
type UnmatchedList struct {
	Jobs []UnmatchedJob `json:"jobs"`
	// Total counts every job that fitted no pool when it was queued,
	// since the repository's first pool.
	Total int `json:"total"`
}

// repoParams reads {owner} and {repo}; on failure it has answered 400.
func (h *handlers) repoParams(w http.ResponseWriter, r *http.Request) (string, string, bool) {
	owner, repo, err := workflows.ParseRepository(chi.URLParam(r, "owner") + "/" + chi.URLParam(r, "repo"))
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, err.Error())
		return "", "", false
	}
	return owner, repo, true
}

// poolParams reads {owner}, {repo} and {pool}; the routes without {pool}
// stand for the default pool.
func (h *handlers) poolParams(w http.ResponseWriter, r *http.Request) (owner, repo, pool string, ok bool) {
	if owner, repo, ok = h.repoParams(w, r); !ok {
		return "", "", "", false
	}
	pool = chi.URLParam(r, "pool")
	if pool == "" {
		pool = workflows.DefaultPool
	}
	if err := workflows.ValidatePoolName(pool); err != nil {
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, err.Error())
		return "", "", "", false
	}
	return owner, repo, pool, true
}

// putPool creates or changes a pool: the body is its whole config, fields
// left out take their defaults.
func (h *handlers) putPool(w http.ResponseWriter, r *http.Request) {
	owner, repo, pool, ok := h.poolParams(w, r)
	if !ok {
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	cfg, err := workflows.DecodePoolConfig(body)
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, err.Error())
		return
	}
	h.configurePool(w, r, owner, repo, workflows.ConfigureRequest{Pool: pool, Config: cfg}, cfg)
}

// patchPool changes the fields of a pool that a JSON merge patch (RFC
// 7386) names: null resets one to its default. A pool that does not exist
// is created from the defaults. The pool's workflow applies the patch, so
// concurrent patches lose nothing.
func (h *handlers) patchPool(w http.ResponseWriter, r *http.Request) {
	owner, repo, pool, ok := h.poolParams(w, r)
	if !ok {
		return
	}
	body, ok := readBody(w, r, "application/merge-patch+json", "application/json")
	if !ok {
		return
	}
	base := workflows.DefaultPoolConfig()
	if v, err := h.cfg.Repositories.Get(r.Context(), owner, repo); err == nil {
		if p, found := v.Pool(pool); found {
			base = p.Config
		}
	} else if !errors.Is(err, ErrNotFound) {
		h.backendError(w, r, "get repository "+owner+"/"+repo, err)
		return
	}
	cfg, err := workflows.PatchPoolConfig(base, body)
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, err.Error())
		return
	}
	h.configurePool(w, r, owner, repo, workflows.ConfigureRequest{Pool: pool, Patch: body}, cfg)
}

// configurePool validates the config a request will set, checks its agent
// and sends the request to the repository's workflow.
func (h *handlers) configurePool(w http.ResponseWriter, r *http.Request, owner, repo string, req workflows.ConfigureRequest,
	cfg workflows.PoolConfig) {
	if err := cfg.Validate(); err != nil {
		writeProblem(w, r, http.StatusUnprocessableEntity, ProblemInvalidRequest, err.Error())
		return
	}
	if !h.checkPoolAgent(w, r, cfg) {
		return
	}
	req.Config, req.Actor, req.Prices = cfg, IdentityFrom(r.Context()).Subject, h.cfg.Prices
	v, err := h.cfg.Repositories.ConfigurePool(r.Context(), owner, repo, req)
	if err != nil {
		h.backendError(w, r, "configure pool "+req.PoolName()+" of "+owner+"/"+repo, err)
		return
	}
	h.log.Info("Pool configured", "repository", owner+"/"+repo, "pool", req.PoolName(), "agent", v.Config.Agent, "actor", req.Actor)
	writeJSON(w, http.StatusOK, v)
}

// checkPoolAgent checks that the pool's agent is registered, offers its
// provider and is not being unregistered; on failure it has answered.
func (h *handlers) checkPoolAgent(w http.ResponseWriter, r *http.Request, cfg workflows.PoolConfig) bool {
	agent, err := h.cfg.Agents.Get(r.Context(), cfg.Agent)
	switch {
	case errors.Is(err, ErrNotFound):
		writeProblem(w, r, http.StatusUnprocessableEntity, ProblemInvalidRequest, "agent "+cfg.Agent+" is not registered")
		return false
	case err != nil:
		h.backendError(w, r, "look up agent "+cfg.Agent, err)
		return false
	case agent.Status == workflows.AgentUnregistering || agent.Status == workflows.AgentUnregistered:
		writeProblem(w, r, http.StatusConflict, ProblemConflict, "agent "+cfg.Agent+" is being unregistered")
		return false
	case !slices.Contains(agent.Capabilities.Providers, cfg.Provider.Kind()):
		writeProblem(w, r, http.StatusUnprocessableEntity, ProblemInvalidRequest,
			"agent "+cfg.Agent+" does not offer provider "+strconv.Quote(cfg.Provider.Kind()))
		return false
	}
	if schema, ok := agent.Capabilities.ProviderOptions[cfg.Provider.Kind()]; ok {
		if err := provider.CheckOptions(schema, cfg.Provider); err != nil {
			writeProblem(w, r, http.StatusUnprocessableEntity, ProblemInvalidRequest, err.Error())
			return false
		}
	}
	return true
}

// getRepository gets the live state of repository owner/repo; on failure
// it has answered.
func (h *handlers) getRepository(w http.ResponseWriter, r *http.Request, owner, repo string) (workflows.RepositoryView, bool) {
	v, err := h.cfg.Repositories.Get(r.Context(), owner, repo)
	if err != nil {
		h.backendError(w, r, "get repository "+owner+"/"+repo, err)
		return v, false
	}
	return v, true
}

// repository gets the live state of the repository the path names; on
// failure it has answered.
func (h *handlers) repository(w http.ResponseWriter, r *http.Request) (workflows.RepositoryView, bool) {
	owner, repo, ok := h.repoParams(w, r)
	if !ok {
		return workflows.RepositoryView{}, false
	}
	return h.getRepository(w, r, owner, repo)
}

func (h *handlers) getPool(w http.ResponseWriter, r *http.Request) {
	owner, repo, pool, ok := h.poolParams(w, r)
	if !ok {
		return
	}
	v, ok := h.getRepository(w, r, owner, repo)
	if !ok {
		return
	}
	p, found := v.Pool(pool)
	if !found {
		writeProblem(w, r, http.StatusNotFound, ProblemNotFound, "repository "+owner+"/"+repo+" has no pool "+pool)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (h *handlers) listPools(w http.ResponseWriter, r *http.Request) {
	if v, ok := h.repository(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]any{"pools": v.Pools})
	}
}

func (h *handlers) deletePool(w http.ResponseWriter, r *http.Request) {
	owner, repo, pool, ok := h.poolParams(w, r)
	if !ok {
		return
	}
	actor := IdentityFrom(r.Context()).Subject
	v, err := h.cfg.Repositories.DrainPool(r.Context(), owner, repo, workflows.DrainRequest{Pool: pool, Actor: actor})
	if err != nil {
		h.backendError(w, r, "drain pool "+pool+" of "+owner+"/"+repo, err)
		return
	}
	h.log.Info("Pool draining", "repository", owner+"/"+repo, "pool", pool, "actor", actor)
	p, _ := v.Pool(pool)
	writeJSON(w, http.StatusAccepted, p)
}

// getRepositoryRunners answers the runners of every pool of the
// repository.
func (h *handlers) getRepositoryRunners(w http.ResponseWriter, r *http.Request) {
	v, ok := h.repository(w, r)
	if !ok {
		return
	}
	runners := []workflows.RunnerView{}
	for _, p := range v.Pools {
		for _, rv := range p.Runners {
			rv.Pool = p.Pool
			runners = append(runners, rv)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"runners": runners})
}

// getRepositoryJobs answers the jobs waiting in every pool's queue, oldest
// first.
func (h *handlers) getRepositoryJobs(w http.ResponseWriter, r *http.Request) {
	v, ok := h.repository(w, r)
	if !ok {
		return
	}
	jobs := []workflows.QueuedJob{}
	for _, p := range v.Pools {
		for _, j := range p.Queue {
			j.Pool = p.Pool
			jobs = append(jobs, j)
		}
	}
	sort.SliceStable(jobs, func(i, j int) bool { return jobs[i].QueuedAt.Before(jobs[j].QueuedAt) })
	writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs})
}

// getUnmatched answers the queued jobs no pool fits, with their age.
func (h *handlers) getUnmatched(w http.ResponseWriter, r *http.Request) {
	v, ok := h.repository(w, r)
	if !ok {
		return
	}
	now := h.now()
	out := UnmatchedList{Jobs: []UnmatchedJob{}, Total: v.UnmatchedTotal}
	for _, j := range v.Unmatched {
		out.Jobs = append(out.Jobs, UnmatchedJob{QueuedJob: j, Age: max(0, now.Sub(j.QueuedAt)).Round(time.Second).String()})
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handlers) listRepositories(w http.ResponseWriter, r *http.Request) {
	limit, ok := pageLimit(w, r)
	if !ok {
		return
	}
	agent := r.URL.Query().Get("agent")
	if agent != "" {
		if err := workflows.ValidateAgentName(agent); err != nil {
			writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, err.Error())
			return
		}
	}
	repos, next, err := h.cfg.Repositories.List(r.Context(), limit, r.URL.Query().Get("cursor"), agent)
	if err != nil {
		h.backendError(w, r, "list repositories", err)
		return
	}
	out := PoolList{Repositories: []workflows.PoolView{}, NextCursor: next}
	for _, v := range repos {
		for _, p := range v.Pools {
			if agent == "" || p.Config.Agent == agent {
				// The memo has counts, not the runners and the queue.
				p.Runners, p.Queue = []workflows.RunnerView{}, []workflows.QueuedJob{}
				out.Repositories = append(out.Repositories, p)
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// AgentConfig is the answer of GET /api/v1/agents/{name}/config: the pools
// the agent serves, with their configs.
type AgentConfig struct {
	Agent string `json:"agent"`
	// Repositories lists the agent's pools, one entry each (the key is
	// from before several pools).
	Repositories []AgentPool `json:"repositories"`
}

// AgentPool is one pool an agent serves.
type AgentPool struct {
	Repository string               `json:"repository"`
	Pool       string               `json:"pool"`
	Config     workflows.PoolConfig `json:"config"`
}

// configPageSize is how many repositories an agent's config reads from
// the visibility store at a time; it reads every page.
const configPageSize = 1000

// agentConfig answers with the agent's pools; an ETag over the body lets a
// polling agent get 304 while nothing changed.
// agentPools are the pools of v that agent serves: configured, whole, and
// not draining. A pool whose config is not whole yet (a run that has not
// published it) is left out until it is, never sent half-made.
func (h *handlers) agentPools(agent string, v workflows.RepositoryView) []AgentPool {
	var out []AgentPool
	for _, p := range v.Pools {
		if p.Config.Agent != agent || p.Draining {
			continue
		}
		if err := p.Config.Validate(); err != nil {
			h.log.Warn("A pool's config is incomplete; the agent gets it once it is whole", "repository", v.Repository,
				"pool", p.Pool, "agent", agent, "error", err)
			continue
		}
		out = append(out, AgentPool{Repository: v.Repository, Pool: p.Pool, Config: p.Config})
	}
	return out
}

func (h *handlers) agentConfig(w http.ResponseWriter, r *http.Request) {
	name, ok := h.agentName(w, r)
	if !ok {
		return
	}
	cfg := AgentConfig{Agent: name, Repositories: []AgentPool{}}
	for cursor := ""; ; {
		repos, next, err := h.cfg.Repositories.List(r.Context(), configPageSize, cursor, name)
		if err != nil {
			h.backendError(w, r, "config of agent "+name, err)
			return
		}
		for _, v := range repos {
			cfg.Repositories = append(cfg.Repositories, h.agentPools(name, v)...)
		}
		if next == "" || next == cursor {
			break
		}
		cursor = next
	}
	sort.Slice(cfg.Repositories, func(i, j int) bool {
		a, b := cfg.Repositories[i], cfg.Repositories[j]
		return a.Repository < b.Repository || (a.Repository == b.Repository && a.Pool < b.Pool)
	})
	body, err := json.Marshal(cfg)
	if err != nil {
		h.backendError(w, r, "encode config", err)
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(body, '\n'))
}
