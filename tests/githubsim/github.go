package githubsim

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
)

// rateLimits keeps each token's primary budget, in hourly windows.
type rateLimits struct {
	mu     sync.Mutex
	limit  int
	byAuth map[string]*window
}

type window struct {
	used  int
	reset time.Time
}

func newRateLimits(limit int) *rateLimits {
	return &rateLimits{limit: limit, byAuth: map[string]*window{}}
}

// refund gives back the request auth last spent.
func (l *rateLimits) refund(auth string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w, ok := l.byAuth[auth]; ok && w.used > 0 {
		w.used--
	}
}

// window returns auth's current window without spending.
func (l *rateLimits) window(auth string) window {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w, ok := l.byAuth[auth]; ok && time.Now().Before(w.reset) {
		return *w
	}
	return window{reset: time.Now().Add(time.Hour).Truncate(time.Second)}
}

func (l *rateLimits) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byAuth = map[string]*window{}
}

// take spends one request of auth's budget; it reports the window after
// the request and whether the request is within the budget.
func (l *rateLimits) take(auth string) (window, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.byAuth[auth]
	if !ok || time.Now().After(w.reset) {
		w = &window{reset: time.Now().Add(time.Hour).Truncate(time.Second)}
		l.byAuth[auth] = w
	}
	if w.used >= l.limit {
		return *w, false
	}
	w.used++
	return *w, true
}

// stats counts REST requests by route and status.
type stats struct {
	mu       sync.Mutex
	requests map[string]int
	runners  int
}

func newStats() *stats { return &stats{requests: map[string]int{}} }

func (s *stats) add(key string) {
	s.mu.Lock()
	s.requests[key]++
	s.mu.Unlock()
}

func (s *stats) snapshot() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.requests))
	for k, v := range s.requests {
		out[k] = v
	}
	return out
}

func (s *stats) runnerRegistered() {
	s.mu.Lock()
	s.runners++
	s.mu.Unlock()
}

func (s *stats) runnersRegistered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runners
}

func (s *stats) reset() {
	s.mu.Lock()
	s.requests, s.runners = map[string]int{}, 0
	s.mu.Unlock()
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// githubRoutes is GitHub's REST API, mounted at / and /api/v3.
func (s *Sim) githubRoutes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.middleware)
	r.Get("/rate_limit", s.getRateLimit)
	r.Get("/app/installations", s.listInstallations)
	r.Post("/app/installations/{id}/access_tokens", s.createInstallationToken)
	r.Get("/app/hook/deliveries", s.listHookDeliveries)
	r.Get("/app/hook/deliveries/{delivery}", s.getHookDelivery)
	r.Post("/app/hook/deliveries/{delivery}/attempts", s.redeliverHookDelivery)
	// Runners and webhooks exist for repositories and, alike, for
	// organizations (whose runners serve every repository of theirs).
	shared := func(r chi.Router) {
		r.Get("/hooks", s.listHooks)
		r.Post("/hooks", s.createHook)
		r.Get("/hooks/{id}", s.getHook)
		r.Delete("/hooks/{id}", s.deleteHook)
		r.Post("/hooks/{id}/pings", s.pingHook)
		r.Get("/hooks/{id}/deliveries", s.listHookDeliveries)
		r.Get("/hooks/{id}/deliveries/{delivery}", s.getHookDelivery)
		r.Post("/hooks/{id}/deliveries/{delivery}/attempts", s.redeliverHookDelivery)
		r.Post("/actions/runners/generate-jitconfig", s.generateJITConfig)
		r.Post("/actions/runners/registration-token", s.createToken("registration"))
		r.Post("/actions/runners/remove-token", s.createToken("remove"))
		r.Get("/actions/runners/downloads", s.listDownloads)
		r.Get("/actions/runners", s.listRunners)
		r.Get("/actions/runners/{id}", s.getRunner)
		r.Delete("/actions/runners/{id}", s.deleteRunner)
	}
	r.Route("/orgs/{org}", shared)
	r.Route("/repos/{owner}/{repo}", func(r chi.Router) {
		shared(r)
		r.Get("/", s.getRepo)
		r.Get("/installation", s.getRepoInstallation)
		r.Get("/actions/runs", s.listRuns)
		r.Get("/actions/runs/{run}", s.getRun)
		r.Get("/actions/runs/{run}/jobs", s.listRunJobs)
		r.Get("/actions/jobs/{job}", s.getJob)
		r.Post("/actions/jobs/{job}/rerun", s.rerunJob)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { writeError(w, http.StatusNotFound, "Not Found") })
	return r
}

// middleware authenticates, applies the rate limit and route faults, and
// sets GitHub's rate-limit headers.
func (s *Sim) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		path := strings.TrimPrefix(r.URL.Path, "/api/v3")
		auth := r.Header.Get("Authorization")
		if auth == "" {
			writeError(rec, http.StatusUnauthorized, "Requires authentication")
			return
		}
		win, ok := s.limits.take(auth)
		s.setRateHeaders(rec.Header(), win)
		rec.Header().Set("X-GitHub-Request-Id", randomToken("")[:16])
		if !ok {
			writeJSON(rec, http.StatusForbidden, map[string]string{
				"message":           "API rate limit exceeded for installation ID 1.",
				"documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"})
			return
		}
		if f := s.faults.match(r, path); f != nil && !serveFault(rec, r, f) {
			return
		}
		if r.Method != http.MethodGet {
			next.ServeHTTP(rec, r)
			return
		}
		s.serveConditional(rec, r, auth, next)
	})
}

func (s *Sim) setRateHeaders(h http.Header, win window) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(s.limits.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(s.limits.limit-win.used))
	h.Set("X-RateLimit-Used", strconv.Itoa(win.used))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(win.reset.Unix(), 10))
	h.Set("X-RateLimit-Resource", "core")
}

// serveFault applies an injected fault; it reports whether the request
// goes on (after a latency) or has been answered.
func serveFault(w http.ResponseWriter, r *http.Request, f *RouteFault) bool {
	h := w.Header()
	switch f.Kind {
	case FaultLatency:
		select {
		case <-time.After(time.Duration(f.LatencyMs) * time.Millisecond):
			return true
		case <-r.Context().Done():
			return false
		}
	case FaultError:
		status := f.Status
		if status == 0 {
			status = http.StatusInternalServerError
		}
		writeError(w, status, "Server Error (injected)")
	case FaultPrimaryRateLimit:
		wait := max(f.RetryAfterSeconds, 1)
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Duration(wait)*time.Second).Unix(), 10))
		status := f.Status
		if status != http.StatusTooManyRequests {
			status = http.StatusForbidden
		}
		writeJSON(w, status, map[string]string{
			"message":           "API rate limit exceeded for installation ID 1.",
			"documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"})
	case FaultSecondaryRateLimit:
		h.Set("Retry-After", strconv.FormatInt(max(f.RetryAfterSeconds, 1), 10))
		writeJSON(w, http.StatusForbidden, map[string]string{
			"message":           "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
			"documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"})
	default:
		return true
	}
	return false
}

// serveConditional answers a GET with an ETag; If-None-Match that matches
// gets 304, which, as on GitHub, does not count against the rate limit.
func (s *Sim) serveConditional(rec *statusRecorder, r *http.Request, auth string, next http.Handler) {
	h := rec.Header()
	buf := &bufferedWriter{header: http.Header{}, status: http.StatusOK}
	next.ServeHTTP(buf, r)
	for k, v := range buf.header {
		h[k] = v
	}
	if r.URL.Path == "/rate_limit" || r.URL.Path == "/api/v3/rate_limit" {
		s.limits.refund(auth) // reading the budget does not spend it
		s.setRateHeaders(h, s.limits.window(auth))
	}
	if buf.status == http.StatusOK {
		sum := sha256.Sum256(buf.body.Bytes())
		etag := `W/"` + hex.EncodeToString(sum[:]) + `"`
		h.Set("ETag", etag)
		if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == etag || strings.TrimPrefix(inm, "W/") == strings.TrimPrefix(etag, "W/")) {
			s.limits.refund(auth)
			s.setRateHeaders(h, s.limits.window(auth))
			h.Del("Content-Type")
			rec.WriteHeader(http.StatusNotModified)
			return
		}
	}
	rec.WriteHeader(buf.status)
	_, _ = rec.Write(buf.body.Bytes())
}

// bufferedWriter holds an answer until its ETag is known.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header         { return b.header }
func (b *bufferedWriter) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedWriter) WriteHeader(code int)        { b.status = code }

// getRateLimit answers with the caller's budget: core is the budget the
// headers report; search and runner registration have GitHub's own.
func (s *Sim) getRateLimit(w http.ResponseWriter, r *http.Request) {
	win := s.limits.window(r.Header.Get("Authorization"))
	used := max(win.used-1, 0) // this request is refunded
	core := map[string]any{"limit": s.limits.limit, "remaining": s.limits.limit - used, "used": used, "reset": win.reset.Unix(), "resource": "core"}
	other := func(limit int, name string) map[string]any {
		return map[string]any{"limit": limit, "remaining": limit, "used": 0, "reset": win.reset.Unix(), "resource": name}
	}
	writeJSON(w, http.StatusOK, map[string]any{"resources": map[string]any{
		"core": core, "search": other(30, "search"), "actions_runner_registration": other(10000, "actions_runner_registration"),
	}, "rate": core})
}

func (s *Sim) listInstallations(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, []map[string]any{{"id": InstallationID, "app_id": AppID,
		"account": map[string]any{"login": "githubsim", "id": 1}, "target_type": "Organization"}})
}

func (s *Sim) createInstallationToken(w http.ResponseWriter, r *http.Request) {
	if chi.URLParam(r, "id") != strconv.Itoa(InstallationID) {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") || strings.Count(r.Header.Get("Authorization"), ".") != 2 {
		writeError(w, http.StatusUnauthorized, "A JSON web token could not be decoded")
		return
	}
	tok := randomToken("ghs_")
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	s.st.mu.Lock()
	s.st.tokens[tok] = tokenInfo{kind: "installation", expires: exp}
	s.st.issued = append(s.st.issued, tok)
	s.st.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "expires_at": exp.Format(time.RFC3339)})
}

// getRepo shows a repository (each exists on first use).
func (s *Sim) getRepo(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	repo := s.st.repo(chi.URLParam(r, "owner"), chi.URLParam(r, "repo"))
	out := map[string]any{"id": repo.id, "node_id": "R_" + strconv.FormatInt(repo.id, 10), "name": repo.name,
		"full_name": repo.fullName(), "private": true, "owner": map[string]any{"login": repo.owner, "type": "Organization"},
		"html_url": s.baseURL + "/" + repo.fullName(), "default_branch": "main"}
	s.st.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Sim) getRepoInstallation(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"id": InstallationID, "app_id": AppID})
}

// runnerJSON is a runner as GitHub's REST API shows it.
func runnerJSON(rn *Runner) map[string]any {
	labels := make([]map[string]any, 0, len(rn.Labels))
	for i, l := range rn.Labels {
		typ := "custom"
		if slices.Contains(defaultLabels, l) {
			typ = "read-only"
		}
		labels = append(labels, map[string]any{"id": i + 1, "name": l, "type": typ})
	}
	return map[string]any{"id": rn.ID, "name": rn.Name, "os": "Linux", "status": rn.Status,
		"busy": rn.Busy, "ephemeral": rn.Ephemeral, "labels": labels}
}

// defaultLabels are the labels GitHub gives every self-hosted runner.
var defaultLabels = []string{"self-hosted", "Linux", "X64"}

func withDefaultLabels(custom []string) []string {
	out := append([]string(nil), defaultLabels...)
	for _, l := range custom {
		if !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, l) }) {
			out = append(out, l)
		}
	}
	return out
}

// JITConfig is the decoded form of encoded_jit_config: a map of file names
// to base64 file contents, as GitHub's runner expects.
type JITConfig map[string]string

// RunnerFile is the simulator's content of the ".runner" file.
type RunnerFile struct {
	AgentID   int64  `json:"agentId"`
	AgentName string `json:"agentName"`
	PoolID    int64  `json:"poolId"`
	ServerURL string `json:"serverUrl"`
	GitHubURL string `json:"gitHubUrl"`
	Ephemeral bool   `json:"ephemeral"`
}

// CredentialsFile is the simulator's content of ".credentials".
type CredentialsFile struct {
	Scheme string            `json:"scheme"`
	Data   map[string]string `json:"data"`
}

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return base64.StdEncoding.EncodeToString(b)
}

func (s *Sim) encodeJIT(rn *Runner) string {
	cfg := JITConfig{
		".runner": b64json(RunnerFile{AgentID: rn.ID, AgentName: rn.Name, PoolID: rn.GroupID,
			ServerURL: s.baseURL + "/_sim/runner", GitHubURL: s.baseURL + "/" + strings.TrimPrefix(rn.Repo, "org:"), Ephemeral: rn.Ephemeral}),
		".credentials": b64json(CredentialsFile{Scheme: "OAuth", Data: map[string]string{
			"clientId": rn.credential, "authorizationUrl": s.baseURL + "/_sim/runner/connect", "requireFipsCryptography": "False"}}),
		".credentials_rsaparams": b64json(map[string]string{"d": "", "dp": "", "dq": "", "exponent": "AQAB", "inverseQ": "", "modulus": "", "p": "", "q": ""}),
	}
	b, _ := json.Marshal(cfg)
	return base64.StdEncoding.EncodeToString(b)
}

// newRunner registers a runner of scope; the caller holds the lock.
func (s *Sim) newRunner(scope string, name string, labels []string, group int64, ephemeral bool) *Runner {
	rn := &Runner{ID: s.st.id(), Name: name, Repo: scope, Status: RunnerOffline, CreatedAt: time.Now(),
		Labels: withDefaultLabels(labels), Ephemeral: ephemeral, GroupID: group, credential: randomToken("simcred_")}
	s.st.runners[rn.ID] = rn
	s.stats.runnerRegistered()
	return rn
}

func (s *Sim) generateJITConfig(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name          string   `json:"name"`
		RunnerGroupID int64    `json:"runner_group_id"`
		Labels        []string `json:"labels"`
		WorkFolder    string   `json:"work_folder"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	if req.Name == "" || len(req.Name) > 64 || req.RunnerGroupID < 1 || len(req.Labels) == 0 || len(req.Labels) > 100 {
		writeError(w, http.StatusUnprocessableEntity, "Validation Failed")
		return
	}
	s.st.mu.Lock()
	scope := s.scopeOf(r)
	if s.st.runnerByName(scope, req.Name) != nil {
		s.st.mu.Unlock()
		writeError(w, http.StatusConflict, "Already exists - A runner with the name "+req.Name+" already exists.")
		return
	}
	rn := s.newRunner(scope, req.Name, req.Labels, req.RunnerGroupID, true)
	jit := s.encodeJIT(rn)
	s.st.issued = append(s.st.issued, jit, rn.credential)
	body := map[string]any{"runner": runnerJSON(rn), "encoded_jit_config": jit}
	s.st.mu.Unlock()
	writeJSON(w, http.StatusCreated, body)
}

func (s *Sim) createToken(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := strings.ToUpper(randomToken("A"))[:29]
		exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		s.st.mu.Lock()
		s.st.tokens[tok] = tokenInfo{kind: kind, repo: s.scopeOf(r), expires: exp}
		s.st.issued = append(s.st.issued, tok)
		s.st.mu.Unlock()
		writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "expires_at": exp.Format(time.RFC3339)})
	}
}

func (s *Sim) listDownloads(w http.ResponseWriter, r *http.Request) {
	var out []map[string]any
	for _, p := range []struct{ os, arch, ext string }{
		{"linux", "x64", "tar.gz"}, {"linux", "arm64", "tar.gz"}, {"osx", "x64", "tar.gz"},
		{"osx", "arm64", "tar.gz"}, {"win", "x64", "zip"}, {"win", "arm64", "zip"},
	} {
		name := fmt.Sprintf("actions-runner-%s-%s-2.321.0.%s", p.os, p.arch, p.ext)
		out = append(out, map[string]any{"os": p.os, "architecture": p.arch, "filename": name,
			"download_url":    s.baseURL + "/_sim/downloads/" + name,
			"sha256_checksum": fmt.Sprintf("%064x", len(name))})
	}
	writeJSON(w, http.StatusOK, out)
}

// page applies GitHub's per_page and page to n items and sets the Link
// header; it returns the bounds of the page.
func (s *Sim) page(w http.ResponseWriter, r *http.Request, n int) (int, int) {
	perPage, page := 30, 1
	if v, err := strconv.Atoi(r.URL.Query().Get("per_page")); err == nil && v > 0 {
		perPage = min(v, 100)
	}
	if v, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && v > 0 {
		page = v
	}
	last := max(1, (n+perPage-1)/perPage)
	link := func(p int, rel string) string {
		u := *r.URL
		q := u.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(perPage))
		u.RawQuery = q.Encode()
		return fmt.Sprintf(`<%s%s>; rel="%s"`, s.baseURL, u.RequestURI(), rel)
	}
	var links []string
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if page > 1 {
		links = append(links, link(1, "first"), link(page-1, "prev"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	start := min((page-1)*perPage, n)
	return start, min(start+perPage, n)
}

func (s *Sim) listRunners(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	all := s.st.runnersOf(s.scopeOf(r))
	if name := r.URL.Query().Get("name"); name != "" {
		all = slices.DeleteFunc(all, func(rn *Runner) bool { return !strings.EqualFold(rn.Name, name) })
	}
	from, to := s.page(w, r, len(all))
	runners := make([]map[string]any, 0, to-from)
	for _, rn := range all[from:to] {
		runners = append(runners, runnerJSON(rn))
	}
	s.st.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(all), "runners": runners})
}

// scopeOf is the request's runner scope: "owner/repo", or "org:ORG" for
// an organization's routes. The caller holds the lock.
func (s *Sim) scopeOf(r *http.Request) string {
	if org := chi.URLParam(r, "org"); org != "" {
		return orgScope(s.st.org(org).name)
	}
	return s.st.repo(chi.URLParam(r, "owner"), chi.URLParam(r, "repo")).fullName()
}

func (s *Sim) runnerFromPath(w http.ResponseWriter, r *http.Request) *Runner {
	id, ok := atoi64(chi.URLParam(r, "id"))
	rn := s.st.runners[id]
	if !ok || rn == nil || !sameRepo(rn.Repo, s.scopeOf(r)) {
		writeError(w, http.StatusNotFound, "Not Found")
		return nil
	}
	return rn
}

func (s *Sim) getRunner(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	if rn := s.runnerFromPath(w, r); rn != nil {
		writeJSON(w, http.StatusOK, runnerJSON(rn))
	}
}

// deleteRunner removes a runner; a busy one cannot be, as on GitHub.
func (s *Sim) deleteRunner(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	rn := s.runnerFromPath(w, r)
	if rn == nil {
		return
	}
	if rn.Busy {
		writeError(w, http.StatusUnprocessableEntity, "Bad request - Runner \""+rn.Name+"\" is still running a job\"")
		return
	}
	delete(s.st.runners, rn.ID)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) runJSON(r *run, status, conclusion string) map[string]any {
	return map[string]any{"id": r.id, "name": "CI", "status": status, "conclusion": nullable(conclusion),
		"run_attempt": s.st.runAttempt(r.id), "head_branch": "main", "event": "push",
		"html_url":   s.baseURL + "/" + r.repo + "/actions/runs/" + strconv.FormatInt(r.id, 10),
		"created_at": r.createdAt.Format(time.RFC3339), "updated_at": s.st.runUpdatedAt(r).Format(time.RFC3339)}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func timeOrNull(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.Format(time.RFC3339)
}

// jobJSON is a job as the REST API and the webhook show it.
func (s *Sim) jobJSON(j *Job) map[string]any {
	runURL := s.baseURL + "/repos/" + j.Repo + "/actions/runs/" + strconv.FormatInt(j.RunID, 10)
	out := map[string]any{"id": j.ID, "run_id": j.RunID, "run_attempt": j.RunAttempt, "status": j.Status,
		"conclusion": nullable(j.Conclusion), "name": j.Name, "workflow_name": "CI", "head_branch": "main",
		"html_url": s.baseURL + "/" + j.Repo + "/actions/runs/" + strconv.FormatInt(j.RunID, 10) + "/job/" + strconv.FormatInt(j.ID, 10),
		"run_url":  runURL, "labels": j.Labels, "steps": []any{},
		"runner_id": nil, "runner_name": nil, "runner_group_id": nil, "runner_group_name": nil,
		"created_at": j.CreatedAt.Format(time.RFC3339), "started_at": timeOrNull(j.StartedAt),
		"completed_at": timeOrNull(j.CompletedAt)}
	if j.RunnerID != 0 {
		out["runner_id"], out["runner_name"] = j.RunnerID, j.RunnerName
		out["runner_group_id"], out["runner_group_name"] = 1, "Default"
	}
	return out
}

func (s *Sim) listRuns(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	repo := s.st.repo(chi.URLParam(r, "owner"), chi.URLParam(r, "repo"))
	status := r.URL.Query().Get("status")
	type listed struct {
		run                *run
		status, conclusion string
	}
	var runs []listed
	all := s.st.runsOf(repo.fullName())
	slices.Reverse(all) // newest first, as GitHub lists them
	for _, run := range all {
		if st, conclusion := s.st.runStatus(run); status == "" || st == status {
			runs = append(runs, listed{run, st, conclusion})
		}
	}
	from, to := s.page(w, r, len(runs))
	page := []map[string]any{}
	for _, l := range runs[from:to] {
		page = append(page, s.runJSON(l.run, l.status, l.conclusion))
	}
	s.st.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(runs), "workflow_runs": page})
}

func (s *Sim) getRun(w http.ResponseWriter, r *http.Request) {
	id, _ := atoi64(chi.URLParam(r, "run"))
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	run := s.st.runs[id]
	if run == nil || !sameRepo(run.repo, chi.URLParam(r, "owner")+"/"+chi.URLParam(r, "repo")) {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	status, conclusion := s.st.runStatus(run)
	writeJSON(w, http.StatusOK, s.runJSON(run, status, conclusion))
}

func (s *Sim) listRunJobs(w http.ResponseWriter, r *http.Request) {
	runID, _ := atoi64(chi.URLParam(r, "run"))
	s.st.mu.Lock()
	repo := s.st.repo(chi.URLParam(r, "owner"), chi.URLParam(r, "repo"))
	// filter=latest (the default) lists the jobs of the latest attempt;
	// filter=all every attempt's.
	latest := s.st.runAttempt(runID)
	all := r.URL.Query().Get("filter") == "all"
	var jobs []map[string]any
	for _, j := range s.st.jobsOf(repo.fullName()) {
		if j.RunID == runID && (all || j.RunAttempt == latest) {
			jobs = append(jobs, s.jobJSON(j))
		}
	}
	s.st.mu.Unlock()
	if jobs == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(jobs), "jobs": jobs})
}

func (s *Sim) getJob(w http.ResponseWriter, r *http.Request) {
	id, _ := atoi64(chi.URLParam(r, "job"))
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	j := s.st.jobs[id]
	if j == nil || !sameRepo(j.Repo, chi.URLParam(r, "owner")+"/"+chi.URLParam(r, "repo")) {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, s.jobJSON(j))
}

// jobWebhook sends the workflow_job event of j.
func (s *Sim) jobWebhook(action string, repo *repository, j *Job) {
	payload := map[string]any{
		"action":       action,
		"workflow_job": s.jobJSON(j),
		"repository": map[string]any{"id": repo.id, "name": repo.name, "full_name": repo.fullName(),
			"private": true, "owner": map[string]any{"login": repo.owner, "type": "Organization"},
			"html_url": s.baseURL + "/" + repo.fullName()},
		"sender":       map[string]any{"login": "githubsim-bot", "type": "Bot"},
		"installation": map[string]any{"id": InstallationID},
	}
	ev := newHookEvent("workflow_job", action, repo.fullName(), repo.id, j.ID, payload)
	for _, t := range s.targets(repo, "workflow_job") {
		s.hooks.enqueue(t, ev)
	}
}

// rerunJob queues a completed job again, as a new attempt of its run with
// a new job id, as GitHub does.
func (s *Sim) rerunJob(w http.ResponseWriter, r *http.Request) {
	id, _ := atoi64(chi.URLParam(r, "job"))
	s.st.mu.Lock()
	j := s.st.jobs[id]
	if j == nil || !sameRepo(j.Repo, chi.URLParam(r, "owner")+"/"+chi.URLParam(r, "repo")) {
		s.st.mu.Unlock()
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	if j.Status != StatusCompleted {
		s.st.mu.Unlock()
		writeError(w, http.StatusForbidden, "This workflow job cannot be rerun.")
		return
	}
	again := &Job{ID: s.st.id(), RunID: j.RunID, RunAttempt: j.RunAttempt + 1, Repo: j.Repo, Name: j.Name,
		Status: StatusQueued, Labels: j.Labels, DurationMs: j.DurationMs, CreatedAt: now()}
	s.st.addJob(again)
	s.st.signalJobs()
	c := *again
	repo := s.st.repoOf(j.Repo)
	s.st.mu.Unlock()
	s.jobWebhook("queued", repo, &c)
	writeJSON(w, http.StatusCreated, map[string]any{})
}
