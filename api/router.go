// Package api is Garo's REST API: the portal's self-service endpoints, the
// agents' endpoints and the GitHub webhook, on a chi router.
package api

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/cors"

	"github.com/garo-run/garo/workflows"
)

// MaxBodyBytes bounds every request body of the REST API.
const MaxBodyBytes = 1 << 20

//go:embed openapi.yaml
var openAPISpec []byte

// OpenAPISpec returns the OpenAPI document of this API.
func OpenAPISpec() []byte { return openAPISpec }

// Config wires the router to its backends.
type Config struct {
	Agents       Agents
	Repositories Repositories
	Tokens       *Tokens
	Logger       *slog.Logger
	// Now is the clock of ages the API shows; nil is time.Now.
	Now func() time.Time
	// Ready reports whether the server can serve: Temporal reachable and
	// the worker started.
	Ready func(context.Context) error
	// Webhook serves POST /webhooks/github; nil answers 503.
	Webhook http.Handler
	// Metrics serves GET /metrics (Prometheus); nil serves none.
	Metrics http.Handler
	// HeartbeatInterval and OfflineAfter are the liveness policy handed to
	// agents when they register.
	HeartbeatInterval time.Duration
	OfflineAfter      time.Duration
	// CORSOrigins may call the API from a browser (a portal served
	// elsewhere); none by default.
	CORSOrigins []string
	// TemporalUI is the Temporal Web UI's address and Namespace Garo's
	// namespace, for links from the portal to each workflow.
	TemporalUI, Namespace string
	// Prices is the price list of runner-hours by provider option; every
	// configure carries it to the pool.
	Prices []workflows.ProviderPrice
	// RunnerReports takes the agents' reports of their runners; nil
	// answers 503.
	RunnerReports RunnerReports
}

// NewRouter returns the HTTP handler of the whole API.
func NewRouter(cfg Config) http.Handler {
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = workflows.DefaultHeartbeatInterval
	}
	if cfg.OfflineAfter == 0 {
		cfg.OfflineAfter = workflows.DefaultOfflineAfter
	}
	h := &handlers{cfg: cfg, log: cfg.Logger, usages: &usageCache{entries: map[string]usageEntry{}}}
	r := chi.NewRouter()
	r.Use(middleware.RequestID, h.logRequests, middleware.Recoverer)
	if len(cfg.CORSOrigins) > 0 {
		r.Use(corsHandler(cfg.CORSOrigins))
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusNotFound, ProblemNotFound, "no such route")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusMethodNotAllowed, ProblemMethodNotAllowed, r.Method+" is not allowed here")
	})
	h.publicRoutes(r)

	webhook := cfg.Webhook
	if webhook == nil {
		webhook = NewWebhook(nil, nil, cfg.Logger, nil)
	}
	r.Post("/webhooks/github", webhook.ServeHTTP)
	metrics := cfg.Metrics
	if metrics == nil {
		metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeProblem(w, r, http.StatusNotFound, ProblemNotFound, "this server serves no metrics")
		})
	}
	admin, reader := workflows.RoleAdmin, workflows.RoleReader
	read, write := allow(false, admin, reader), allow(false, admin)
	r.With(cfg.Tokens.requireToken, read).Get("/metrics", metrics.ServeHTTP)

	r.Route("/api/v1", func(r chi.Router) {
		r.Use(cfg.Tokens.requireToken)
		// Readers read; admins also write; an agent reaches only its own
		// /agents/{name} endpoints.
		r.With(read).Get("/status", h.status)
		r.With(read).Get("/agents", h.listAgents)
		r.With(write).Post("/agents", h.createAgent)
		r.With(allow(true, admin, reader)).Get("/agents/{name}", h.getAgent)
		r.With(allow(true, admin)).Delete("/agents/{name}", h.unregisterAgent)
		r.With(allow(true, admin)).Post("/agents/{name}/register", h.registerAgent)
		r.With(allow(true, admin)).Post("/agents/{name}/heartbeat", h.heartbeatAgent)
		r.With(allow(true, admin)).Post("/agents/{name}/runner-reports", h.reportRunners)
		r.With(allow(true, admin, reader)).Get("/agents/{name}/config", h.agentConfig)
		r.With(allow(true, admin, reader)).Get("/agents/{name}/usage", h.agentUsage)
		r.With(read).Get("/usage", h.usage)
		r.With(read).Get("/repositories", h.listRepositories)
		// /repositories/{owner}/{repo} is the default pool, as before
		// several pools.
		r.With(read).Get("/repositories/{owner}/{repo}", h.getPool)
		r.With(write).Put("/repositories/{owner}/{repo}", h.putPool)
		r.With(write).Patch("/repositories/{owner}/{repo}", h.patchPool)
		r.With(write).Delete("/repositories/{owner}/{repo}", h.deletePool)
		r.With(read).Get("/repositories/{owner}/{repo}/pools", h.listPools)
		r.With(read).Get("/repositories/{owner}/{repo}/pools/{pool}", h.getPool)
		r.With(write).Put("/repositories/{owner}/{repo}/pools/{pool}", h.putPool)
		r.With(write).Patch("/repositories/{owner}/{repo}/pools/{pool}", h.patchPool)
		r.With(write).Delete("/repositories/{owner}/{repo}/pools/{pool}", h.deletePool)
		r.With(read).Get("/repositories/{owner}/{repo}/runners", h.getRepositoryRunners)
		r.With(read).Get("/repositories/{owner}/{repo}/jobs", h.getRepositoryJobs)
		r.With(read).Get("/repositories/{owner}/{repo}/unmatched", h.getUnmatched)
		r.With(read).Get("/repositories/{owner}/{repo}/usage", h.repositoryUsage)
		r.With(write).Get("/tokens", h.listTokens)
		r.With(write).Post("/tokens", h.createToken)
		r.With(write).Delete("/tokens/{id}", h.revokeToken)
	})
	return r
}

type handlers struct {
	cfg    Config
	log    *slog.Logger
	usages *usageCache
}

func (h *handlers) now() time.Time {
	if h.cfg.Now != nil {
		return h.cfg.Now()
	}
	return time.Now()
}

// readyz answers without details, for anyone: why the server is not
// ready is for GET /api/v1/status.
func (h *handlers) readyz(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Ready != nil {
		if err := h.cfg.Ready(r.Context()); err != nil {
			writeProblem(w, r, http.StatusServiceUnavailable, ProblemUnavailable, "not ready")
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// corsHandler lets origins call the API from a browser. The token travels
// in Authorization, never in a cookie: no credentials mode.
func corsHandler(origins []string) func(http.Handler) http.Handler {
	return cors.Handler(cors.Options{AllowedOrigins: origins,
		AllowedMethods: []string{"GET", "POST", "PUT", "PATCH", "DELETE"},
		AllowedHeaders: []string{"Authorization", "Content-Type"},
		ExposedHeaders: []string{"Link", "Retry-After", "X-Request-Id"}, MaxAge: 600})
}

// publicRoutes are those that need no token: health, readiness, the
// OpenAPI document and the portal's files.
func (h *handlers) publicRoutes(r chi.Router) {
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", h.readyz)
	r.Get("/portal", servePortal)
	r.Get("/portal/", servePortal)
	r.Get("/portal/{file}", servePortal)
	r.Get("/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(openAPISpec)
	})
}

// ServerStatus is what GET /api/v1/status answers.
type ServerStatus struct {
	Ready  bool   `json:"ready"`
	Detail string `json:"detail,omitempty"`
	// Role is the caller's: what a portal shows it.
	Role string `json:"role"`
	// TemporalUI and Namespace make links to workflows in the Web UI.
	TemporalUI string `json:"temporalUI,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
}

// status tells a reader whether the server is ready, and why not, and
// who the caller is.
func (h *handlers) status(w http.ResponseWriter, r *http.Request) {
	st := ServerStatus{Ready: true}
	if h.cfg.Ready != nil {
		if err := h.cfg.Ready(r.Context()); err != nil {
			st = ServerStatus{Detail: err.Error()}
		}
	}
	st.Role, st.TemporalUI, st.Namespace = IdentityFrom(r.Context()).Role, h.cfg.TemporalUI, h.cfg.Namespace
	writeJSON(w, http.StatusOK, st)
}

// logRequests logs one line per request: method, route, status, duration.
// It never logs headers or bodies, which may hold secrets.
func (h *handlers) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		start := time.Now()
		next.ServeHTTP(ww, r)
		level := slog.LevelDebug
		if ww.Status() >= 500 && r.URL.Path != "/readyz" {
			level = slog.LevelWarn
		}
		h.log.Log(r.Context(), level, "HTTP request", "method", r.Method, "path", r.URL.Path,
			"status", ww.Status(), "duration", time.Since(start), "requestId", middleware.GetReqID(r.Context()))
	})
}

// readBody reads r's body: at most MaxBodyBytes, of one of the media
// types given (default application/json); a body without Content-Type is
// refused (415), and so is one that is not a JSON object (400). On failure it has answered the request and returns false.
func readBody(w http.ResponseWriter, r *http.Request, mediaTypes ...string) ([]byte, bool) {
	if len(mediaTypes) == 0 {
		mediaTypes = []string{"application/json"}
	}
	ct := r.Header.Get("Content-Type")
	if ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !slices.Contains(mediaTypes, mt) {
			writeProblem(w, r, http.StatusUnsupportedMediaType, ProblemUnsupportedMedia, "send "+strings.Join(mediaTypes, " or "))
			return nil, false
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err == nil && len(body) > 0 && ct == "" {
		writeProblem(w, r, http.StatusUnsupportedMediaType, ProblemUnsupportedMedia, "a body needs Content-Type "+strings.Join(mediaTypes, " or "))
		return nil, false
	}
	if trimmed := bytes.TrimSpace(body); err == nil && len(body) > 0 && (len(trimmed) == 0 || trimmed[0] != '{') {
		// Every body of this API is a JSON object: null, an array or a
		// bare value is no request.
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, "invalid JSON body: want an object")
		return nil, false
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeProblem(w, r, http.StatusRequestEntityTooLarge, ProblemTooLarge, "the body exceeds 1 MiB")
			return nil, false
		}
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, "read body: "+err.Error())
		return nil, false
	}
	return body, true
}

// decodeJSON reads r's body into v: at most MaxBodyBytes, JSON only, no
// unknown fields. An empty body leaves v as it is when allowEmpty. On
// failure it has answered the request and returns false.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) bool {
	body, ok := readBody(w, r)
	if !ok {
		return false
	}
	if len(body) == 0 && allowEmpty {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, "invalid JSON body: "+err.Error())
		return false
	}
	if dec.More() {
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, "invalid JSON body: trailing data")
		return false
	}
	return true
}
