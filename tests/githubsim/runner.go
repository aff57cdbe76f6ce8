package githubsim

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// The simulated runners' protocol, under /_sim/runner/. A real runner
// speaks to GitHub's broker; this is its smallest stand-in: connect with
// the credential of the JIT config (or register with a registration
// token), long-poll for a job, report it done, heartbeat in between.

// RegisterRequest is the body of POST /_sim/runner/register, the
// registration-token flow of reusable runners (config.sh).
type RegisterRequest struct {
	Token     string   `json:"token"`
	Name      string   `json:"name"`
	Labels    []string `json:"labels"`
	Ephemeral bool     `json:"ephemeral"`
	Replace   bool     `json:"replace"`
}

// Session is what a simulated runner learns when it connects.
type Session struct {
	RunnerID   int64  `json:"runnerId"`
	Name       string `json:"name"`
	Ephemeral  bool   `json:"ephemeral"`
	Credential string `json:"credential,omitempty"`
}

// Assignment is a job handed to a simulated runner.
type Assignment struct {
	JobID      int64    `json:"jobId"`
	Repo       string   `json:"repo"`
	Labels     []string `json:"labels"`
	DurationMs int64    `json:"durationMs"`
	// Conclusion is how the job ends; empty is success.
	Conclusion string `json:"conclusion,omitempty"`
}

func (s *Sim) runnerRegister(w http.ResponseWriter, r *http.Request) {
	var req RegisterRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || req.Name == "" {
		writeError(w, http.StatusBadRequest, "token and name are required")
		return
	}
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	tok, ok := s.st.tokens[req.Token]
	if !ok || tok.kind != "registration" || time.Now().After(tok.expires) {
		writeError(w, http.StatusUnauthorized, "invalid or expired registration token")
		return
	}
	if old := s.st.runnerByName(tok.repo, req.Name); old != nil {
		if !req.Replace || old.Busy {
			writeError(w, http.StatusConflict, "A runner exists with the same name "+req.Name)
			return
		}
		delete(s.st.runners, old.ID)
	}
	rn := s.newRunner(tok.repo, req.Name, req.Labels, 1, req.Ephemeral)
	s.st.issued = append(s.st.issued, rn.credential)
	writeJSON(w, http.StatusCreated, Session{RunnerID: rn.ID, Name: rn.Name, Ephemeral: rn.Ephemeral, Credential: rn.credential})
}

// authRunner returns the runner whose credential r carries; the caller
// holds the lock. It answers 404 for a runner that no longer exists.
func (s *Sim) authRunner(w http.ResponseWriter, r *http.Request) *Runner {
	cred := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if cred != "" {
		for _, rn := range s.st.runners {
			if rn.credential == cred {
				rn.LastSeen = time.Now()
				return rn
			}
		}
	}
	writeError(w, http.StatusNotFound, "runner not registered")
	return nil
}

func (s *Sim) runnerConnect(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	rn := s.authRunner(w, r)
	if rn == nil {
		return
	}
	if rn.Ephemeral && rn.jobsDone > 0 {
		writeError(w, http.StatusGone, "ephemeral runner already ran its job")
		return
	}
	rn.Status = RunnerOnline
	writeJSON(w, http.StatusOK, Session{RunnerID: rn.ID, Name: rn.Name, Ephemeral: rn.Ephemeral})
}

func (s *Sim) runnerHeartbeat(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	if rn := s.authRunner(w, r); rn != nil {
		rn.Status = RunnerOnline
		w.WriteHeader(http.StatusNoContent)
	}
}

// runnerAcquire long-polls (up to 10 s) for the oldest queued job that the
// runner's labels satisfy, and starts it: 200 with the job, or 204.
func (s *Sim) runnerAcquire(w http.ResponseWriter, r *http.Request) {
	deadline := time.After(10 * time.Second)
	for {
		s.st.mu.Lock()
		rn := s.authRunner(w, r)
		if rn == nil {
			s.st.mu.Unlock()
			return
		}
		if rn.Ephemeral && rn.jobsDone > 0 {
			s.st.mu.Unlock()
			writeError(w, http.StatusGone, "ephemeral runner already ran its job")
			return
		}
		rn.Status = RunnerOnline
		if rn.Busy {
			s.st.mu.Unlock()
			writeError(w, http.StatusConflict, "runner is busy")
			return
		}
		if j := s.st.nextJobFor(rn); j != nil {
			t := now()
			j.Status, j.StartedAt, j.RunnerID, j.RunnerName = StatusInProgress, &t, rn.ID, rn.Name
			rn.Busy, rn.JobID = true, j.ID
			a := Assignment{JobID: j.ID, Repo: j.Repo, Labels: j.Labels, DurationMs: j.DurationMs, Conclusion: j.Outcome}
			c := *j
			repo := s.st.repoOf(j.Repo)
			s.st.mu.Unlock()
			s.jobWebhook("in_progress", repo, &c)
			writeJSON(w, http.StatusOK, a)
			return
		}
		ready := s.st.jobsReady
		s.st.mu.Unlock()
		select {
		case <-ready:
		case <-deadline:
			w.WriteHeader(http.StatusNoContent)
			return
		case <-r.Context().Done():
			return
		}
	}
}

// CompleteRequest is the body of POST /_sim/runner/complete.
type CompleteRequest struct {
	JobID      int64  `json:"jobId"`
	Conclusion string `json:"conclusion"`
}

func (s *Sim) runnerComplete(w http.ResponseWriter, r *http.Request) {
	var req CompleteRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid body")
		return
	}
	if req.Conclusion == "" {
		req.Conclusion = "success"
	}
	s.st.mu.Lock()
	rn := s.authRunner(w, r)
	if rn == nil {
		s.st.mu.Unlock()
		return
	}
	j := s.st.jobs[req.JobID]
	if j == nil || rn.JobID != j.ID || j.Status != StatusInProgress {
		s.st.mu.Unlock()
		writeError(w, http.StatusConflict, "job is not running on this runner")
		return
	}
	sendNext := s.finishJob(j, req.Conclusion)
	rn.Busy, rn.JobID = false, 0
	rn.jobsDone++
	exit := rn.Ephemeral
	if exit {
		// GitHub removes an ephemeral runner once its job is done.
		delete(s.st.runners, rn.ID)
	}
	c := *j
	repo := s.st.repoOf(j.Repo)
	s.st.mu.Unlock()
	s.jobWebhook("completed", repo, &c)
	sendNext()
	writeJSON(w, http.StatusOK, map[string]bool{"exit": exit})
}

// runnerExit marks a runner offline at once: its process stops cleanly.
// A job it was running fails, as on GitHub.
func (s *Sim) runnerExit(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	rn := s.authRunner(w, r)
	if rn == nil {
		s.st.mu.Unlock()
		return
	}
	rn.Status = RunnerOffline
	rn.LastSeen = time.Time{}
	var failed *Job
	if j := s.st.jobs[rn.JobID]; j != nil && j.Status == StatusInProgress {
		s.finishJob(j, "failure")
		c := *j
		failed = &c
	}
	rn.Busy, rn.JobID = false, 0
	s.st.mu.Unlock()
	if failed != nil {
		s.jobWebhook("completed", s.repoLocked(failed.Repo), failed)
	}
	w.WriteHeader(http.StatusNoContent)
}

// repoLocked returns the repository of a full name, taking the lock.
func (s *Sim) repoLocked(full string) *repository {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	return s.st.repoOf(full)
}
