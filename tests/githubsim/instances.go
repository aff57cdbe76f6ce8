package githubsim

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
)

// Instance is a runner instance the simulator hosts for the sim provider:
// a goroutine that runs a simulated runner, instead of a process, so that
// a benchmark measures orchestration rather than process start-up.
type Instance struct {
	Name      string            `json:"name"`
	ID        string            `json:"id"`
	State     string            `json:"state"` // running or exited
	ExitCode  int               `json:"exitCode,omitempty"`
	Tags      map[string]string `json:"tags,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
	cancel    context.CancelFunc
	// exited is closed when the runner has exited.
	exited chan struct{}
}

// InstanceRequest is the body of POST /_sim/instances: the runner's name
// and tags, and its variables (ACTIONS_RUNNER_INPUT_JITCONFIG, or a
// registration token's), as a runner process would get them.
type InstanceRequest struct {
	Name string            `json:"name"`
	Tags map[string]string `json:"tags,omitempty"`
	Env  map[string]string `json:"env"`
}

type instances struct {
	mu   sync.Mutex
	next int
	byNm map[string]*Instance
	wg   sync.WaitGroup
}

func (s *Sim) createInstance(w http.ResponseWriter, r *http.Request) {
	var req InstanceRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || req.Name == "" || len(req.Name) > 128 {
		writeError(w, http.StatusBadRequest, "want {name, tags, env}")
		return
	}
	in := &s.instances
	in.mu.Lock()
	if in.byNm == nil {
		in.byNm = map[string]*Instance{}
	}
	if old, ok := in.byNm[req.Name]; ok {
		v := *old
		in.mu.Unlock()
		writeJSON(w, http.StatusConflict, v)
		return
	}
	in.next++
	ctx, cancel := context.WithCancel(context.Background())
	inst := &Instance{Name: req.Name, ID: "sim-" + req.Name, State: "running", Tags: req.Tags,
		CreatedAt: time.Now().UTC(), cancel: cancel, exited: make(chan struct{})}
	in.byNm[req.Name] = inst
	in.wg.Add(1)
	in.mu.Unlock()
	cfg := RunnerConfig{URL: s.baseURL, JITConfig: req.Env[EnvJITConfig], Token: req.Env[EnvToken], Name: req.Env[EnvName],
		Ephemeral: req.Env[EnvEphemeral] == "true", Logger: s.opts.Logger.With("instance", req.Name)}
	if l := req.Env[EnvLabels]; l != "" {
		cfg.Labels = strings.Split(l, ",")
	}
	go func() {
		defer in.wg.Done()
		err := RunRunner(ctx, cfg)
		in.mu.Lock()
		defer in.mu.Unlock()
		inst.State = "exited"
		if err != nil && !errors.Is(err, context.Canceled) {
			inst.ExitCode = 1
		}
		close(inst.exited)
	}()
	writeJSON(w, http.StatusCreated, *inst)
}

// maxInstanceWait bounds the wait of GET /_sim/instances/{name}?wait=.
const maxInstanceWait = time.Minute

// getInstance answers an instance; with wait (a duration, at most a
// minute) it answers once the runner has exited, or the wait is over: a
// provider learns of an exit as it happens, with one request.
func (s *Sim) getInstance(w http.ResponseWriter, r *http.Request) {
	in := &s.instances
	name := chi.URLParam(r, "name")
	in.mu.Lock()
	inst, ok := in.byNm[name]
	in.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "no such instance")
		return
	}
	if wait, err := time.ParseDuration(r.URL.Query().Get("wait")); err == nil && wait > 0 {
		t := time.NewTimer(min(wait, maxInstanceWait))
		select {
		case <-inst.exited:
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
	}
	in.mu.Lock()
	v := *inst
	_, ok = in.byNm[name]
	in.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "no such instance")
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Sim) deleteInstance(w http.ResponseWriter, r *http.Request) {
	in := &s.instances
	in.mu.Lock()
	inst, ok := in.byNm[chi.URLParam(r, "name")]
	if ok {
		delete(in.byNm, inst.Name)
	}
	in.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "no such instance")
		return
	}
	inst.cancel()
	w.WriteHeader(http.StatusNoContent)
}

// listInstances answers the instances whose tags include every tag.KEY
// query parameter.
func (s *Sim) listInstances(w http.ResponseWriter, r *http.Request) {
	want := map[string]string{}
	for k, v := range r.URL.Query() {
		if key, ok := strings.CutPrefix(k, "tag."); ok && len(v) > 0 {
			want[key] = v[0]
		}
	}
	in := &s.instances
	in.mu.Lock()
	out := []Instance{}
	for _, name := range slices.Sorted(maps.Keys(in.byNm)) {
		inst := in.byNm[name]
		match := true
		for k, v := range want {
			match = match && inst.Tags[k] == v
		}
		if match {
			out = append(out, *inst)
		}
	}
	in.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// closeInstances stops every hosted runner.
func (s *Sim) closeInstances() {
	in := &s.instances
	in.mu.Lock()
	for _, inst := range in.byNm {
		inst.cancel()
	}
	in.mu.Unlock()
	in.wg.Wait()
}
