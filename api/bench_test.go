package api

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkWebhookWorkflowJob measures one signed workflow_job delivery
// through the router: body read, signature check against two secrets (the
// new one second, as during a rotation), parse, signal.
func BenchmarkWebhookWorkflowJob(b *testing.B) {
	jobs := &recordingJobs{pools: map[string]bool{"garo/repo/octo/app": true}}
	wh := NewWebhook([]string{oldSecret, newSecret}, jobs, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	h := NewRouter(Config{Tokens: NewTokens("x", nil, 0), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Webhook: wh})
	body := jobPayload("in_progress", "octo/app")
	sig := sign(newSecret, body)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "workflow_job")
		req.Header.Set("X-Hub-Signature-256", sig)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d", rec.Code)
		}
		jobs.mu.Lock()
		jobs.signals = jobs.signals[:0]
		jobs.mu.Unlock()
	}
}

// BenchmarkAuthenticatedRead measures a reader's GET /api/v1/agents with
// its token served from the lookup cache.
func BenchmarkAuthenticatedRead(b *testing.B) {
	e := newAPIEnv(b)
	reader := e.issue("/api/v1/tokens", `{"name":"bench","role":"reader"}`)
	h := e.srv.Config.Handler
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/agents", nil)
		req.Header.Set("Authorization", "Bearer "+reader)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}
