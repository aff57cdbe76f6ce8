package githubsim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
)

// targets returns where an event of repo goes: the repository's control-API
// webhook or else the app's, and every active repository webhook that
// subscribes to the event.
func (s *Sim) targets(repo *repository, event string) []hookTarget {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	var out []hookTarget
	if repo.hookURL != "" {
		out = append(out, hookTarget{url: repo.hookURL, secret: repo.hookSecret, hookID: repo.id, targetType: "repository", targetID: repo.id})
	} else if t, ok := s.hooks.appTarget(); ok {
		out = append(out, t)
	}
	for _, h := range repo.hooks {
		if h.wants(event) {
			out = append(out, h.target(repo))
		}
	}
	return out
}

func (h *repoHook) target(repo *repository) hookTarget {
	return hookTarget{url: h.url, secret: h.secret, hookID: h.id, targetType: "repository", targetID: repo.id, form: h.contentType == "form"}
}

func (s *Sim) hookJSON(repo *repository, h *repoHook) map[string]any {
	base := s.baseURL + "/repos/" + repo.fullName() + "/hooks/" + strconv.FormatInt(h.id, 10)
	cfg := map[string]any{"url": h.url, "content_type": h.contentType, "insecure_ssl": h.insecureSSL}
	if h.secret != "" {
		cfg["secret"] = "********"
	}
	return map[string]any{"type": "Repository", "id": h.id, "name": "web", "active": h.active, "events": h.events,
		"config": cfg, "created_at": h.created.Format(time.RFC3339), "updated_at": h.created.Format(time.RFC3339),
		"url": base, "test_url": base + "/test", "ping_url": base + "/pings"}
}

// hookRequest is the body of POST /repos/{o}/{r}/hooks.
type hookRequest struct {
	Name   string   `json:"name"`
	Active *bool    `json:"active"`
	Events []string `json:"events"`
	Config struct {
		URL         string `json:"url"`
		ContentType string `json:"content_type"`
		Secret      string `json:"secret"`
		InsecureSSL any    `json:"insecure_ssl"`
	} `json:"config"`
}

func (s *Sim) createHook(w http.ResponseWriter, r *http.Request) {
	var req hookRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	if req.Config.URL == "" {
		writeError(w, http.StatusUnprocessableEntity, "Validation Failed: config.url is missing")
		return
	}
	h := &repoHook{url: req.Config.URL, secret: req.Config.Secret, contentType: req.Config.ContentType,
		insecureSSL: "0", active: req.Active == nil || *req.Active, events: req.Events, created: now()}
	if h.contentType == "" {
		h.contentType = "form" // GitHub's default
	}
	switch v := req.Config.InsecureSSL.(type) {
	case string:
		h.insecureSSL = v
	case float64:
		h.insecureSSL = strconv.Itoa(int(v))
	}
	if len(h.events) == 0 {
		h.events = []string{"push"} // GitHub's default
	}
	s.st.mu.Lock()
	repo := s.st.repo(chi.URLParam(r, "owner"), chi.URLParam(r, "repo"))
	h.id = s.st.id()
	repo.hooks = append(repo.hooks, h)
	body := s.hookJSON(repo, h)
	s.st.mu.Unlock()
	s.ping(repo, h)
	writeJSON(w, http.StatusCreated, body)
}

func (s *Sim) listHooks(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	repo := s.st.repo(chi.URLParam(r, "owner"), chi.URLParam(r, "repo"))
	out := []map[string]any{}
	for _, h := range repo.hooks {
		out = append(out, s.hookJSON(repo, h))
	}
	s.st.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// hookFromPath returns the repository and hook of the request; the caller
// holds the lock.
func (s *Sim) hookFromPath(w http.ResponseWriter, r *http.Request) (*repository, *repoHook, int) {
	repo := s.st.repo(chi.URLParam(r, "owner"), chi.URLParam(r, "repo"))
	id, _ := atoi64(chi.URLParam(r, "id"))
	for i, h := range repo.hooks {
		if h.id == id {
			return repo, h, i
		}
	}
	writeError(w, http.StatusNotFound, "Not Found")
	return nil, nil, -1
}

func (s *Sim) getHook(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	if repo, h, _ := s.hookFromPath(w, r); h != nil {
		writeJSON(w, http.StatusOK, s.hookJSON(repo, h))
	}
}

func (s *Sim) deleteHook(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	if repo, h, i := s.hookFromPath(w, r); h != nil {
		repo.hooks = append(repo.hooks[:i], repo.hooks[i+1:]...)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Sim) pingHook(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	repo, h, _ := s.hookFromPath(w, r)
	s.st.mu.Unlock()
	if h != nil {
		s.ping(repo, h)
		w.WriteHeader(http.StatusNoContent)
	}
}

// ping sends a hook its ping event, as GitHub does when it is created and
// on request.
func (s *Sim) ping(repo *repository, h *repoHook) {
	s.st.mu.Lock()
	payload := map[string]any{"zen": "Keep it logically awesome.", "hook_id": h.id, "hook": s.hookJSON(repo, h),
		"repository": map[string]any{"id": repo.id, "name": repo.name, "full_name": repo.fullName(),
			"owner": map[string]any{"login": repo.owner}, "html_url": s.baseURL + "/" + repo.fullName()},
		"sender": map[string]any{"login": "githubsim-bot", "type": "Bot"}}
	t := h.target(repo)
	s.st.mu.Unlock()
	s.hooks.enqueue(t, "ping", "", repo.fullName(), 0, payload)
}
