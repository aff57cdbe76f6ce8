package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"sync"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/garo-run/garo/workflows"
)

// MaxWebhookBytes is GitHub's own cap on webhook payloads.
const MaxWebhookBytes = 25 << 20

// Limits on what a job event may carry into a workflow.
const (
	maxJobLabels   = 64
	maxJobLabelLen = 256
)

// JobSignaler delivers job events to the repository workflows.
type JobSignaler interface {
	// SignalJob returns ErrNotFound when the repository has no pool.
	SignalJob(ctx context.Context, owner, repo string, ev workflows.JobEvent) error
}

// Webhook receives GitHub's webhooks. Secrets are tried in order, so that a
// new one can be added before the old one is removed from GitHub.
type Webhook struct {
	secrets    [][]byte
	jobs       JobSignaler
	log        *slog.Logger
	deliveries *prometheus.CounterVec
	// signalSeconds is how long a delivery takes from its arrival to its
	// signal accepted by Temporal (durable before the 2xx).
	signalSeconds prometheus.Histogram
	// rejected limits the log lines of rejected deliveries, which anyone
	// can send.
	rejected *logLimiter
}

// NewWebhook returns the webhook handler; metrics are registered on reg.
func NewWebhook(secrets []string, jobs JobSignaler, log *slog.Logger, reg prometheus.Registerer) *Webhook {
	w := &Webhook{jobs: jobs, log: log, rejected: newLogLimiter(10 * time.Second),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "garo_webhook_deliveries_total",
			Help: "GitHub webhook deliveries by event and outcome.",
		}, []string{"event", "outcome"}),
	}
	for _, s := range secrets {
		if s != "" {
			w.secrets = append(w.secrets, []byte(s))
		}
	}
	w.signalSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "garo_webhook_signal_seconds",
		Help:    "Time from a workflow_job delivery's arrival to its signal accepted by Temporal.",
		Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
	})
	if reg != nil {
		reg.MustRegister(w.deliveries, w.signalSeconds)
	}
	return w
}

// count counts a delivery; the event label comes from a fixed set, since
// anyone can send any X-GitHub-Event before the signature is checked.
func (wh *Webhook) count(event, outcome string) {
	switch event {
	case "workflow_job", "ping":
	default:
		event = "other"
	}
	wh.deliveries.WithLabelValues(event, outcome).Inc()
}

// signaturePattern is the form of GitHub's X-Hub-Signature-256 header.
var signaturePattern = regexp.MustCompile(`^sha256=[0-9a-f]{64}$`)

// ServeHTTP checks the signature over the raw body before it parses
// anything, then turns workflow_job events into signals. It never waits on
// a workflow: a signal is accepted by Temporal or not.
func (wh *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	event := r.Header.Get("X-GitHub-Event")
	if len(wh.secrets) == 0 {
		wh.count(event, "unconfigured")
		writeProblem(w, r, http.StatusServiceUnavailable, ProblemUnavailable, "no webhook secret is configured on this server")
		return
	}
	sig := r.Header.Get("X-Hub-Signature-256")
	if !signaturePattern.MatchString(sig) {
		// No body is read for a delivery that cannot be signed.
		wh.reject(w, r, event, sig)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			wh.count(event, "too_large")
			writeProblem(w, r, http.StatusRequestEntityTooLarge, ProblemTooLarge, "the payload exceeds 25 MiB")
			return
		}
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, "read body")
		return
	}
	if !wh.validSignature(sig, body) {
		wh.reject(w, r, event, sig)
		return
	}
	payload, err := webhookPayload(r.Header.Get("Content-Type"), body)
	if err != nil {
		wh.count(event, "invalid")
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, err.Error())
		return
	}
	switch event {
	case "ping":
		wh.count(event, "ok")
		writeJSON(w, http.StatusOK, map[string]string{"status": "pong"})
	case "workflow_job":
		wh.workflowJob(w, r, payload, received)
	default:
		wh.count(event, "ignored")
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "ignored", "reason": "event not handled"})
	}
}

// reject answers a delivery without a valid signature: 401, counted, and
// logged at most once per interval, with how many were not.
func (wh *Webhook) reject(w http.ResponseWriter, r *http.Request, event, sig string) {
	wh.count(event, "bad_signature")
	if ok, suppressed := wh.rejected.allow(); ok {
		wh.log.Warn("Webhook rejected: missing or bad signature", "event", truncate(event, 64),
			"delivery", truncate(r.Header.Get("X-GitHub-Delivery"), 64), "signed", sig != "", "suppressed", suppressed)
	}
	writeProblem(w, r, http.StatusUnauthorized, ProblemUnauthorized, "missing or invalid X-Hub-Signature-256")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// logLimiter lets one log line through per interval and counts the rest.
type logLimiter struct {
	every      time.Duration
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func newLogLimiter(every time.Duration) *logLimiter { return &logLimiter{every: every} }

// allow reports whether a line may be logged now, and how many were
// suppressed since the last one.
func (l *logLimiter) allow() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}

func (wh *Webhook) validSignature(sig string, body []byte) bool {
	if sig == "" {
		return false
	}
	for _, s := range wh.secrets {
		if github.ValidateSignature(sig, body, s) == nil {
			return true
		}
	}
	return false
}

// webhookPayload returns the JSON of a delivery, which GitHub sends either
// as the body or as the form field "payload".
func webhookPayload(contentType string, body []byte) ([]byte, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch mt {
	case "application/json", "":
		return body, nil
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, errors.New("invalid form body")
		}
		return []byte(form.Get("payload")), nil
	}
	return nil, errors.New("unsupported content type " + mt)
}

func (wh *Webhook) workflowJob(w http.ResponseWriter, r *http.Request, payload []byte, received time.Time) {
	const event = "workflow_job"
	parsed, err := github.ParseWebHook(event, payload)
	if err != nil {
		wh.count(event, "invalid")
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, "invalid workflow_job payload")
		return
	}
	e, ok := parsed.(*github.WorkflowJobEvent)
	if !ok || e == nil { // a payload of null
		wh.count(event, "invalid")
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, "invalid workflow_job payload")
		return
	}
	ev, owner, repo, err := jobEvent(e, r.Header.Get("X-GitHub-Delivery"))
	if err != nil {
		wh.count(event, "invalid")
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, err.Error())
		return
	}
	switch ev.Action {
	case workflows.JobQueued, workflows.JobWaiting, workflows.JobInProgress, workflows.JobCompleted:
	default:
		wh.count(event, "ignored")
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "ignored", "reason": "action not handled"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	err = wh.jobs.SignalJob(ctx, owner, repo, ev)
	switch {
	case err == nil:
		wh.count(event, "signaled")
		wh.signalSeconds.Observe(time.Since(received).Seconds())
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted"})
	case errors.Is(err, ErrNotFound):
		wh.count(event, "no_pool")
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "ignored", "reason": "no runner pool for " + ev.Repository})
	default:
		wh.count(event, "error")
		wh.log.Error("Webhook not delivered to its pool; GitHub may redeliver", "repository", ev.Repository,
			"job", ev.JobID, "action", ev.Action, "delivery", ev.DeliveryID, "error", err)
		writeProblem(w, r, http.StatusServiceUnavailable, ProblemUnavailable, "could not deliver the event; redeliver later")
	}
}

// jobEvent turns a webhook payload into the signal it becomes.
func jobEvent(e *github.WorkflowJobEvent, delivery string) (workflows.JobEvent, string, string, error) {
	j := e.GetWorkflowJob()
	if j == nil || e.GetRepo() == nil || j.GetID() == 0 {
		return workflows.JobEvent{}, "", "", errors.New("workflow_job payload without job or repository")
	}
	owner, repo, err := workflows.ParseRepository(e.GetRepo().GetFullName())
	if err != nil {
		return workflows.JobEvent{}, "", "", err
	}
	if len(j.Labels) > maxJobLabels {
		return workflows.JobEvent{}, "", "", errors.New("too many labels")
	}
	for _, l := range j.Labels {
		if l == "" || len(l) > maxJobLabelLen {
			return workflows.JobEvent{}, "", "", errors.New("invalid label")
		}
	}
	if len(delivery) > 128 || len(j.GetRunnerName()) > 256 || len(j.GetName()) > 1024 {
		return workflows.JobEvent{}, "", "", errors.New("oversized field")
	}
	ev := workflows.JobEvent{
		DeliveryID: delivery,
		Action:     e.GetAction(),
		Repository: owner + "/" + repo,
		JobID:      j.GetID(),
		RunID:      j.GetRunID(),
		RunAttempt: j.GetRunAttempt(),
		Name:       j.GetName(),
		Labels:     j.Labels,
		RunnerID:   j.GetRunnerID(),
		RunnerName: j.GetRunnerName(),
		Conclusion: j.GetConclusion(),
	}
	ts := func(t *github.Timestamp) *time.Time {
		if t == nil || t.IsZero() {
			return nil
		}
		v := t.UTC()
		return &v
	}
	ev.CreatedAt, ev.StartedAt, ev.CompletedAt = ts(j.CreatedAt), ts(j.StartedAt), ts(j.CompletedAt)
	return ev, owner, repo, nil
}
