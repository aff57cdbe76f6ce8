package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/garo-run/garo/workflows"
)

// Agents is the control plane of agents, backed by their workflows.
type Agents interface {
	Register(ctx context.Context, name string, req workflows.RegisterRequest) (workflows.AgentState, error)
	Heartbeat(ctx context.Context, name string, req workflows.HeartbeatRequest) (workflows.AgentState, error)
	// Unregister starts unregistering the agent: its pools drain, then it
	// ends. It returns the record once the workflow has accepted it.
	Unregister(ctx context.Context, name string, req workflows.UnregisterRequest) (workflows.AgentState, error)
	Get(ctx context.Context, name string) (workflows.AgentState, error)
	List(ctx context.Context, limit int, cursor string) (agents []workflows.AgentState, next string, err error)
}

// AgentList is the answer of GET /api/v1/agents.
type AgentList struct {
	Agents     []workflows.AgentState `json:"agents"`
	NextCursor string                 `json:"nextCursor,omitempty"`
}

// Pagination limits of lists.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

func (h *handlers) agentName(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := chi.URLParam(r, "name")
	if err := workflows.ValidateAgentName(name); err != nil {
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, err.Error())
		return "", false
	}
	return name, true
}

func (h *handlers) registerAgent(w http.ResponseWriter, r *http.Request) {
	name, ok := h.agentName(w, r)
	if !ok {
		return
	}
	var caps workflows.AgentCapabilities
	if !decodeJSON(w, r, &caps, true) {
		return
	}
	req := workflows.RegisterRequest{
		Capabilities:      caps,
		HeartbeatInterval: workflows.Duration(h.cfg.HeartbeatInterval),
		OfflineAfter:      workflows.Duration(h.cfg.OfflineAfter),
		Actor:             IdentityFrom(r.Context()).Subject,
	}
	if err := workflows.ValidateRegisterRequest(req); err != nil {
		writeProblem(w, r, http.StatusUnprocessableEntity, ProblemInvalidRequest, err.Error())
		return
	}
	st, err := h.cfg.Agents.Register(r.Context(), name, req)
	if err != nil {
		h.backendError(w, r, "register agent "+name, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (h *handlers) heartbeatAgent(w http.ResponseWriter, r *http.Request) {
	name, ok := h.agentName(w, r)
	if !ok {
		return
	}
	var req workflows.HeartbeatRequest
	if !decodeJSON(w, r, &req, true) {
		return
	}
	st, err := h.cfg.Agents.Heartbeat(r.Context(), name, req)
	if err != nil {
		h.backendError(w, r, "heartbeat of agent "+name, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// AgentView is an agent's record as GET /api/v1/agents/{name} shows it:
// while it is being unregistered, how far the drain of its pools has got.
type AgentView struct {
	workflows.AgentState
	Drain *DrainProgress `json:"drain,omitempty"`
}

// DrainProgress is what is left of an unregistering agent's pools.
type DrainProgress struct {
	Repositories int `json:"repositories"`
	Pools        int `json:"pools"`
	Runners      int `json:"runners"`
}

// view adds the drain's progress to an unregistering agent's record.
func (h *handlers) view(ctx context.Context, st workflows.AgentState) (AgentView, error) {
	v := AgentView{AgentState: st}
	if st.Status != workflows.AgentUnregistering {
		return v, nil
	}
	d := &DrainProgress{}
	for cursor := ""; ; {
		repos, next, err := h.cfg.Repositories.List(ctx, configPageSize, cursor, st.Name)
		if err != nil {
			return v, err
		}
		for _, r := range repos {
			pools := 0
			for _, p := range r.Pools {
				if p.Config.Agent == st.Name {
					c := p.Counts
					pools, d.Runners = pools+1, d.Runners+c.Provisioning+c.Idle+c.Busy+c.Deleting
				}
			}
			if pools > 0 {
				d.Repositories, d.Pools = d.Repositories+1, d.Pools+pools
			}
		}
		if next == "" || next == cursor {
			break
		}
		cursor = next
	}
	v.Drain = d
	return v, nil
}

// unregisterAgent starts unregistering the agent and answers 202 at once:
// its pools drain (busy runners finish their jobs), then it ends; GET
// shows how far the drain has got.
func (h *handlers) unregisterAgent(w http.ResponseWriter, r *http.Request) {
	name, ok := h.agentName(w, r)
	if !ok {
		return
	}
	req := workflows.UnregisterRequest{Actor: IdentityFrom(r.Context()).Subject, Reason: r.URL.Query().Get("reason")}
	st, err := h.cfg.Agents.Unregister(r.Context(), name, req)
	if err != nil {
		h.backendError(w, r, "unregister agent "+name, err)
		return
	}
	h.log.Info("Agent unregistering", "agent", name, "actor", req.Actor)
	v, err := h.view(r.Context(), st)
	if err != nil {
		h.backendError(w, r, "drain of agent "+name, err)
		return
	}
	writeJSON(w, http.StatusAccepted, v)
}

func (h *handlers) getAgent(w http.ResponseWriter, r *http.Request) {
	name, ok := h.agentName(w, r)
	if !ok {
		return
	}
	st, err := h.cfg.Agents.Get(r.Context(), name)
	if err != nil {
		h.backendError(w, r, "get agent "+name, err)
		return
	}
	v, err := h.view(r.Context(), st)
	if err != nil {
		h.backendError(w, r, "drain of agent "+name, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// pageLimit reads the limit of a list; on failure it has answered 400.
func pageLimit(w http.ResponseWriter, r *http.Request) (int, bool) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return DefaultPageSize, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxPageSize {
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, "limit must be an integer from 1 to 1000")
		return 0, false
	}
	return n, true
}

func (h *handlers) listAgents(w http.ResponseWriter, r *http.Request) {
	limit, ok := pageLimit(w, r)
	if !ok {
		return
	}
	state := workflows.AgentStatus(r.URL.Query().Get("state"))
	switch state {
	case "", workflows.AgentOnline, workflows.AgentOffline, workflows.AgentUnregistering:
	default:
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, "state must be online, offline or unregistering")
		return
	}
	agents, next, err := h.cfg.Agents.List(r.Context(), limit, r.URL.Query().Get("cursor"))
	if err != nil {
		h.backendError(w, r, "list agents", err)
		return
	}
	if state != "" {
		// Filtered within the page: a page may come back short.
		kept := agents[:0]
		for _, a := range agents {
			if a.Status == state {
				kept = append(kept, a)
			}
		}
		agents = kept
	}
	if agents == nil {
		agents = []workflows.AgentState{}
	}
	writeJSON(w, http.StatusOK, AgentList{Agents: agents, NextCursor: next})
}
