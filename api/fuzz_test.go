package api

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http/httpguts"

	"github.com/garo-run/garo/workflows"
)

// FuzzWebhook: whatever a delivery holds, the webhook answers a JSON
// document with a status it documents; an unsigned one is 401 and
// signals nothing; only a signed workflow_job of a known action becomes a
// signal, for a repository named as GitHub allows; and no event name
// grows the metric's label set.
func FuzzWebhook(f *testing.F) {
	for _, action := range []string{"queued", "in_progress", "completed", "waiting", "requested"} {
		f.Add("workflow_job", "application/json", jobPayload(action, "octo/app"), true)
	}
	f.Add("workflow_job", "application/x-www-form-urlencoded", []byte("payload="+string(jobPayload("queued", "octo/app"))), true)
	f.Add("workflow_job", "application/json", jobPayload("queued", "../one"), true)
	f.Add("workflow_job", "application/json", jobPayload("queued", "octo/app"), false)
	f.Add("ping", "application/json", []byte(`{"zen":"Keep it logically awesome."}`), true)
	f.Add("push", "text/plain", []byte(`{}`), true)
	f.Add("workflow_job", "application/json", []byte(`{"action":"queued","workflow_job":null}`), true)
	f.Add("workflow_job", "application/json", []byte(`null`), true)

	const secret = "fuzz-secret"
	jobs := &recordingJobs{pools: map[string]bool{"garo/repo/octo/app": true}}
	reg := prometheus.NewRegistry()
	wh := NewWebhook([]string{secret}, jobs, slog.New(slog.DiscardHandler), reg)
	f.Fuzz(func(t *testing.T, event, contentType string, body []byte, signed bool) {
		jobs.mu.Lock()
		before := len(jobs.signals)
		jobs.mu.Unlock()
		req := httptest.NewRequest("POST", "/webhooks/github", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", event)
		req.Header.Set("X-GitHub-Delivery", "d-1")
		req.Header.Set("Content-Type", contentType)
		if signed {
			req.Header.Set("X-Hub-Signature-256", sign(secret, body))
		}
		rec := httptest.NewRecorder()
		wh.ServeHTTP(rec, req)

		if !slices.Contains([]int{200, 202, 400, 401, 413}, rec.Code) {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("answer is not JSON: %q", rec.Body)
		}
		if !signed && rec.Code != http.StatusUnauthorized {
			t.Fatalf("an unsigned delivery answered %d", rec.Code)
		}
		jobs.mu.Lock()
		added := slices.Clone(jobs.signals[before:])
		jobs.mu.Unlock()
		for _, s := range added {
			if !signed || event != "workflow_job" || rec.Code != http.StatusAccepted {
				t.Fatalf("signal sent for event %q, signed %v, status %d", event, signed, rec.Code)
			}
			if _, _, err := workflows.ParseRepository(s.ev.Repository); err != nil {
				t.Fatalf("signal for repository %q: %v", s.ev.Repository, err)
			}
			if !slices.Contains([]string{workflows.JobQueued, workflows.JobWaiting, workflows.JobInProgress, workflows.JobCompleted}, s.ev.Action) {
				t.Fatalf("signal of action %q", s.ev.Action)
			}
			if len(s.ev.Labels) > maxJobLabels {
				t.Fatalf("signal with %d labels", len(s.ev.Labels))
			}
		}
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, fam := range families {
			for _, m := range fam.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "event" && !slices.Contains([]string{"workflow_job", "ping", "other"}, l.GetValue()) {
						t.Fatalf("event label %q", l.GetValue())
					}
				}
			}
		}
	})
}

// FuzzPoolAPIBody: whatever body a pool's PUT or PATCH, or an agent's
// creation, is sent, the API answers as openapi.yaml documents, never a
// 5xx; a refused request changes nothing, and a pool it stores is valid.
func FuzzPoolAPIBody(f *testing.F) {
	routes := []struct{ method, path, contentType string }{
		{"PUT", "/api/v1/repositories/octo/app", "application/json"},
		{"PATCH", "/api/v1/repositories/octo/app/pools/linux", "application/merge-patch+json"},
		{"POST", "/api/v1/agents", "application/json"},
	}
	for i, body := range []string{
		`{"agent":"local","labels":["self-hosted","linux"],"minIdle":1,"maxRunners":3,"idleGracePeriod":"2m",
		  "bootstrapTimeout":"10m","ephemeral":true,"runnerGroup":"default","provider":{"kind":"process","env.A":"b"}}`,
		`{"minIdle":2,"provider":null}`,
		`{"name":"lab-2"}`,
		`{"provider":{"kind":"process","image":"x"}}`,
		`{"labels":["a\nb"]}`,
		`null`, `[]`, `{"minIdle":1}{}`, `{"maxRunners":1e400}`, `{"idleGracePeriod":"-1s"}`,
	} {
		f.Add(uint8(i), routes[i%len(routes)].contentType, []byte(body))
		f.Add(uint8(i+1), "", []byte(body))
	}
	e, repos := newPoolAPIEnv(f)
	router := specRouter(f)
	f.Fuzz(func(t *testing.T, route uint8, contentType string, body []byte) {
		rt := routes[int(route)%len(routes)]
		if !httpguts.ValidHeaderFieldValue(contentType) {
			return // no client can send it
		}
		repos.mu.Lock()
		before, _ := json.Marshal(repos.repos)
		repos.mu.Unlock()
		e.agents.mu.Lock()
		agents := len(e.agents.agents)
		e.agents.mu.Unlock()

		req, err := http.NewRequest(rt.method, e.srv.URL+rt.path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", contentType)
		resp, err := specClient(t, router).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s answered %d: %s", rt.method, rt.path, resp.StatusCode, answer)
		}
		repos.mu.Lock()
		after, _ := json.Marshal(repos.repos)
		stored := []workflows.PoolConfig{}
		for _, v := range repos.repos {
			for _, p := range v.Pools {
				stored = append(stored, p.Config)
			}
		}
		repos.mu.Unlock()
		e.agents.mu.Lock()
		agentsAfter := len(e.agents.agents)
		e.agents.mu.Unlock()
		if resp.StatusCode >= 300 && (!bytes.Equal(before, after) || agents != agentsAfter) {
			t.Fatalf("%s %s answered %d but changed the state: %s", rt.method, rt.path, resp.StatusCode, answer)
		}
		for _, c := range stored {
			if err := c.Validate(); err != nil {
				t.Fatalf("a stored pool is invalid: %v", err)
			}
		}
	})
}
