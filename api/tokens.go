package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/garo-run/garo/workflows"
)

// CreateTokenRequest is the body of POST /api/v1/tokens.
type CreateTokenRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// TokenView is a token as the API shows it: never its hash. Token is set
// once, in the answer that creates it.
type TokenView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy,omitempty"`
	Token     string    `json:"token,omitempty"`
}

func tokenView(r workflows.TokenRecord) TokenView {
	return TokenView{ID: r.ID, Name: r.Name, Role: r.Role, CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy}
}

func (h *handlers) tokenStore(w http.ResponseWriter, r *http.Request) (TokenStore, bool) {
	if h.cfg.Tokens.store == nil {
		writeProblem(w, r, http.StatusServiceUnavailable, ProblemUnavailable, "this server keeps no tokens")
		return nil, false
	}
	return h.cfg.Tokens.store, true
}

func (h *handlers) createToken(w http.ResponseWriter, r *http.Request) {
	store, ok := h.tokenStore(w, r)
	if !ok {
		return
	}
	var req CreateTokenRequest
	if !decodeJSON(w, r, &req, false) {
		return
	}
	id := strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(NewSecret()))[:12]
	token := apiTokenPrefix + id + "_" + NewSecret()
	rec := workflows.TokenRecord{ID: id, Name: req.Name, Role: req.Role, Hash: HashToken(token), CreatedBy: IdentityFrom(r.Context()).Subject}
	if err := workflows.ValidateTokenRecord(rec); err != nil {
		writeProblem(w, r, http.StatusUnprocessableEntity, ProblemInvalidRequest, err.Error())
		return
	}
	rec, err := store.CreateToken(r.Context(), rec)
	if err != nil {
		h.backendError(w, r, "create token", err)
		return
	}
	h.cfg.Tokens.forget("")
	h.log.Info("Token created", "id", rec.ID, "name", rec.Name, "role", rec.Role, "actor", rec.CreatedBy)
	v := tokenView(rec)
	v.Token = token
	writeJSON(w, http.StatusCreated, v)
}

func (h *handlers) listTokens(w http.ResponseWriter, r *http.Request) {
	store, ok := h.tokenStore(w, r)
	if !ok {
		return
	}
	recs, err := store.ListTokens(r.Context())
	if err != nil {
		h.backendError(w, r, "list tokens", err)
		return
	}
	out := make([]TokenView, 0, len(recs))
	for _, rec := range recs {
		out = append(out, tokenView(rec))
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

func (h *handlers) revokeToken(w http.ResponseWriter, r *http.Request) {
	store, ok := h.tokenStore(w, r)
	if !ok {
		return
	}
	id := chi.URLParam(r, "id")
	if err := store.RevokeToken(r.Context(), id, IdentityFrom(r.Context()).Subject); err != nil {
		h.backendError(w, r, "revoke token "+id, err)
		return
	}
	h.cfg.Tokens.forget("")
	h.log.Info("Token revoked", "id", id, "actor", IdentityFrom(r.Context()).Subject)
	w.WriteHeader(http.StatusNoContent)
}

// CreateAgentRequest is the body of POST /api/v1/agents.
type CreateAgentRequest struct {
	Name string `json:"name"`
}

// CreatedAgent is the answer of POST /api/v1/agents: the agent's token is
// shown this once.
type CreatedAgent struct {
	Agent workflows.AgentState `json:"agent"`
	Token string               `json:"token"`
}

func (h *handlers) createAgent(w http.ResponseWriter, r *http.Request) {
	store, ok := h.tokenStore(w, r)
	if !ok {
		return
	}
	var req CreateAgentRequest
	if !decodeJSON(w, r, &req, false) {
		return
	}
	if err := workflows.ValidateAgentName(req.Name); err != nil {
		writeProblem(w, r, http.StatusUnprocessableEntity, ProblemInvalidRequest, err.Error())
		return
	}
	token := agentTokenPrefix + req.Name + "_" + NewSecret()
	st, err := store.CreateAgent(r.Context(), req.Name, workflows.CreateAgentRequest{TokenHash: HashToken(token), Actor: IdentityFrom(r.Context()).Subject})
	if err != nil {
		h.backendError(w, r, "create agent "+req.Name, err)
		return
	}
	h.cfg.Tokens.forget(req.Name)
	h.log.Info("Agent created", "agent", req.Name, "actor", IdentityFrom(r.Context()).Subject)
	writeJSON(w, http.StatusCreated, CreatedAgent{Agent: st, Token: token})
}
