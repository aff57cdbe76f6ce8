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

	"github.com/go-chi/chi/v5"

	"github.com/garo-run/garo/workflows"
)

// Pools is the control plane of runner pools, backed by their workflows.
type Pools interface {
	Configure(ctx context.Context, owner, repo string, req workflows.ConfigureRequest) (workflows.PoolView, error)
	Get(ctx context.Context, owner, repo string) (workflows.PoolView, error)
	Drain(ctx context.Context, owner, repo string, req workflows.DrainRequest) (workflows.PoolView, error)
	// List returns a page of pools, of one agent when agent is set.
	List(ctx context.Context, limit int, cursor, agent string) ([]workflows.PoolView, string, error)
}

// PoolList is the answer of GET /api/v1/repositories.
type PoolList struct {
	Repositories []workflows.PoolView `json:"repositories"`
	NextCursor   string               `json:"nextCursor,omitempty"`
}

func (h *handlers) repoParams(w http.ResponseWriter, r *http.Request) (string, string, bool) {
	owner, repo, err := workflows.ParseRepository(chi.URLParam(r, "owner") + "/" + chi.URLParam(r, "repo"))
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, err.Error())
		return "", "", false
	}
	return owner, repo, true
}

func (h *handlers) putRepository(w http.ResponseWriter, r *http.Request) {
	owner, repo, ok := h.repoParams(w, r)
	if !ok {
		return
	}
	var req workflows.PoolConfigRequest
	if !decodeJSON(w, r, &req, true) {
		return
	}
	cfg := req.Config()
	if err := cfg.Validate(); err != nil {
		writeProblem(w, r, http.StatusUnprocessableEntity, ProblemInvalidRequest, err.Error())
		return
	}
	agent, err := h.cfg.Agents.Get(r.Context(), cfg.Agent)
	if errors.Is(err, ErrNotFound) {
		writeProblem(w, r, http.StatusUnprocessableEntity, ProblemInvalidRequest, "agent "+cfg.Agent+" is not registered")
		return
	}
	if err != nil {
		h.backendError(w, r, "look up agent "+cfg.Agent, err)
		return
	}
	if !slices.Contains(agent.Capabilities.Providers, cfg.Provider.Kind()) {
		writeProblem(w, r, http.StatusUnprocessableEntity, ProblemInvalidRequest,
			"agent "+cfg.Agent+" does not offer provider "+strconv.Quote(cfg.Provider.Kind()))
		return
	}
	v, err := h.cfg.Pools.Configure(r.Context(), owner, repo, workflows.ConfigureRequest{Config: cfg, Actor: IdentityFrom(r.Context()).Subject})
	if err != nil {
		h.backendError(w, r, "configure "+owner+"/"+repo, err)
		return
	}
	h.log.Info("Pool configured", "repository", owner+"/"+repo, "actor", IdentityFrom(r.Context()).Subject)
	writeJSON(w, http.StatusOK, v)
}

func (h *handlers) getPool(w http.ResponseWriter, r *http.Request) (workflows.PoolView, bool) {
	owner, repo, ok := h.repoParams(w, r)
	if !ok {
		return workflows.PoolView{}, false
	}
	v, err := h.cfg.Pools.Get(r.Context(), owner, repo)
	if err != nil {
		h.backendError(w, r, "get pool of "+owner+"/"+repo, err)
		return v, false
	}
	return v, true
}

func (h *handlers) getRepository(w http.ResponseWriter, r *http.Request) {
	if v, ok := h.getPool(w, r); ok {
		writeJSON(w, http.StatusOK, v)
	}
}

func (h *handlers) getRepositoryRunners(w http.ResponseWriter, r *http.Request) {
	if v, ok := h.getPool(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]any{"runners": v.Runners})
	}
}

func (h *handlers) getRepositoryJobs(w http.ResponseWriter, r *http.Request) {
	if v, ok := h.getPool(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]any{"jobs": v.Queue})
	}
}

func (h *handlers) deleteRepository(w http.ResponseWriter, r *http.Request) {
	owner, repo, ok := h.repoParams(w, r)
	if !ok {
		return
	}
	v, err := h.cfg.Pools.Drain(r.Context(), owner, repo, workflows.DrainRequest{Actor: IdentityFrom(r.Context()).Subject})
	if err != nil {
		h.backendError(w, r, "drain pool of "+owner+"/"+repo, err)
		return
	}
	h.log.Info("Pool draining", "repository", owner+"/"+repo, "actor", IdentityFrom(r.Context()).Subject)
	writeJSON(w, http.StatusAccepted, v)
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
	pools, next, err := h.cfg.Pools.List(r.Context(), limit, r.URL.Query().Get("cursor"), agent)
	if err != nil {
		h.backendError(w, r, "list pools", err)
		return
	}
	if pools == nil {
		pools = []workflows.PoolView{}
	}
	writeJSON(w, http.StatusOK, PoolList{Repositories: pools, NextCursor: next})
}

// AgentConfig is the answer of GET /api/v1/agents/{name}/config: the
// repositories the agent serves, with their runner configs.
type AgentConfig struct {
	Agent        string           `json:"agent"`
	Repositories []RepositoryConf `json:"repositories"`
}

// RepositoryConf is one repository an agent serves.
type RepositoryConf struct {
	Repository string               `json:"repository"`
	Config     workflows.PoolConfig `json:"config"`
}

// maxConfigPools bounds the pools one agent's config lists.
const maxConfigPools = 1000

// agentConfig answers with the agent's repositories; an ETag over the
// body lets a polling agent get 304 while nothing changed.
func (h *handlers) agentConfig(w http.ResponseWriter, r *http.Request) {
	name, ok := h.agentName(w, r)
	if !ok {
		return
	}
	pools, _, err := h.cfg.Pools.List(r.Context(), maxConfigPools, "", name)
	if err != nil {
		h.backendError(w, r, "config of agent "+name, err)
		return
	}
	cfg := AgentConfig{Agent: name, Repositories: []RepositoryConf{}}
	for _, p := range pools {
		if !p.Draining {
			cfg.Repositories = append(cfg.Repositories, RepositoryConf{Repository: p.Repository, Config: p.Config})
		}
	}
	sort.Slice(cfg.Repositories, func(i, j int) bool { return cfg.Repositories[i].Repository < cfg.Repositories[j].Repository })
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
