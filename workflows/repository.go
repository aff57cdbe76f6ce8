package workflows

import (
	"fmt"
	"hash/fnv"
	"sort"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
)

// RepositoryInput starts a RepositoryWorkflow; State is set when it
// continues as new.
type RepositoryInput struct {
	Owner string     `json:"owner"`
	Repo  string     `json:"repo"`
	State *PoolState `json:"state,omitempty"`
}

// PoolState is everything a pool carries across continue-as-new.
type PoolState struct {
	Config       PoolConfig     `json:"config"`
	Configured   bool           `json:"configured"`
	ConfiguredBy string         `json:"configuredBy,omitempty"`
	Runners      []RunnerRecord `json:"runners"`
	Queue        []QueuedJob    `json:"queue"`
	// Seen is the dedupe window of job events ("jobID/action"), oldest
	// first.
	Seen         []string  `json:"seen"`
	Seq          int       `json:"seq"`
	Prefix       string    `json:"prefix"`
	Failures     int       `json:"failures"`
	BackoffUntil time.Time `json:"backoffUntil"`
	Degraded     bool      `json:"degraded"`
	LastError    string    `json:"lastError,omitempty"`
	Draining     bool      `json:"draining"`
	JobsDone     int       `json:"jobsDone"`
	AgentOffline bool      `json:"agentOffline,omitempty"`
	// LastPoll is when the pool last asked GitHub for its queued jobs.
	LastPoll time.Time `json:"lastPoll"`
}

// RunnerRecord is a pool's record of one of its runners.
type RunnerRecord struct {
	Name       string      `json:"name"`
	State      RunnerState `json:"state"`
	RunnerID   int64       `json:"runnerId,omitempty"`
	JobID      int64       `json:"jobId,omitempty"`
	CreatedAt  time.Time   `json:"createdAt"`
	IdleSince  *time.Time  `json:"idleSince,omitempty"`
	DeleteSent bool        `json:"deleteSent,omitempty"`
}

// Limits of a pool's bookkeeping.
const (
	dedupeWindow  = 10000
	maxQueue      = 10000
	backoffFirst  = 10 * time.Second
	backoffMax    = 10 * time.Minute
	maxRunnerName = 64
)

// RepositoryWorkflow owns the runner pool of one repository: its config,
// its runners' states and the FIFO queue of jobs waiting for a runner.
func RepositoryWorkflow(ctx workflow.Context, in RepositoryInput) (PoolView, error) {
	if _, _, err := ParseRepository(in.Owner + "/" + in.Repo); err != nil {
		return PoolView{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidRequest, nil)
	}
	p := &pool{owner: in.Owner, repo: in.Repo, seen: map[string]bool{}}
	if in.State != nil {
		p.s = *in.State
	}
	for _, k := range p.s.Seen {
		p.seen[k] = true
	}
	if p.s.Prefix == "" {
		h := fnv.New32a()
		h.Write([]byte(workflow.GetInfo(ctx).FirstRunID))
		p.s.Prefix = fmt.Sprintf("%06x", h.Sum32()&0xffffff)
	}
	if err := p.setHandlers(ctx); err != nil {
		return PoolView{}, err
	}
	if err := ensureSearchAttribute(ctx, SearchAttributeRepository, p.full()); err != nil {
		return PoolView{}, err
	}
	return p.run(ctx)
}

type pool struct {
	owner, repo string
	s           PoolState
	seen        map[string]bool
	dirty       bool
	published   *PoolView
	agentSA     string
	polling     bool
}

// pollGrace keeps a job that GitHub created this recently in the queue even
// when a poll does not list it (the list is a snapshot).
const pollGrace = time.Minute

// pollQueue asks GitHub, through the agent, for the queued jobs, when the
// poll interval has passed; it returns when the next poll is due.
func (p *pool) pollQueue(ctx workflow.Context) time.Time {
	every := p.s.Config.QueuePollInterval.D()
	if every <= 0 || !p.s.Configured || p.s.Draining || p.s.AgentOffline {
		return time.Time{}
	}
	now := workflow.Now(ctx)
	due := p.s.LastPoll.Add(every)
	if p.polling || now.Before(due) {
		if p.polling {
			return time.Time{}
		}
		return due
	}
	p.polling, p.s.LastPoll = true, now
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              AgentTaskQueue(p.s.Config.Agent),
		ScheduleToStartTimeout: time.Minute,
		StartToCloseTimeout:    time.Minute,
		Summary:                "look for queued jobs of " + p.full() + " whose webhook was missed",
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3},
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { p.polling, p.dirty = false, true }()
		var jobs []activities.QueuedJob
		if err := workflow.ExecuteActivity(actx, activities.GitHubListQueuedJobsName, activities.Repo{Owner: p.owner, Name: p.repo}).Get(ctx, &jobs); err != nil {
			workflow.GetLogger(ctx).Warn("Polling GitHub for queued jobs failed", "repository", p.full(), "error", err)
			return
		}
		p.applyPolled(ctx, now, jobs)
	})
	return now.Add(every)
}

// applyPolled reconciles the queue with GitHub's list of queued jobs taken
// at polledAt: jobs whose queued webhook never came are added; jobs GitHub
// no longer lists as queued (they started or were cancelled, and that
// webhook was missed) leave the queue.
func (p *pool) applyPolled(ctx workflow.Context, polledAt time.Time, jobs []activities.QueuedJob) {
	sort.SliceStable(jobs, func(i, j int) bool { return jobs[i].CreatedAt.Before(jobs[j].CreatedAt) })
	listed := map[int64]bool{}
	for _, j := range jobs {
		listed[j.ID] = true
		if p.seen[jobKey(j.ID, JobQueued)] || p.seen[jobKey(j.ID, JobInProgress)] || p.seen[jobKey(j.ID, JobCompleted)] {
			continue
		}
		if !LabelsMatch(j.Labels, p.s.Config.Labels) || len(p.s.Queue) >= maxQueue {
			continue
		}
		p.markSeen(jobKey(j.ID, JobQueued))
		p.s.Queue = append(p.s.Queue, QueuedJob{JobID: j.ID, RunID: j.RunID, Name: j.Name, Labels: j.Labels, QueuedAt: j.CreatedAt})
		workflow.GetLogger(ctx).Info("Queued job found by polling: its webhook was missed", "repository", p.full(), "job", j.ID)
	}
	kept := p.s.Queue[:0]
	for _, q := range p.s.Queue {
		if listed[q.JobID] || q.QueuedAt.After(polledAt.Add(-pollGrace)) {
			kept = append(kept, q)
			continue
		}
		workflow.GetLogger(ctx).Info("Job no longer queued on GitHub: it started or was cancelled", "repository", p.full(), "job", q.JobID)
	}
	p.s.Queue = kept
}

func (p *pool) full() string { return p.owner + "/" + p.repo }

func (p *pool) setHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (PoolView, error) { return p.view(), nil }); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateConfigure,
		func(ctx workflow.Context, req ConfigureRequest) (PoolView, error) {
			if req.Config.Agent != p.s.Config.Agent {
				p.s.AgentOffline = false
			}
			p.s.Config, p.s.Configured, p.s.ConfiguredBy = req.Config, true, req.Actor
			workflow.GetLogger(ctx).Info("Pool configured", "repository", p.full(), "actor", req.Actor,
				"agent", req.Config.Agent, "minIdle", req.Config.MinIdle, "maxRunners", req.Config.MaxRunners)
			p.dirty = true
			return p.view(), nil
		},
		workflow.UpdateHandlerOptions{Validator: func(req ConfigureRequest) error {
			if p.s.Draining {
				return temporal.NewNonRetryableApplicationError("pool is draining", ErrTypeUnregistering, nil)
			}
			return invalidRequest(req.Config.Validate())
		}}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandler(ctx, UpdateDrain, func(ctx workflow.Context, req DrainRequest) (PoolView, error) {
		if !p.s.Draining {
			workflow.GetLogger(ctx).Info("Pool draining", "repository", p.full(), "actor", req.Actor)
		}
		p.s.Draining, p.dirty = true, true
		return p.view(), nil
	}); err != nil {
		return err
	}
	return nil
}

// takeSignals applies every buffered signal. Signals are taken by the main
// loop only, so that none is in flight when the run continues as new.
func (p *pool) takeSignals(ctx workflow.Context) {
	jobs, runners := workflow.GetSignalChannel(ctx, SignalJob), workflow.GetSignalChannel(ctx, SignalRunner)
	for {
		var ev JobEvent
		if !jobs.ReceiveAsync(&ev) {
			break
		}
		p.onJob(ctx, ev)
	}
	for {
		var ev RunnerEvent
		if !runners.ReceiveAsync(&ev) {
			break
		}
		p.onRunner(ctx, ev)
	}
	agents := workflow.GetSignalChannel(ctx, SignalAgent)
	for {
		var ev AgentStatusEvent
		if !agents.ReceiveAsync(&ev) {
			break
		}
		if ev.Agent == p.s.Config.Agent && p.s.AgentOffline == ev.Online {
			p.s.AgentOffline, p.dirty = !ev.Online, true
			workflow.GetLogger(ctx).Info("Pool's agent status changed", "repository", p.full(), "agent", ev.Agent, "online", ev.Online)
		}
	}
}

func (p *pool) signalsWaiting(ctx workflow.Context) bool {
	return workflow.GetSignalChannel(ctx, SignalJob).Len() > 0 || workflow.GetSignalChannel(ctx, SignalRunner).Len() > 0 ||
		workflow.GetSignalChannel(ctx, SignalAgent).Len() > 0
}

// markSeen records a job event; it reports false for a duplicate.
func (p *pool) markSeen(key string) bool {
	if p.seen[key] {
		return false
	}
	p.seen[key] = true
	p.s.Seen = append(p.s.Seen, key)
	if len(p.s.Seen) > dedupeWindow {
		delete(p.seen, p.s.Seen[0])
		p.s.Seen = p.s.Seen[1:]
	}
	return true
}

func jobKey(id int64, action string) string { return fmt.Sprintf("%d/%s", id, action) }

func (p *pool) runner(name string) *RunnerRecord {
	if name == "" {
		return nil
	}
	for i := range p.s.Runners {
		if p.s.Runners[i].Name == name {
			return &p.s.Runners[i]
		}
	}
	return nil
}

func (p *pool) dequeue(id int64) {
	for i, q := range p.s.Queue {
		if q.JobID == id {
			p.s.Queue = append(p.s.Queue[:i], p.s.Queue[i+1:]...)
			return
		}
	}
}

// onJob applies a workflow_job event. Events are deduplicated by job and
// action and may come in any order: a job is bound to a runner only when
// GitHub reports it in progress on that runner.
func (p *pool) onJob(ctx workflow.Context, ev JobEvent) {
	action := ev.Action
	if action == JobWaiting {
		action = JobQueued
	}
	if !p.markSeen(jobKey(ev.JobID, action)) {
		return
	}
	p.dirty = true
	now := workflow.Now(ctx)
	switch action {
	case JobQueued:
		if p.seen[jobKey(ev.JobID, JobInProgress)] || p.seen[jobKey(ev.JobID, JobCompleted)] {
			return // it started or ended already: this event came late
		}
		if !LabelsMatch(ev.Labels, p.s.Config.Labels) || len(p.s.Queue) >= maxQueue {
			return
		}
		at := now
		if ev.CreatedAt != nil && ev.CreatedAt.Before(now) {
			at = *ev.CreatedAt
		}
		p.s.Queue = append(p.s.Queue, QueuedJob{JobID: ev.JobID, RunID: ev.RunID, Name: ev.Name, Labels: ev.Labels, QueuedAt: at})
	case JobInProgress:
		p.dequeue(ev.JobID)
		if p.seen[jobKey(ev.JobID, JobCompleted)] {
			return
		}
		if r := p.runner(ev.RunnerName); r != nil && r.State != RunnerDeleting {
			r.State, r.JobID, r.IdleSince = RunnerBusy, ev.JobID, nil
			p.control(ctx, r.Name, RunnerControl{Action: ControlBusy, JobID: ev.JobID})
		}
	case JobCompleted:
		p.dequeue(ev.JobID)
		r := p.runner(ev.RunnerName)
		if r == nil {
			return
		}
		p.s.JobsDone++
		p.control(ctx, r.Name, RunnerControl{Action: ControlJobDone, JobID: ev.JobID})
		if r.State == RunnerDeleting {
			return
		}
		if p.s.Config.Ephemeral {
			// An ephemeral runner is deleted after its one job: it does
			// that itself on jobDone.
			r.State, r.DeleteSent = RunnerDeleting, true
		} else {
			r.State, r.JobID, r.IdleSince = RunnerIdle, 0, &now
		}
	}
}

// onRunner applies what a runner workflow reports.
func (p *pool) onRunner(ctx workflow.Context, ev RunnerEvent) {
	r := p.runner(ev.Name)
	if r == nil {
		return
	}
	p.dirty = true
	now := workflow.Now(ctx)
	switch ev.State {
	case RunnerIdle:
		r.RunnerID = ev.RunnerID
		if r.State == RunnerProvisioning {
			r.State, r.IdleSince = RunnerIdle, &now
		}
		if p.s.Degraded {
			workflow.GetLogger(ctx).Info("Pool recovered", "repository", p.full())
		}
		p.s.Failures, p.s.Degraded, p.s.LastError, p.s.BackoffUntil = 0, false, "", time.Time{}
	case RunnerDeleted:
		p.removeRunner(ev.Name)
	case RunnerFailed:
		p.removeRunner(ev.Name)
		p.s.Failures++
		backoff := min(backoffMax, backoffFirst<<min(p.s.Failures-1, 10))
		p.s.BackoffUntil = now.Add(backoff)
		p.s.Degraded, p.s.LastError = true, ev.Error
		workflow.GetLogger(ctx).Warn("Runner failed; pool degraded", "repository", p.full(), "runner", ev.Name,
			"error", ev.Error, "failures", p.s.Failures, "backoff", backoff)
	}
}

func (p *pool) removeRunner(name string) {
	for i := range p.s.Runners {
		if p.s.Runners[i].Name == name {
			p.s.Runners = append(p.s.Runners[:i], p.s.Runners[i+1:]...)
			return
		}
	}
}

// control signals a runner without waiting on the main loop.
func (p *pool) control(ctx workflow.Context, name string, c RunnerControl) {
	f := workflow.SignalExternalWorkflow(ctx, RunnerWorkflowID(p.owner, p.repo, name), "", SignalControl, c)
	workflow.Go(ctx, func(ctx workflow.Context) {
		if err := f.Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Debug("Runner did not take a control", "runner", name, "action", c.Action, "error", err)
		}
	})
}

func (p *pool) counts() PoolCounts {
	c := PoolCounts{Queued: len(p.s.Queue), JobsDone: p.s.JobsDone}
	for _, r := range p.s.Runners {
		switch r.State {
		case RunnerProvisioning:
			c.Provisioning++
		case RunnerIdle:
			c.Idle++
		case RunnerBusy:
			c.Busy++
		case RunnerDeleting:
			c.Deleting++
		}
	}
	return c
}

// reconcile starts and deletes runners by the pool's rule and returns when
// it next needs to look again (zero: on the next event only).
//
//	wanted = min(maxRunners, busy + minIdle + queued); start runners while
//	provisioning + idle + busy < wanted; idle runners beyond minIdle and
//	the queue are deleted once idle for idleGracePeriod.
func (p *pool) reconcile(ctx workflow.Context) time.Time {
	if !p.s.Configured {
		return time.Time{}
	}
	now := workflow.Now(ctx)
	cfg := p.s.Config
	c := p.counts()
	var next time.Time
	wake := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if p.s.Draining {
		for i := range p.s.Runners {
			r := &p.s.Runners[i]
			if !r.DeleteSent && (r.State == RunnerProvisioning || r.State == RunnerIdle) {
				p.deleteRunner(ctx, r)
			}
		}
		return time.Time{}
	}
	wanted := min(cfg.MaxRunners, c.Busy+cfg.MinIdle+c.Queued)
	active := c.Provisioning + c.Idle + c.Busy
	if active < wanted && !p.s.AgentOffline {
		if now.Before(p.s.BackoffUntil) {
			wake(p.s.BackoffUntil)
		} else {
			for ; active < wanted; active++ {
				p.startRunner(ctx)
			}
		}
	}
	// Idle runners the pool does not need, oldest idle first.
	var idle []*RunnerRecord
	for i := range p.s.Runners {
		if r := &p.s.Runners[i]; r.State == RunnerIdle && !r.DeleteSent && r.IdleSince != nil {
			idle = append(idle, r)
		}
	}
	sort.SliceStable(idle, func(i, j int) bool { return idle[i].IdleSince.Before(*idle[j].IdleSince) })
	excess := len(idle) - (cfg.MinIdle + c.Queued)
	if over := active - cfg.MaxRunners; over > 0 && over > excess {
		// maxRunners was lowered: idle runners go at once.
		for _, r := range idle[:min(over, len(idle))] {
			p.deleteRunner(ctx, r)
		}
		return next
	}
	for _, r := range idle[:max(0, min(excess, len(idle)))] {
		expiry := r.IdleSince.Add(cfg.IdleGracePeriod.D())
		if !now.Before(expiry) {
			p.deleteRunner(ctx, r)
		} else {
			wake(expiry)
		}
	}
	return next
}

func (p *pool) deleteRunner(ctx workflow.Context, r *RunnerRecord) {
	r.DeleteSent = true
	r.State = RunnerDeleting
	p.control(ctx, r.Name, RunnerControl{Action: ControlDelete})
}

func (p *pool) startRunner(ctx workflow.Context) {
	p.s.Seq++
	name := fmt.Sprintf("garo-%s-%d", p.s.Prefix, p.s.Seq)
	if len(name) > maxRunnerName {
		name = name[:maxRunnerName]
	}
	cfg := p.s.Config
	group, _ := RunnerGroupID(cfg.RunnerGroup)
	p.s.Runners = append(p.s.Runners, RunnerRecord{Name: name, State: RunnerProvisioning, CreatedAt: workflow.Now(ctx)})
	opts := workflow.ChildWorkflowOptions{
		WorkflowID:        RunnerWorkflowID(p.owner, p.repo, name),
		TaskQueue:         ServerTaskQueue,
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		StaticSummary:     fmt.Sprintf("runner %s on agent %s for %s", name, cfg.Agent, p.full()),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			SearchAttributeAgent.ValueSet(cfg.Agent),
			SearchAttributeRepository.ValueSet(p.full()),
			SearchAttributeRunnerState.ValueSet(string(RunnerProvisioning))),
	}
	in := RunnerInput{PoolID: workflow.GetInfo(ctx).WorkflowExecution.ID, Owner: p.owner, Repo: p.repo, Name: name,
		Agent: cfg.Agent, Labels: cfg.Labels, GroupID: group, Ephemeral: cfg.Ephemeral,
		BootstrapTimeout: cfg.BootstrapTimeout, Provider: cfg.Provider}
	f := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), RunnerWorkflowName, in)
	workflow.Go(ctx, func(ctx workflow.Context) {
		if err := f.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
			p.onRunner(ctx, RunnerEvent{Name: name, State: RunnerFailed, Error: "start runner workflow: " + err.Error()})
			return
		}
		var res RunnerResult
		if err := f.Get(ctx, &res); err != nil && p.runner(name) != nil {
			p.onRunner(ctx, RunnerEvent{Name: name, State: RunnerFailed, Error: "runner workflow: " + err.Error()})
		}
	})
}

// summary is the pool's view without its runners and queue: what the memo
// carries.
func (p *pool) summary() PoolView {
	return PoolView{Repository: p.full(), Config: p.s.Config, Draining: p.s.Draining, Degraded: p.s.Degraded,
		AgentOffline: p.s.AgentOffline, LastError: p.s.LastError, Counts: p.counts(), ConfiguredBy: p.s.ConfiguredBy}
}

func (p *pool) view() PoolView {
	v := p.summary()
	v.Runners, v.Queue = []RunnerView{}, append([]QueuedJob{}, p.s.Queue...)
	for _, r := range p.s.Runners {
		v.Runners = append(v.Runners, RunnerView{Name: r.Name, State: r.State, RunnerID: r.RunnerID, JobID: r.JobID,
			CreatedAt: r.CreatedAt, IdleSince: r.IdleSince})
	}
	return v
}

// publish upserts the memo (the summary) and the GaroAgent search
// attribute when they changed.
func (p *pool) publish(ctx workflow.Context) {
	v := p.summary()
	if p.agentSA != v.Config.Agent && v.Config.Agent != "" {
		if err := workflow.UpsertTypedSearchAttributes(ctx, SearchAttributeAgent.ValueSet(v.Config.Agent)); err == nil {
			p.agentSA = v.Config.Agent
		}
	}
	if pv := p.published; pv != nil && pv.Counts == v.Counts && pv.Degraded == v.Degraded && pv.Draining == v.Draining &&
		pv.AgentOffline == v.AgentOffline &&
		pv.LastError == v.LastError && pv.ConfiguredBy == v.ConfiguredBy && sameConfig(pv.Config, v.Config) {
		return
	}
	_ = workflow.UpsertMemo(ctx, map[string]any{MemoSummary: v})
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("Pool **%s** on agent %s: %d provisioning, %d idle, %d busy, %d deleting; %d queued; %d jobs done.%s",
		v.Repository, v.Config.Agent, v.Counts.Provisioning, v.Counts.Idle, v.Counts.Busy, v.Counts.Deleting,
		v.Counts.Queued, v.Counts.JobsDone, degradedNote(v)))
	p.published = &v
}

func degradedNote(v PoolView) string {
	if v.Degraded {
		return " Degraded: " + v.LastError
	}
	return ""
}

func sameConfig(a, b PoolConfig) bool {
	if a.Agent != b.Agent || a.MinIdle != b.MinIdle || a.MaxRunners != b.MaxRunners || a.IdleGracePeriod != b.IdleGracePeriod ||
		a.QueuePollInterval != b.QueuePollInterval ||
		a.BootstrapTimeout != b.BootstrapTimeout || a.Ephemeral != b.Ephemeral || a.RunnerGroup != b.RunnerGroup ||
		len(a.Labels) != len(b.Labels) || len(a.Provider) != len(b.Provider) {
		return false
	}
	for i := range a.Labels {
		if a.Labels[i] != b.Labels[i] {
			return false
		}
	}
	for k, v := range a.Provider {
		if b.Provider[k] != v {
			return false
		}
	}
	return true
}

func (p *pool) run(ctx workflow.Context) (PoolView, error) {
	for {
		p.takeSignals(ctx)
		next := p.reconcile(ctx)
		if poll := p.pollQueue(ctx); !poll.IsZero() && (next.IsZero() || poll.Before(next)) {
			next = poll
		}
		p.publish(ctx)
		if p.s.Draining && len(p.s.Runners) == 0 {
			break
		}
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return p.continueAsNew(ctx)
		}
		p.dirty = false
		cond := func() bool {
			return p.dirty || p.signalsWaiting(ctx) || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
		}
		if next.IsZero() {
			if err := workflow.Await(ctx, cond); err != nil {
				return p.view(), err
			}
		} else if d := next.Sub(workflow.Now(ctx)); d > 0 {
			if _, err := workflow.AwaitWithTimeout(ctx, d, cond); err != nil {
				return p.view(), err
			}
		}
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return p.view(), err
	}
	workflow.GetLogger(ctx).Info("Pool drained", "repository", p.full())
	return p.view(), nil
}

// continueAsNew carries the state into a new run, after the handlers have
// finished and every signal still buffered has been applied.
func (p *pool) continueAsNew(ctx workflow.Context) (PoolView, error) {
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return p.view(), err
	}
	p.takeSignals(ctx)
	st := p.s
	return p.view(), workflow.NewContinueAsNewError(ctx, RepositoryWorkflowName,
		RepositoryInput{Owner: p.owner, Repo: p.repo, State: &st})
}
