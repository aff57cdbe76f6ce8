package githubsim

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// AppID and InstallationID are the simulated GitHub App's ids.
const (
	AppID          = 1
	InstallationID = 1
)

// Options configure a simulator.
type Options struct {
	// WebhookURL receives every repository's workflow_job events, as a
	// GitHub App's webhook does; empty sends none.
	WebhookURL    string
	WebhookSecret string
	Seed          int64
	// RateLimit is each token's hourly budget (default 15000).
	RateLimit int
	// RunnerOfflineAfter marks a simulated runner offline, and fails its
	// job, when it has not been heard from for this long (default 5s).
	RunnerOfflineAfter time.Duration
	// RunnerRemoveAfter removes a runner that has been offline this long,
	// as GitHub removes stale self-hosted runners (default 24h).
	RunnerRemoveAfter time.Duration
	// WebhookConcurrency is how many deliveries are in flight at once
	// (default 16). GitHub sends several at once, so events may arrive out
	// of order; 1 sends them in order.
	WebhookConcurrency int
	// DeliveryLog is how many delivery attempts the simulator keeps, the
	// oldest dropped (default DefaultDeliveryLog).
	DeliveryLog int
	Logger      *slog.Logger
}

// Sim is a running simulator. Its Handler serves both GitHub's REST API and
// the control API.
type Sim struct {
	opts    Options
	st      *state
	faults  *faults
	hooks   *webhooks
	limits  *rateLimits
	stats   *stats
	baseURL string
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	// instances are the runners it hosts for the sim provider.
	instances instances
}

// New starts a simulator's background work (webhook deliveries, runner
// liveness); Close stops it.
func New(opts Options) *Sim {
	if opts.RateLimit == 0 {
		opts.RateLimit = 15000
	}
	if opts.RunnerOfflineAfter == 0 {
		opts.RunnerOfflineAfter = 5 * time.Second
	}
	if opts.RunnerRemoveAfter == 0 {
		opts.RunnerRemoveAfter = 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.WebhookConcurrency <= 0 {
		opts.WebhookConcurrency = 16
	}
	if opts.DeliveryLog <= 0 {
		opts.DeliveryLog = DefaultDeliveryLog
	}
	f := newFaults(opts.Seed)
	s := &Sim{opts: opts, st: newState(), faults: f, hooks: newWebhooks(opts.WebhookURL, opts.WebhookSecret, opts.WebhookConcurrency, opts.DeliveryLog, f, opts.Logger),
		limits: newRateLimits(opts.RateLimit), stats: newStats()}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1 + opts.WebhookConcurrency)
	for range opts.WebhookConcurrency {
		go func() { defer s.wg.Done(); s.hooks.run(ctx) }()
	}
	go func() { defer s.wg.Done(); s.watchRunners(ctx) }()
	return s
}

// Close stops the background work.
func (s *Sim) Close() {
	s.closeInstances()
	s.cancel()
	s.wg.Wait()
}

// SetBaseURL tells the simulator its own URL, for the URLs in its answers.
func (s *Sim) SetBaseURL(u string) { s.baseURL = strings.TrimSuffix(u, "/") }

// Handler serves GitHub's REST API at / and /api/v3/, the simulated runners'
// protocol at /_sim/runner/, and the control API at /_sim/.
func (s *Sim) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(s.logRequests(r))
	r.Route("/_sim", func(r chi.Router) {
		r.Post("/repos", s.createRepo)
		r.Post("/jobs", s.enqueueJobs)
		r.Post("/runs", s.enqueueRun)
		r.Get("/jobs", s.listJobs)
		r.Get("/runners", s.listSimRunners)
		r.Get("/stats", s.getStats)
		r.Get("/deliveries", s.listDeliveries)
		r.Post("/deliveries/{id}/redeliver", s.redeliver)
		r.Put("/faults", s.putFaults)
		r.Get("/faults", s.getFaults)
		r.Post("/reset", s.reset)
		r.Post("/instances", s.createInstance)
		r.Get("/instances", s.listInstances)
		r.Get("/instances/{name}", s.getInstance)
		r.Delete("/instances/{name}", s.deleteInstance)
		r.Route("/runner", func(r chi.Router) {
			r.Post("/register", s.runnerRegister)
			r.Post("/connect", s.runnerConnect)
			r.Post("/acquire", s.runnerAcquire)
			r.Post("/complete", s.runnerComplete)
			r.Post("/heartbeat", s.runnerHeartbeat)
			r.Post("/exit", s.runnerExit)
		})
	})
	// A GitHub Enterprise Server without runner scale sets answers 404 here,
	// authenticated or not.
	r.Post("/actions/runner-registration", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Not Found")
	})
	gh := s.githubRoutes()
	r.Mount("/api/v3", gh)
	r.Mount("/", gh)
	return r
}

// logRequests counts every request by the route of root that serves it
// and its status, the host-root and control routes too (GitHub's under
// /api/v3 count as the same route at /), and logs each at debug level:
// method, path, status and time taken; never a header (tokens travel
// there).
func (s *Sim) logRequests(root *chi.Mux) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			began := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			route := strings.TrimPrefix(root.Find(chi.NewRouteContext(), r.Method, r.URL.Path), "/api/v3")
			if route == "" {
				route = "unknown"
			}
			s.stats.add(fmt.Sprintf("%s %s %d", r.Method, route, ww.Status()))
			s.opts.Logger.Debug("Request", "method", r.Method, "path", r.URL.Path, "status", ww.Status(),
				"duration", time.Since(began))
		})
	}
}

// --- control API ---

// RepoRequest is the body of POST /_sim/repos: a repository with its own
// webhook (repositories without one use the app-wide webhook).
type RepoRequest struct {
	Repo          string `json:"repo"`
	WebhookURL    string `json:"webhookUrl"`
	WebhookSecret string `json:"webhookSecret"`
}

// decodeControl reads a control request's JSON body, strictly; on failure
// it has answered 400.
func decodeControl(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid body: "+err.Error())
		return false
	}
	return true
}

// splitRepo splits "owner/name"; on failure it has answered 400.
func splitRepo(w http.ResponseWriter, full string) (string, string, bool) {
	owner, name, ok := strings.Cut(full, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		writeError(w, http.StatusBadRequest, "repo must be owner/name")
		return "", "", false
	}
	return owner, name, true
}

func (s *Sim) createRepo(w http.ResponseWriter, r *http.Request) {
	var req RepoRequest
	if !decodeControl(w, r, &req) {
		return
	}
	owner, name, ok := splitRepo(w, req.Repo)
	if !ok {
		return
	}
	id := s.CreateRepo(owner, name, req.WebhookURL, req.WebhookSecret)
	writeJSON(w, http.StatusCreated, map[string]any{"repo": req.Repo, "id": id})
}

// CreateRepo creates owner/name (or updates it) with its own webhook.
func (s *Sim) CreateRepo(owner, name, webhookURL, webhookSecret string) int64 {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	repo := s.st.repo(owner, name)
	repo.hookURL, repo.hookSecret = webhookURL, webhookSecret
	return repo.id
}

// EnqueueRequest is the body of POST /_sim/jobs.
type EnqueueRequest struct {
	Repo       string   `json:"repo"`
	Labels     []string `json:"labels"`
	DurationMs int64    `json:"durationMs"`
	Count      int      `json:"count"`
	Name       string   `json:"name"`
}

func (s *Sim) enqueueJobs(w http.ResponseWriter, r *http.Request) {
	var req EnqueueRequest
	if !decodeControl(w, r, &req) {
		return
	}
	owner, name, ok := splitRepo(w, req.Repo)
	if !ok {
		return
	}
	if req.Count == 0 {
		req.Count = 1
	}
	if req.Count < 0 || req.Count > 10000 || req.DurationMs < 0 {
		writeError(w, http.StatusBadRequest, "count must be 1-10000 and durationMs >= 0")
		return
	}
	if len(req.Labels) == 0 {
		req.Labels = []string{"self-hosted"}
	}
	if req.Name == "" {
		req.Name = "build"
	}
	ids := s.Enqueue(owner, name, req.Labels, time.Duration(req.DurationMs)*time.Millisecond, req.Count, req.Name)
	writeJSON(w, http.StatusCreated, map[string]any{"ids": ids})
}

// RunRequest is the body of POST /_sim/runs.
type RunRequest struct {
	Repo       string   `json:"repo"`
	Jobs       []RunJob `json:"jobs"`
	Sequential bool     `json:"sequential"`
}

// enqueueRun starts a workflow run of several jobs: 201 {"runId","ids"}.
func (s *Sim) enqueueRun(w http.ResponseWriter, r *http.Request) {
	var req RunRequest
	if !decodeControl(w, r, &req) {
		return
	}
	owner, name, ok := splitRepo(w, req.Repo)
	if !ok {
		return
	}
	if len(req.Jobs) == 0 || len(req.Jobs) > 256 {
		writeError(w, http.StatusBadRequest, "jobs: want 1 to 256")
		return
	}
	for i, j := range req.Jobs {
		if j.DurationMs < 0 {
			writeError(w, http.StatusBadRequest, "durationMs must be >= 0")
			return
		}
		if j.Name == "" {
			req.Jobs[i].Name = fmt.Sprintf("job-%d", i+1)
		}
	}
	runID, ids := s.EnqueueRun(owner, name, req.Jobs, req.Sequential)
	writeJSON(w, http.StatusCreated, map[string]any{"runId": runID, "ids": ids})
}

// Enqueue queues count jobs in owner/name, each one its own workflow run,
// and sends their queued webhooks.
func (s *Sim) Enqueue(owner, name string, labels []string, d time.Duration, count int, jobName string) []int64 {
	var ids []int64
	for range count {
		_, runIDs := s.EnqueueRun(owner, name, []RunJob{{Name: jobName, Labels: labels, DurationMs: d.Milliseconds()}}, false)
		ids = append(ids, runIDs...)
	}
	return ids
}

// RunJob is one job of a workflow run to queue.
type RunJob struct {
	Name       string   `json:"name"`
	Labels     []string `json:"labels"`
	DurationMs int64    `json:"durationMs"`
	// Conclusion is how the job will end; empty is success.
	Conclusion string `json:"conclusion,omitempty"`
}

// EnqueueRun starts a workflow run of owner/name with jobs, all queued at
// once, or each only when the one before it has completed (sequential,
// as needs: does), and sends the queued webhooks. It returns the run's id
// and its jobs' ids.
func (s *Sim) EnqueueRun(owner, name string, jobs []RunJob, sequential bool) (int64, []int64) {
	s.st.mu.Lock()
	repo := s.st.repo(owner, name)
	var all []*Job
	var ids []int64
	for _, rj := range jobs {
		labels := rj.Labels
		if len(labels) == 0 {
			labels = []string{"self-hosted"}
		}
		j := &Job{ID: s.st.id(), Name: rj.Name, Labels: append([]string(nil), labels...), DurationMs: rj.DurationMs,
			Outcome: rj.Conclusion}
		all = append(all, j)
		ids = append(ids, j.ID)
	}
	r, queued := s.st.newRun(repo.fullName(), all, sequential)
	var events []*Job
	for _, j := range queued {
		c := *j
		events = append(events, &c)
	}
	s.st.mu.Unlock()
	for _, j := range events {
		s.jobWebhook("queued", repo, j)
	}
	return r.id, ids
}

// queueNext queues the next job of j's run, if any, after j completed,
// and sends its webhook; the caller holds the lock, and calls the
// returned function once it has released it.
func (s *Sim) queueNext(j *Job) (send func()) {
	n := s.st.next(j)
	if n == nil {
		return func() {}
	}
	c := *n
	repo := s.st.repoOf(n.Repo)
	return func() { s.jobWebhook("queued", repo, &c) }
}

func (s *Sim) listJobs(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	jobs := []Job{}
	for _, j := range s.st.jobsOf(r.URL.Query().Get("repo")) {
		jobs = append(jobs, *j)
	}
	s.st.mu.Unlock()
	writeJSON(w, http.StatusOK, jobs)
}

func (s *Sim) listSimRunners(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Runners(r.URL.Query().Get("repo")))
}

// Runners returns the registered runners of repo (all when empty).
func (s *Sim) Runners(repo string) []Runner {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	out := []Runner{}
	for _, rn := range s.st.runners {
		if repo == "" || sameRepo(rn.Repo, repo) {
			out = append(out, *rn)
		}
	}
	sortRunners(out)
	return out
}

// Jobs returns the jobs of repo (all when empty), oldest first.
func (s *Sim) Jobs(repo string) []Job {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	var out []Job
	for _, j := range s.st.jobsOf(repo) {
		out = append(out, *j)
	}
	return out
}

// Secrets returns every JIT config, registration, remove and
// installation token and runner credential the simulator handed out, for
// tests that check where they went.
func (s *Sim) Secrets() []string {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	return append([]string(nil), s.st.issued...)
}

// Stats is the answer of GET /_sim/stats.
type Stats struct {
	// Requests counts GitHub REST requests by "METHOD route status".
	Requests          map[string]int `json:"requests"`
	WebhooksSent      int            `json:"webhooksSent"`
	WebhooksFailed    int            `json:"webhooksFailed"`
	WebhooksDropped   int            `json:"webhooksDropped"`
	RunnersRegistered int            `json:"runnersRegistered"`
}

// Stats returns the counters.
func (s *Sim) Stats() Stats {
	st := Stats{Requests: s.stats.snapshot(), RunnersRegistered: s.stats.runnersRegistered()}
	s.hooks.mu.Lock()
	st.WebhooksSent, st.WebhooksFailed, st.WebhooksDropped = s.hooks.sent, s.hooks.failed, s.hooks.dropped
	s.hooks.mu.Unlock()
	return st
}

func (s *Sim) getStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

// Deliveries returns the webhook delivery log, oldest first.
func (s *Sim) Deliveries() []Delivery { return s.hooks.deliveries() }

// WebhooksIdle reports whether every webhook enqueued so far was processed.
func (s *Sim) WebhooksIdle() bool { return s.hooks.idle() }

func (s *Sim) redeliver(w http.ResponseWriter, r *http.Request) {
	if !s.hooks.redeliver(chi.URLParam(r, "id")) {
		writeError(w, http.StatusNotFound, "no such delivery")
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Sim) listDeliveries(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.hooks.deliveries())
}

func (s *Sim) putFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if !decodeControl(w, r, &f) {
		return
	}
	for _, rf := range f.Routes {
		switch rf.Kind {
		case FaultError, FaultPrimaryRateLimit, FaultSecondaryRateLimit, FaultLatency:
		default:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown fault kind %q", rf.Kind))
			return
		}
	}
	s.SetFaults(f)
	writeJSON(w, http.StatusOK, f)
}

// SetFaults replaces the faults and reseeds their random source.
func (s *Sim) SetFaults(f Faults) { s.faults.set(f) }

func (s *Sim) getFaults(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.faults.get())
}

func (s *Sim) reset(w http.ResponseWriter, r *http.Request) {
	s.Reset()
	w.WriteHeader(http.StatusNoContent)
}

// Reset forgets every repository, runner, job, token, fault and counter.
func (s *Sim) Reset() {
	s.st.mu.Lock()
	fresh := newState()
	s.st.repos, s.st.orgs, s.st.runners, s.st.jobs, s.st.tokens = fresh.repos, fresh.orgs, fresh.runners, fresh.jobs, fresh.tokens
	s.st.signalJobs()
	s.st.mu.Unlock()
	s.faults.set(Faults{Seed: s.opts.Seed})
	s.hooks.reset()
	s.stats.reset()
	s.limits.reset()
}

// watchRunners marks runners offline when they fall silent, failing the job
// they ran, as GitHub does when a runner is lost mid-job.
func (s *Sim) watchRunners(ctx context.Context) {
	t := time.NewTicker(s.opts.RunnerOfflineAfter / 5)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.st.mu.Lock()
		var failed []*Job
		var repos []*repository
		for _, rn := range s.st.runners {
			if rn.Status == RunnerOnline && time.Since(rn.LastSeen) > s.opts.RunnerOfflineAfter {
				rn.Status = RunnerOffline
				if j, ok := s.st.jobs[rn.JobID]; ok && j.Status == StatusInProgress {
					s.finishJob(j, "failure")
					c := *j
					failed = append(failed, &c)
					repos = append(repos, s.st.repoOf(j.Repo))
				}
				rn.Busy, rn.JobID = false, 0
				if rn.Ephemeral && rn.jobsDone > 0 {
					delete(s.st.runners, rn.ID)
				}
			}
			seen := rn.LastSeen
			if seen.IsZero() {
				seen = rn.CreatedAt
			}
			if rn.Status == RunnerOffline && !rn.Busy && time.Since(seen) > s.opts.RunnerRemoveAfter {
				delete(s.st.runners, rn.ID)
			}
		}
		s.st.mu.Unlock()
		for i, j := range failed {
			s.jobWebhook("completed", repos[i], j)
		}
	}
}

// finishJob completes j and queues the next job of its run, if any; the
// caller holds the lock, and calls the returned function, which sends the
// next job's webhook, once it has released it.
func (s *Sim) finishJob(j *Job, conclusion string) (sendNext func()) {
	t := now()
	j.Status, j.Conclusion, j.CompletedAt = StatusCompleted, conclusion, &t
	return s.queueNext(j)
}

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers as GitHub does: {"message", "documentation_url"}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"})
}

func atoi64(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}
