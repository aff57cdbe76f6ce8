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
	repoHooks := hookOwner{hooks: &repo.hooks, kind: "repository", id: repo.id, path: "/repos/" + repo.fullName()}
	org := s.st.org(repo.owner)
	orgHooks := hookOwner{hooks: &org.hooks, kind: "organization", id: org.id, path: "/orgs/" + org.name}
	for _, o := range []hookOwner{repoHooks, orgHooks} {
		for _, h := range *o.hooks {
			if h.wants(event) {
				out = append(out, h.target(o))
			}
		}
	}
	return out
}

// hookOwner is a repository or an organization, with its webhooks.
type hookOwner struct {
	hooks *[]*repoHook
	kind  string // "repository" or "organization"
	id    int64
	path  string // its API path, "/repos/o/r" or "/orgs/o"
	repo  *repository
	org   *organization
}

// hookOwnerOf is the owner of the request's hooks; the caller holds the
// lock.
func (s *Sim) hookOwnerOf(r *http.Request) hookOwner {
	if name := chi.URLParam(r, "org"); name != "" {
		o := s.st.org(name)
		return hookOwner{hooks: &o.hooks, kind: "organization", id: o.id, path: "/orgs/" + o.name, org: o}
	}
	repo := s.st.repo(chi.URLParam(r, "owner"), chi.URLParam(r, "repo"))
	return hookOwner{hooks: &repo.hooks, kind: "repository", id: repo.id, path: "/repos/" + repo.fullName(), repo: repo}
}

func (h *repoHook) target(o hookOwner) hookTarget {
	return hookTarget{url: h.url, secret: h.secret, hookID: h.id, targetType: o.kind, targetID: o.id, form: h.contentType == "form"}
}

func (s *Sim) hookJSON(o hookOwner, h *repoHook) map[string]any {
	typ := "Repository"
	if o.kind == "organization" {
		typ = "Organization"
	}
	base := s.baseURL + o.path + "/hooks/" + strconv.FormatInt(h.id, 10)
	cfg := map[string]any{"url": h.url, "content_type": h.contentType, "insecure_ssl": h.insecureSSL}
	if h.secret != "" {
		cfg["secret"] = "********"
	}
	return map[string]any{"type": typ, "id": h.id, "name": "web", "active": h.active, "events": h.events,
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
	o := s.hookOwnerOf(r)
	h.id = s.st.id()
	*o.hooks = append(*o.hooks, h)
	body := s.hookJSON(o, h)
	s.st.mu.Unlock()
	s.ping(o, h)
	writeJSON(w, http.StatusCreated, body)
}

func (s *Sim) listHooks(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	o := s.hookOwnerOf(r)
	out := []map[string]any{}
	for _, h := range *o.hooks {
		out = append(out, s.hookJSON(o, h))
	}
	s.st.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// hookFromPath returns the owner and hook of the request; the caller holds
// the lock.
func (s *Sim) hookFromPath(w http.ResponseWriter, r *http.Request) (hookOwner, *repoHook, int) {
	o := s.hookOwnerOf(r)
	id, _ := atoi64(chi.URLParam(r, "id"))
	for i, h := range *o.hooks {
		if h.id == id {
			return o, h, i
		}
	}
	writeError(w, http.StatusNotFound, "Not Found")
	return o, nil, -1
}

func (s *Sim) getHook(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	if o, h, _ := s.hookFromPath(w, r); h != nil {
		writeJSON(w, http.StatusOK, s.hookJSON(o, h))
	}
}

func (s *Sim) deleteHook(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	if o, h, i := s.hookFromPath(w, r); h != nil {
		*o.hooks = append((*o.hooks)[:i], (*o.hooks)[i+1:]...)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Sim) pingHook(w http.ResponseWriter, r *http.Request) {
	s.st.mu.Lock()
	o, h, _ := s.hookFromPath(w, r)
	s.st.mu.Unlock()
	if h != nil {
		s.ping(o, h)
		w.WriteHeader(http.StatusNoContent)
	}
}

// ping sends a hook its ping event, as GitHub does when it is created and
// on request.
func (s *Sim) ping(o hookOwner, h *repoHook) {
	s.st.mu.Lock()
	payload := map[string]any{"zen": "Keep it logically awesome.", "hook_id": h.id, "hook": s.hookJSON(o, h),
		"sender": map[string]any{"login": "githubsim-bot", "type": "Bot"}}
	name, repoID := "", int64(0)
	if o.repo != nil {
		name, repoID = o.repo.fullName(), o.repo.id
		payload["repository"] = map[string]any{"id": o.repo.id, "name": o.repo.name, "full_name": name,
			"owner": map[string]any{"login": o.repo.owner}, "html_url": s.baseURL + "/" + name}
	} else {
		name = o.org.name
		payload["organization"] = map[string]any{"id": o.org.id, "login": o.org.name}
	}
	t := h.target(o)
	s.st.mu.Unlock()
	s.hooks.enqueue(t, newHookEvent("ping", "", name, repoID, 0, payload))
}
