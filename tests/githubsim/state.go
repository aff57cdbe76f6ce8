// Package githubsim is a fake of the parts of GitHub that a runner
// orchestrator touches. It speaks GitHub's REST wire format (at / and, as
// GitHub Enterprise Server does, at /api/v3/), sends signed workflow_job
// webhooks, and runs simulated runners that take jobs, so that an
// orchestrator's real GitHub client is exercised end to end. A control API
// under /_sim/ enqueues jobs, lists what happened and injects faults.
package githubsim

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Job states, as GitHub names them.
const (
	StatusQueued     = "queued"
	StatusInProgress = "in_progress"
	StatusCompleted  = "completed"
)

// Runner statuses, as GitHub names them.
const (
	RunnerOnline  = "online"
	RunnerOffline = "offline"
)

// Job is one simulated workflow job.
type Job struct {
	ID         int64    `json:"id"`
	RunID      int64    `json:"runId"`
	RunAttempt int64    `json:"runAttempt"`
	Repo       string   `json:"repo"`
	Name       string   `json:"name"`
	Status     string   `json:"status"`
	Conclusion string   `json:"conclusion"`
	Labels     []string `json:"labels"`
	DurationMs int64    `json:"durationMs"`
	// Outcome is the conclusion its runner will report; empty is success.
	Outcome     string     `json:"outcome,omitempty"`
	RunnerID    int64      `json:"runnerId"`
	RunnerName  string     `json:"runnerName"`
	CreatedAt   time.Time  `json:"createdAt"`
	StartedAt   *time.Time `json:"startedAt"`
	CompletedAt *time.Time `json:"completedAt"`
}

// Runner is one registered self-hosted runner.
type Runner struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Repo      string    `json:"repo"`
	Status    string    `json:"status"`
	Busy      bool      `json:"busy"`
	Labels    []string  `json:"labels"`
	Ephemeral bool      `json:"ephemeral"`
	GroupID   int64     `json:"runnerGroupId"`
	JobID     int64     `json:"jobId,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	LastSeen  time.Time `json:"lastSeen"`
	// credential authenticates the simulated runner process.
	credential string
	// jobsDone counts finished jobs; an ephemeral runner takes one.
	jobsDone int
}

type repository struct {
	id    int64
	owner string
	name  string
	// hookURL and hookSecret, when set, receive this repository's events
	// instead of the app-wide webhook.
	hookURL, hookSecret string
	// hooks are the repository's webhooks created through GitHub's API.
	hooks []*repoHook
}

// repoHook is a repository webhook, as /repos/{o}/{r}/hooks keeps it.
type repoHook struct {
	id          int64
	url, secret string
	contentType string
	insecureSSL string
	active      bool
	events      []string
	created     time.Time
}

func (h *repoHook) wants(event string) bool {
	if !h.active {
		return false
	}
	for _, e := range h.events {
		if e == event || e == "*" {
			return true
		}
	}
	return false
}

// state is everything the simulator knows; guarded by mu.
type state struct {
	mu      sync.Mutex
	repos   map[string]*repository // by lower-case full name
	orgs    map[string]*organization
	runners map[int64]*Runner
	jobs    map[int64]*Job
	// byRepo indexes jobs by lower-case repository, oldest first, and
	// queuedFrom is, for each, the index of its first job that may still
	// be queued (a job leaves queued for good; a re-run is a new job):
	// a runner finds its job without a look at every job ever queued.
	byRepo     map[string][]*Job
	queuedFrom map[string]int
	runs       map[int64]*run
	nextID     int64
	tokens     map[string]tokenInfo // registration, remove and installation tokens
	jobsReady  chan struct{}        // closed and replaced when a job is queued
	// issued are the JIT configs, registration, remove and installation
	// tokens and runner credentials handed out, for tests that check no
	// secret leaked.
	issued []string
}

type tokenInfo struct {
	kind    string // "registration", "remove", "installation"
	repo    string
	expires time.Time
}

func newState() *state {
	return &state{
		repos:      map[string]*repository{},
		orgs:       map[string]*organization{},
		runners:    map[int64]*Runner{},
		jobs:       map[int64]*Job{},
		byRepo:     map[string][]*Job{},
		queuedFrom: map[string]int{},
		runs:       map[int64]*run{},
		nextID:     firstID(),
		tokens:     map[string]tokenInfo{},
		jobsReady:  make(chan struct{}),
	}
}

func (s *state) id() int64 {
	s.nextID++
	return s.nextID
}

// repo returns the repository called full, creating it on first use, as a
// GitHub App sees every repository it is installed on. Names keep the case
// first seen and match case-insensitively, as on GitHub.
func (s *state) repo(owner, name string) *repository {
	key := strings.ToLower(owner + "/" + name)
	r, ok := s.repos[key]
	if !ok {
		r = &repository{id: s.id(), owner: owner, name: name}
		s.repos[key] = r
	}
	return r
}

// organization is an org with its own runners and webhooks.
type organization struct {
	id    int64
	name  string
	hooks []*repoHook
}

// org returns the organization called name, creating it on first use.
func (s *state) org(name string) *organization {
	key := strings.ToLower(name)
	o, ok := s.orgs[key]
	if !ok {
		o = &organization{id: s.id(), name: name}
		s.orgs[key] = o
	}
	return o
}

// run is a workflow run: its jobs are the Jobs with its RunID; a
// sequential run's later jobs wait here until the one before completes.
type run struct {
	id        int64
	repo      string
	createdAt time.Time
	pending   []*Job
	// jobs are the run's jobs queued so far, of every attempt.
	jobs []*Job
}

// addJob records a job now queued. The caller holds the lock.
func (s *state) addJob(j *Job) {
	s.jobs[j.ID] = j
	if r := s.runs[j.RunID]; r != nil {
		r.jobs = append(r.jobs, j)
	}
	key := strings.ToLower(j.Repo)
	list := s.byRepo[key]
	i, _ := slices.BinarySearchFunc(list, j.ID, func(e *Job, id int64) int { return cmp.Compare(e.ID, id) })
	s.byRepo[key] = slices.Insert(list, i, j)
	if i < s.queuedFrom[key] {
		s.queuedFrom[key] = i
	}
}

// newRun starts a run of repo with jobs (their ids, names, labels and
// durations set), queued at once, or one after another when sequential.
// The caller holds the lock; it returns the jobs queued now.
func (s *state) newRun(repo string, jobs []*Job, sequential bool) (*run, []*Job) {
	r := &run{id: s.id(), repo: repo, createdAt: now()}
	s.runs[r.id] = r
	for _, j := range jobs {
		j.RunID, j.RunAttempt, j.Repo, j.Status = r.id, 1, repo, StatusQueued
	}
	queued := jobs
	if sequential && len(jobs) > 1 {
		queued, r.pending = jobs[:1], jobs[1:]
	}
	for _, j := range queued {
		j.CreatedAt = now()
		s.addJob(j)
	}
	s.signalJobs()
	return r, queued
}

// next queues the next job of a sequential run after j completed, if j
// succeeded; a failure skips the rest, as needs: does. The caller holds
// the lock.
func (s *state) next(j *Job) *Job {
	r := s.runs[j.RunID]
	if r == nil || len(r.pending) == 0 {
		return nil
	}
	if j.Conclusion != "success" {
		r.pending = nil
		return nil
	}
	n := r.pending[0]
	r.pending = r.pending[1:]
	n.CreatedAt = now()
	s.addJob(n)
	s.signalJobs()
	return n
}

// runStatus is a run's status and conclusion as GitHub computes them:
// queued while none of its jobs has started, completed when all have,
// in_progress in between (as when one job is done and the next waits).
func (s *state) runStatus(r *run) (status, conclusion string) {
	var queued, running, done int
	conclusion = "success"
	attempt := s.runAttempt(r.id)
	for _, j := range r.jobs {
		if j.RunAttempt != attempt {
			continue // of an earlier attempt
		}
		switch j.Status {
		case StatusQueued:
			queued++
		case StatusInProgress:
			running++
		case StatusCompleted:
			done++
			if j.Conclusion != "success" {
				conclusion = j.Conclusion
			}
		}
	}
	switch {
	case running == 0 && done == 0:
		return StatusQueued, ""
	case running == 0 && queued == 0 && len(r.pending) == 0:
		return StatusCompleted, conclusion
	}
	return StatusInProgress, ""
}

// runUpdatedAt is when a run last changed, as GitHub's updated_at: its
// creation, or the latest creation, start or end of a job of it.
func (s *state) runUpdatedAt(r *run) time.Time {
	at := r.createdAt
	for _, j := range r.jobs {
		for _, t := range []*time.Time{&j.CreatedAt, j.StartedAt, j.CompletedAt} {
			if t != nil && t.After(at) {
				at = *t
			}
		}
	}
	return at
}

// runAttempt is a run's latest attempt: its first, or the attempt a
// re-run of one of its jobs started.
func (s *state) runAttempt(runID int64) int64 {
	attempt := int64(1)
	if r := s.runs[runID]; r != nil {
		for _, j := range r.jobs {
			attempt = max(attempt, j.RunAttempt)
		}
	}
	return attempt
}

// runsOf returns the runs of repo (all when empty), oldest first.
func (s *state) runsOf(repo string) []*run {
	var out []*run
	for _, r := range s.runs {
		if repo == "" || sameRepo(r.repo, repo) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// orgScope is the runner scope of an organization's runners.
func orgScope(org string) string { return "org:" + org }

// repoOf returns the repository of a full name "owner/name".
func (s *state) repoOf(full string) *repository {
	owner, name, _ := strings.Cut(full, "/")
	return s.repo(owner, name)
}

func (r *repository) fullName() string { return r.owner + "/" + r.name }

func sameRepo(a, b string) bool { return strings.EqualFold(a, b) }

// runnersOf returns the runners of repo, ordered by id.
func (s *state) runnersOf(repo string) []*Runner {
	var out []*Runner
	for _, r := range s.runners {
		if sameRepo(r.Repo, repo) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *state) runnerByName(repo, name string) *Runner {
	for _, r := range s.runners {
		if sameRepo(r.Repo, repo) && strings.EqualFold(r.Name, name) {
			return r
		}
	}
	return nil
}

// jobsOf returns the jobs of repo (all repositories when repo is empty),
// oldest first.
func (s *state) jobsOf(repo string) []*Job {
	if repo != "" {
		return slices.Clone(s.byRepo[strings.ToLower(repo)])
	}
	var out []*Job
	for _, j := range s.jobs {
		if repo == "" || sameRepo(j.Repo, repo) {
			out = append(out, j)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// nextJobFor returns the oldest queued job that the runner may take (of
// its repository, or of any repository of its organization) whose labels
// are all among the runner's, as GitHub matches runs-on.
func (s *state) nextJobFor(r *Runner) *Job {
	org, isOrg := strings.CutPrefix(r.Repo, "org:")
	if !isOrg {
		key := strings.ToLower(r.Repo)
		list, from := s.byRepo[key], s.queuedFrom[key]
		for from < len(list) && list[from].Status != StatusQueued {
			from++
		}
		s.queuedFrom[key] = from
		for _, j := range list[from:] {
			if j.Status == StatusQueued && labelsMatch(j.Labels, r.Labels) {
				return j
			}
		}
		return nil
	}
	for _, j := range s.jobsOf("") {
		if owner, _, _ := strings.Cut(j.Repo, "/"); !strings.EqualFold(owner, org) {
			continue
		}
		if j.Status == StatusQueued && labelsMatch(j.Labels, r.Labels) {
			return j
		}
	}
	return nil
}

func labelsMatch(want, have []string) bool {
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h string) bool { return strings.EqualFold(h, w) }) {
			return false
		}
	}
	return true
}

// signalJobs wakes runners waiting for a job.
func (s *state) signalJobs() {
	close(s.jobsReady)
	s.jobsReady = make(chan struct{})
}

// firstID starts a simulator's ids at a random point, as GitHub's ids are
// large and never repeat: two simulators (or two runs against one Garo)
// do not hand out the same job ids.
func firstID() int64 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return 1_000_000 + int64(b[0])<<24 | int64(b[1])<<16 | int64(b[2])<<8 | int64(b[3])
}

func sortRunners(rs []Runner) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].ID < rs[j].ID })
}

func randomToken(prefix string) string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
