package runners

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/activities/github"
	"github.com/garo-run/garo/activities/provider"
)

// busyRetry is how long a runner GitHub reports busy is left to finish
// its job before its removal is tried again.
const busyRetry = 30 * time.Second

// errAgentStopping ends a runner's activity when its agent stops: the
// runner goes on, and the next attempt takes it up when the agent is back.
var errAgentStopping = errors.New("agent stopping; the runner goes on and is taken up when the agent is back")

// lifeEnd is how the watch of a runner's instance ended.
type lifeEnd int

const (
	endExited lifeEnd = iota
	endVanished
	endCancelled
	endStopping
)

// RunRunner runs a runner's whole life (activities.RunRunnerInput): it
// creates the runner (as CreateRunner, safe to retry: a later attempt
// takes up the instance an earlier one started), watches its instance
// until it ends, removes what is left and reports the end to the pool.
// Cancelled by its workflow (the pool wants the runner gone) it removes
// the runner, waiting for a busy one to finish its job; cancelled for any
// other reason (the attempt timed out, the workflow is gone) it leaves
// the instance to the next attempt, or to the reaper.
func (a *Activities) RunRunner(ctx context.Context, in activities.RunRunnerInput) (res activities.RunRunnerResult, err error) {
	// An attempt whose result Temporal did not get (it was away when the
	// runner ended), or that Temporal gave up on while it still ran, may
	// have a successor here: it waits for that attempt and answers with
	// its end, never creating the runner a second time.
	l, ok := a.lives.await(ctx, in.Name)
	if !ok {
		return l.res, l.err
	}
	defer func() { a.lives.finish(in.Name, l, res, err) }()
	// Heartbeats go on after a cancellation, while the runner is removed.
	bg := context.WithoutCancel(ctx)
	var phase atomic.Value
	phase.Store(phaseCreating)
	defer beat(bg, heartbeatEvery, func() any { return phase.Load() })()
	log := activity.GetLogger(ctx)
	p, err := a.provider(in.Provider)
	if err != nil {
		a.report(bg, in.Pool, in.Name, activities.RunnerReport{Outcome: activities.OutcomeFailed, Error: err.Error()})
		return activities.RunRunnerResult{}, err
	}
	if earlierAttemptCreated(ctx) {
		// An attempt before this agent's restart created the runner.
		if _, err := p.Get(ctx, in.Name); errors.Is(err, provider.ErrNotFound) {
			return a.endedUnseen(bg, in, p)
		}
	}
	created, err := a.createRunner(ctx, in.CreateRunnerInput)
	a.countFailure(in.Provider["kind"], err)
	if err != nil {
		if ctx.Err() != nil {
			return a.cancelled(ctx, bg, in, p, 0)
		}
		var ae *temporal.ApplicationError
		if errors.As(err, &ae) && ae.NonRetryable() {
			a.report(bg, in.Pool, in.Name, activities.RunnerReport{Outcome: activities.OutcomeFailed, Error: err.Error()})
		}
		return activities.RunRunnerResult{}, err
	}
	phase.Store(phaseRunning)
	activity.RecordHeartbeat(ctx, phaseRunning)
	end, code := a.watchLife(ctx, in.Name, p)
	switch end {
	case endStopping:
		log.Info("Agent stopping; the runner goes on and is taken up when the agent is back", "runner", in.Name)
		return activities.RunRunnerResult{}, temporal.NewApplicationError(errAgentStopping.Error(), "AgentStopping")
	case endCancelled:
		phase.Store(phaseRemoving)
		return a.cancelled(ctx, bg, in, p, created.RunnerID)
	}
	res = activities.RunRunnerResult{Outcome: activities.OutcomeExited, ExitCode: code, RunnerID: created.RunnerID}
	if end == endVanished {
		res = activities.RunRunnerResult{Outcome: activities.OutcomeVanished, ExitCode: -1, RunnerID: created.RunnerID}
	}
	phase.Store(phaseRemoving)
	clean := res.Outcome == activities.OutcomeExited && code == 0
	if !clean {
		// Lost: the pool hears of it first and replaces it, while what it
		// left is removed (GitHub may report a dead runner busy a while).
		a.report(bg, in.Pool, in.Name, activities.RunnerReport{Outcome: res.Outcome, ExitCode: res.ExitCode, RunnerID: created.RunnerID})
	}
	// GitHub unregisters an ephemeral runner after its job by itself.
	id := created.RunnerID
	if clean && in.Ephemeral {
		id = -1
	}
	if err := a.remove(bg, in.CreateRunnerInput, p, id, false); err != nil {
		return res, err
	}
	if clean {
		a.report(bg, in.Pool, in.Name, activities.RunnerReport{Outcome: res.Outcome, RunnerID: created.RunnerID})
	}
	log.Info("Runner ended", "runner", in.Name, "repository", in.Owner+"/"+in.Repo, "outcome", res.Outcome, "exitCode", res.ExitCode)
	return res, nil
}

// The phases of a runner's life, as RunRunner's heartbeats record them: a
// later attempt learns from them whether an earlier one created it.
const (
	phaseCreating = "creating"
	phaseRunning  = "running"
	phaseRemoving = "removing"
)

// earlierAttemptCreated reports whether an earlier attempt of this
// activity had created the runner, as its last heartbeat recorded.
func earlierAttemptCreated(ctx context.Context) bool {
	if !activity.HasHeartbeatDetails(ctx) {
		return false
	}
	var phase string
	if err := activity.GetHeartbeatDetails(ctx, &phase); err != nil {
		return false
	}
	return phase == phaseRunning || phase == phaseRemoving
}

// endedUnseen ends a runner that an earlier attempt created and whose
// instance is gone, its end unseen (the agent was away): what is left on
// GitHub is removed, and the pool hears that it vanished (and rechecks
// its job, if it had one).
func (a *Activities) endedUnseen(ctx context.Context, in activities.RunRunnerInput, p provider.Provider) (activities.RunRunnerResult, error) {
	activity.GetLogger(ctx).Info("Runner's instance ended while the agent was away; removing what is left", "runner", in.Name)
	res := activities.RunRunnerResult{Outcome: activities.OutcomeVanished, ExitCode: -1}
	a.report(ctx, in.Pool, in.Name, activities.RunnerReport{Outcome: res.Outcome, ExitCode: res.ExitCode})
	return res, a.remove(ctx, in.CreateRunnerInput, p, 0, false)
}

// cancelled acts on a cancelled RunRunner: a delete its workflow asked
// for removes the runner (a busy one is waited for); any other
// cancellation leaves it.
func (a *Activities) cancelled(ctx, bg context.Context, in activities.RunRunnerInput, p provider.Provider, runnerID int64) (activities.RunRunnerResult, error) {
	var asked *temporal.CanceledError
	if !errors.As(context.Cause(ctx), &asked) {
		return activities.RunRunnerResult{}, ctx.Err()
	}
	if err := a.remove(bg, in.CreateRunnerInput, p, runnerID, true); err != nil {
		return activities.RunRunnerResult{}, err
	}
	a.report(bg, in.Pool, in.Name, activities.RunnerReport{Outcome: activities.OutcomeDeleted, RunnerID: runnerID})
	activity.GetLogger(ctx).Info("Runner deleted", "runner", in.Name, "repository", in.Owner+"/"+in.Repo, "runnerId", runnerID)
	return activities.RunRunnerResult{Outcome: activities.OutcomeDeleted, RunnerID: runnerID}, nil
}

// watchLife watches the runner's instance until it exits or vanishes, the
// activity is cancelled, or the agent stops.
func (a *Activities) watchLife(ctx context.Context, name string, p provider.Provider) (lifeEnd, int) {
	every := watchEvery
	var exited <-chan struct{}
	if n, ok := p.(provider.ExitNotifier); ok {
		exited, every = n.Exited(name), notifiedWatchEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		inst, err := p.Get(ctx, name)
		switch {
		case errors.Is(err, provider.ErrNotFound):
			return endVanished, -1
		case err != nil && ctx.Err() == nil:
			activity.GetLogger(ctx).Warn("Runner instance not read; watching on", "runner", name, "error", err)
		case err == nil && inst.State == provider.StateExited:
			return endExited, inst.ExitCode
		}
		select {
		case <-ctx.Done():
			return endCancelled, 0
		case <-activity.GetWorkerStopChannel(ctx):
			return endStopping, 0
		case <-exited:
			exited = nil // it has exited: the next look reports how
		case <-t.C:
		}
	}
}

// remove removes the runner from GitHub (id 0: looked up by name; -1:
// GitHub removed it itself), then deletes its instance. A runner GitHub
// reports busy is left to finish its job when waitBusy (its removal is
// tried again every busyRetry, and the instance kept), and an error
// otherwise.
func (a *Activities) remove(ctx context.Context, in activities.CreateRunnerInput, p provider.Provider, id int64, waitBusy bool) error {
	gh, err := a.github()
	if err != nil {
		return err
	}
	repo := github.Repo{Owner: in.Owner, Name: in.Repo}
	wait := time.Second
	for id >= 0 {
		err := func() error {
			if id == 0 {
				r, found, err := gh.RunnerByName(ctx, repo, in.Name)
				if err != nil || !found {
					return err
				}
				id = r.ID
			}
			return gh.RemoveRunner(ctx, repo, id)
		}()
		var ae *temporal.ApplicationError
		switch {
		case err == nil:
			id = -1
			continue
		case errors.As(err, &ae) && ae.Type() == activities.ErrTypeRunnerBusy && waitBusy:
			activity.GetLogger(ctx).Info("Runner busy; its removal waits for its job", "runner", in.Name)
			wait = busyRetry
		case errors.As(err, &ae) && ae.NonRetryable():
			return err
		default:
			// GitHub unavailable, or a limit: tried again, heartbeating.
			activity.GetLogger(ctx).Warn("Runner not removed from GitHub yet; trying again", "runner", in.Name, "retryIn", wait, "error", err)
			wait = min(2*wait, time.Minute)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	if err := p.Delete(ctx, in.Name); err != nil && !errors.Is(err, provider.ErrNotFound) {
		return fmt.Errorf("delete instance of runner %s: %w", in.Name, err)
	}
	return nil
}

// report tells the runner's pool of its end, through the server, and
// returns once it is delivered (or ctx ends). Without a reporter (a test)
// it does nothing.
func (a *Activities) report(ctx context.Context, pool, name string, r activities.RunnerReport) {
	if a.Reports == nil || pool == "" {
		return
	}
	r.Runner, r.Agent, r.Event, r.At = name, a.Agent, activities.ReportEnded, time.Now().UTC()
	if err := a.Reports.Report(ctx, pool, r); err != nil {
		activity.GetLogger(ctx).Warn("Runner's end not reported to its pool; the pool finds it by a look", "runner", name, "error", err)
	}
}

// beat records a heartbeat, with what details says, every interval (the
// first after one: an activity shorter than that sends none) until the
// returned stop is called.
func beat(ctx context.Context, every time.Duration, details func() any) (stop func()) {
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			activity.RecordHeartbeat(ctx, details())
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// lifeMemory keeps, in the agent's process, the runners whose life an
// attempt of RunRunner has taken up, until an hour after it ended.
type lifeMemory struct {
	mu sync.Mutex
	m  map[string]*life
}

// life is one runner's, as an attempt runs it.
type life struct {
	done  chan struct{}
	res   activities.RunRunnerResult
	err   error
	ended time.Time
}

// lifeKept is how long a runner's end is remembered.
const lifeKept = time.Hour

// await takes up the life of runner name: ok when this attempt is to run
// it; otherwise l is how an earlier attempt ended it (waited for while it
// runs), or ctx's end.
func (m *lifeMemory) await(ctx context.Context, name string) (l *life, ok bool) {
	for {
		m.mu.Lock()
		if m.m == nil {
			m.m = map[string]*life{}
		}
		for k, v := range m.m {
			if !v.ended.IsZero() && time.Since(v.ended) > lifeKept {
				delete(m.m, k)
			}
		}
		l, found := m.m[name]
		if !found {
			l = &life{done: make(chan struct{})}
			m.m[name] = l
			m.mu.Unlock()
			return l, true
		}
		m.mu.Unlock()
		activity.GetLogger(ctx).Info("An earlier attempt runs this runner; waiting for its end", "runner", name)
		select {
		case <-l.done:
			if l.err == nil {
				return l, false
			}
			// It failed: this attempt takes over (finish forgot it).
		case <-ctx.Done():
			return &life{err: ctx.Err()}, false
		case <-time.After(heartbeatEvery):
			activity.RecordHeartbeat(ctx, phaseRunning)
		}
	}
}

// finish records how the attempt that held l ended: a life that ended is
// remembered; one that failed is forgotten, for the next attempt to take.
func (m *lifeMemory) finish(name string, l *life, res activities.RunRunnerResult, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l.res, l.err, l.ended = res, err, time.Now()
	if err != nil {
		delete(m.m, name)
	}
	close(l.done)
}
