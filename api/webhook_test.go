package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/workflows"
)

type signal struct {
	owner, repo string
	ev          workflows.JobEvent
}

// recordingJobs records the signals the webhook sends.
type recordingJobs struct {
	mu      sync.Mutex
	signals []signal
	pools   map[string]bool
	err     error
}

func (r *recordingJobs) SignalJob(_ context.Context, owner, repo string, ev workflows.JobEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if !r.pools[workflows.RepositoryWorkflowID(owner, repo)] {
		return ErrNotFound
	}
	r.signals = append(r.signals, signal{owner, repo, ev})
	return nil
}

type webhookEnv struct {
	t      *testing.T
	jobs   *recordingJobs
	wh     *Webhook
	srv    *httptest.Server
	client *http.Client
}

const oldSecret, newSecret = "old-secret", "new-secret"

func newWebhookEnv(t *testing.T, secrets ...string) *webhookEnv {
	e := &webhookEnv{t: t, jobs: &recordingJobs{pools: map[string]bool{"garo/repo/octo/app": true}}}
	e.wh = NewWebhook(secrets, e.jobs, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	e.srv = httptest.NewServer(NewRouter(Config{Tokens: NewTokens("x", nil, 0), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Webhook: e.wh}))
	t.Cleanup(e.srv.Close)
	e.client = newSpecClient(t)
	return e
}

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (e *webhookEnv) deliver(event, signature, contentType string, body []byte) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.srv.URL+"/webhooks/github", bytes.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", "d-1")
	if signature != "" {
		req.Header.Set("X-Hub-Signature-256", signature)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := e.client.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func jobPayload(action, repo string) []byte {
	return []byte(`{"action":"` + action + `","workflow_job":{"id":42,"run_id":7,"run_attempt":1,"name":"build",
		"labels":["self-hosted","linux"],"runner_id":9,"runner_name":"r-abc","status":"in_progress","conclusion":null,
		"created_at":"2026-11-29T10:00:00Z","started_at":"2026-11-29T10:00:05Z","completed_at":null},
		"repository":{"name":"app","full_name":"` + repo + `","owner":{"login":"octo"}}}`)
}

func TestWebhookSignalsWorkflowJob(t *testing.T) {
	e := newWebhookEnv(t, oldSecret, newSecret)
	body := jobPayload("in_progress", "Octo/App")
	// Either secret is accepted while a rotation is under way.
	for _, s := range []string{newSecret, oldSecret} {
		resp, b := e.deliver("workflow_job", sign(s, body), "application/json", body)
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", b)
	}
	require.Len(t, e.jobs.signals, 2)
	ev := e.jobs.signals[0].ev
	assert.Equal(t, "Octo", e.jobs.signals[0].owner)
	assert.Equal(t, workflows.JobEvent{
		DeliveryID: "d-1", Action: "in_progress", Repository: "Octo/App", JobID: 42, RunID: 7, RunAttempt: 1,
		Name: "build", Labels: []string{"self-hosted", "linux"}, RunnerID: 9, RunnerName: "r-abc",
		CreatedAt: ptrTime("2026-11-29T10:00:00Z"), StartedAt: ptrTime("2026-11-29T10:00:05Z"),
	}, ev)
	assert.Equal(t, 2.0, testutil.ToFloat64(e.wh.deliveries.WithLabelValues("workflow_job", "signaled")))
	assert.Equal(t, 1, testutil.CollectAndCount(e.wh.signalSeconds), "the time to signal is measured")
	var m dto.Metric
	require.NoError(t, e.wh.signalSeconds.Write(&m))
	assert.Equal(t, uint64(2), m.GetHistogram().GetSampleCount(), "once per signal")
}

func ptrTime(s string) *time.Time {
	t, _ := time.Parse(time.RFC3339, s)
	return &t
}

func TestWebhookFormEncodedPayload(t *testing.T) {
	e := newWebhookEnv(t, newSecret)
	body := []byte("payload=" + url.QueryEscape(string(jobPayload("queued", "octo/app"))))
	resp, b := e.deliver("workflow_job", sign(newSecret, body), "application/x-www-form-urlencoded", body)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", b)
	require.Len(t, e.jobs.signals, 1)
	assert.Equal(t, "queued", e.jobs.signals[0].ev.Action)
}

func TestWebhookRejectsBadSignaturesBeforeParsing(t *testing.T) {
	e := newWebhookEnv(t, newSecret)
	garbage := []byte(`{not json`)
	for name, sig := range map[string]string{
		"missing":      "",
		"wrong secret": sign("guess", garbage),
		"sha1 only":    "sha1=0000",
		"malformed":    "sha256=zz",
	} {
		t.Run(name, func(t *testing.T) {
			resp, b := e.deliver("workflow_job", sig, "application/json", garbage)
			// 401, not 400: the body was never parsed.
			problem(t, resp, b, http.StatusUnauthorized, ProblemUnauthorized)
		})
	}
	assert.Empty(t, e.jobs.signals)
	assert.Equal(t, 4.0, testutil.ToFloat64(e.wh.deliveries.WithLabelValues("workflow_job", "bad_signature")))
}

func TestWebhookOversizedBody(t *testing.T) {
	e := newWebhookEnv(t, newSecret)
	body := bytes.Repeat([]byte("x"), MaxWebhookBytes+1)
	resp, b := e.deliver("workflow_job", sign(newSecret, body), "application/json", body)
	problem(t, resp, b, http.StatusRequestEntityTooLarge, ProblemTooLarge)
}

func TestWebhookOutcomes(t *testing.T) {
	e := newWebhookEnv(t, newSecret)
	cases := []struct {
		name, event string
		body        []byte
		status      int
		reason      string
	}{
		{"ping", "ping", []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`), 200, ""},
		{"other event", "push", []byte(`{"ref":"refs/heads/main"}`), 202, "event not handled"},
		{"no pool", "workflow_job", jobPayload("queued", "someone/else"), 202, "no runner pool for someone/else"},
		{"unknown action", "workflow_job", jobPayload("renamed", "octo/app"), 202, "action not handled"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, b := e.deliver(c.event, sign(newSecret, c.body), "application/json", c.body)
			require.Equal(t, c.status, resp.StatusCode, "%s", b)
			var got map[string]string
			require.NoError(t, json.Unmarshal(b, &got))
			assert.Equal(t, c.reason, got["reason"])
		})
	}
	assert.Empty(t, e.jobs.signals)
	assert.Equal(t, 1.0, testutil.ToFloat64(e.wh.deliveries.WithLabelValues("workflow_job", "no_pool")))
	assert.Equal(t, 1.0, testutil.ToFloat64(e.wh.deliveries.WithLabelValues("other", "ignored")), "events beyond a fixed set count as other")
}

func TestWebhookInvalidPayloads(t *testing.T) {
	e := newWebhookEnv(t, newSecret)
	for name, body := range map[string][]byte{
		"not json":     []byte(`{`),
		"null":         []byte(`null`),
		"bad repo":     jobPayload("queued", "octo/app/extra"),
		"no job":       []byte(`{"action":"queued","repository":{"full_name":"octo/app"}}`),
		"long label":   []byte(strings.Replace(string(jobPayload("queued", "octo/app")), `"linux"`, `"`+strings.Repeat("l", 300)+`"`, 1)),
		"content type": nil,
	} {
		t.Run(name, func(t *testing.T) {
			ct := "application/json"
			if body == nil {
				body, ct = jobPayload("queued", "octo/app"), "text/xml"
			}
			resp, b := e.deliver("workflow_job", sign(newSecret, body), ct, body)
			problem(t, resp, b, http.StatusBadRequest, ProblemInvalidRequest)
		})
	}
	assert.Empty(t, e.jobs.signals)
}

func TestWebhookUnavailableBackendAsksForRedelivery(t *testing.T) {
	e := newWebhookEnv(t, newSecret)
	e.jobs.err = ErrUnavailable
	body := jobPayload("queued", "octo/app")
	resp, b := e.deliver("workflow_job", sign(newSecret, body), "application/json", body)
	problem(t, resp, b, http.StatusServiceUnavailable, ProblemUnavailable)
}

func TestWebhookWithoutSecretRefusesEverything(t *testing.T) {
	e := newWebhookEnv(t)
	body := jobPayload("queued", "octo/app")
	resp, b := e.deliver("workflow_job", sign("", body), "application/json", body)
	problem(t, resp, b, http.StatusServiceUnavailable, ProblemUnavailable)
	assert.Empty(t, e.jobs.signals)
}

// countingReader counts the bytes read from a body.
type countingReader struct {
	r io.Reader
	n *int
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += n
	return n, err
}

// TestAnUnsignedFloodGrowsNothing: 100,000 unsigned deliveries, each with
// an event name of its own, leave the metric series, /metrics, the log and
// the heap as they were; no body is read without a signature header.
func TestAnUnsignedFloodGrowsNothing(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	wh := NewWebhook([]string{newSecret}, &recordingJobs{}, slog.New(slog.NewTextHandler(&logs, nil)), reg)
	series := func() int {
		n, err := testutil.GatherAndCount(reg)
		require.NoError(t, err)
		return n
	}
	metricsSize := func() int {
		rec := httptest.NewRecorder()
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.Len()
	}
	flood := func(from, n int) (read int) {
		for i := from; i < from+n; i++ {
			req := httptest.NewRequest("POST", "/webhooks/github", countingReader{strings.NewReader(`{"zen":"x"}`), &read})
			req.Header.Set("X-GitHub-Event", fmt.Sprintf("event-%d-%s", i, strings.Repeat("x", i%100)))
			if i%2 == 0 {
				req.Header.Set("X-Hub-Signature-256", "sha256=nothex")
			}
			rec := httptest.NewRecorder()
			wh.ServeHTTP(rec, req)
			require.Equal(t, http.StatusUnauthorized, rec.Code)
		}
		return read
	}
	flood(0, 1000)
	baseSeries, baseSize, baseLog := series(), metricsSize(), logs.Len()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	read := flood(1000, 100000)
	runtime.GC()
	runtime.ReadMemStats(&after)
	assert.Equal(t, baseSeries, series(), "no new series")
	assert.InDelta(t, baseSize, metricsSize(), 16, "/metrics does not grow (but for the digits of its counts)")
	assert.LessOrEqual(t, logs.Len()-baseLog, 2048, "a log line per interval, not per request")
	assert.Zero(t, read, "no body is read without a well-formed signature header")
	assert.Less(t, int64(after.HeapInuse)-int64(before.HeapInuse), int64(8<<20), "the heap stays flat")
	assert.Equal(t, 101000.0, testutil.ToFloat64(wh.deliveries.WithLabelValues("other", "bad_signature")))
}
