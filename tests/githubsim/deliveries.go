package githubsim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
)

// GitHub's hook deliveries API: the attempts to deliver each event to a
// hook, newest first, with cursor pagination, and redelivery. GitHub
// never redelivers by itself, and neither does the simulator.
//
//	GET  /repos/{o}/{r}/hooks/{id}/deliveries[/{delivery_id}]
//	POST /repos/{o}/{r}/hooks/{id}/deliveries/{delivery_id}/attempts
//	(the same under /orgs/{org}/hooks/{id}/...)
//	GET  /app/hook/deliveries[/{delivery_id}]   (an App's JWT only)
//	POST /app/hook/deliveries/{delivery_id}/attempts

// hookAttempts are the attempts of the hook a request names; ok is false
// when it answered already (404, 401).
func (s *Sim) hookAttempts(w http.ResponseWriter, r *http.Request) ([]*Delivery, bool) {
	if strings.HasPrefix(strings.TrimPrefix(r.URL.Path, "/api/v3"), "/app/") {
		if strings.Count(r.Header.Get("Authorization"), ".") != 2 {
			writeError(w, http.StatusUnauthorized, "A JSON web token could not be decoded")
			return nil, false
		}
		return s.hooks.attemptsOf("integration", 1), true
	}
	s.st.mu.Lock()
	o, h, _ := s.hookFromPath(w, r)
	s.st.mu.Unlock()
	if h == nil {
		return nil, false // answered 404
	}
	return s.hooks.attemptsOf(o.kind, h.id), true
}

// deliveryJSON is an attempt as the list shows it.
func deliveryJSON(d *Delivery) map[string]any {
	status := "OK"
	switch {
	case d.StatusCode == 0:
		status = "failed to connect to host"
	case d.StatusCode < 200 || d.StatusCode > 299:
		status = "Invalid HTTP Response: " + strconv.Itoa(d.StatusCode)
	}
	return map[string]any{"id": d.Attempt, "guid": d.ID, "delivered_at": d.SentAt.Format(time.RFC3339),
		"redelivery": d.Redelivery, "duration": d.Duration, "status": status, "status_code": d.StatusCode,
		"event": d.Event, "action": nullable(d.Action), "installation_id": InstallationID,
		"repository_id": nullableID(d.RepoID), "throttled_at": nil}
}

func nullableID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// listHookDeliveries lists a hook's attempts, newest first: per_page (30, at
// most 100), cursor (from the Link header's next), and redelivery (true
// or false) to keep only redeliveries or first deliveries.
func (s *Sim) listHookDeliveries(w http.ResponseWriter, r *http.Request) {
	all, ok := s.hookAttempts(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	if v := q.Get("redelivery"); v != "" {
		want := v == "true"
		kept := all[:0]
		for _, d := range all {
			if d.Redelivery == want {
				kept = append(kept, d)
			}
		}
		all = kept
	}
	perPage := 30
	if n, err := strconv.Atoi(q.Get("per_page")); err == nil && n > 0 {
		perPage = min(n, 100)
	}
	start := 0
	if c := q.Get("cursor"); c != "" {
		at, err := strconv.ParseInt(c, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "Invalid cursor")
			return
		}
		for start < len(all) && all[start].Attempt > at {
			start++
		}
	}
	end := min(start+perPage, len(all))
	out := make([]map[string]any, 0, end-start)
	for _, d := range all[start:end] {
		out = append(out, deliveryJSON(d))
	}
	if end < len(all) {
		next := *r.URL
		nq := next.Query()
		nq.Set("cursor", strconv.FormatInt(all[end].Attempt, 10))
		nq.Set("per_page", strconv.Itoa(perPage))
		next.RawQuery = nq.Encode()
		w.Header().Set("Link", "<"+s.baseURL+(&url.URL{Path: next.Path, RawQuery: next.RawQuery}).String()+`>; rel="next"`)
	}
	writeJSON(w, http.StatusOK, out)
}

// attemptFromPath finds the attempt a request names among its hook's.
func (s *Sim) attemptFromPath(w http.ResponseWriter, r *http.Request) *Delivery {
	all, ok := s.hookAttempts(w, r)
	if !ok {
		return nil
	}
	id, _ := strconv.ParseInt(chi.URLParam(r, "delivery"), 10, 64)
	for _, d := range all {
		if d.Attempt == id {
			return d
		}
	}
	writeError(w, http.StatusNotFound, "Not Found")
	return nil
}

// getHookDelivery shows one attempt with its request and response.
func (s *Sim) getHookDelivery(w http.ResponseWriter, r *http.Request) {
	d := s.attemptFromPath(w, r)
	if d == nil {
		return
	}
	out := deliveryJSON(d)
	out["url"] = d.URL
	out["request"] = map[string]any{
		"headers": map[string]string{"X-GitHub-Event": d.Event, "X-GitHub-Delivery": d.ID,
			"X-GitHub-Hook-ID": strconv.FormatInt(d.HookID, 10), "Content-Type": "application/json"},
		"payload": json.RawMessage(d.payload)}
	out["response"] = map[string]any{"headers": map[string]string{}, "payload": nullable(d.Error)}
	writeJSON(w, http.StatusOK, out)
}

// redeliverHookDelivery sends an attempt's event to its hook again: 202.
func (s *Sim) redeliverHookDelivery(w http.ResponseWriter, r *http.Request) {
	d := s.attemptFromPath(w, r)
	if d == nil {
		return
	}
	s.hooks.redeliver(strconv.FormatInt(d.Attempt, 10))
	writeJSON(w, http.StatusAccepted, map[string]any{})
}
