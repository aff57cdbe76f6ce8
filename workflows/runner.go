package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
)

// Polling of a new runner's status, until it is online.
const (
	onlinePollFirst = 2 * time.Second
	onlinePollMax   = 30 * time.Second
	// busyRetryDelay is how long a runner that GitHub reports busy is
	// left to finish before deletion is tried again.
	busyRetryDelay = 30 * time.Second
	// healthEvery is how often a serving runner's instance is checked (a
	// local call on the agent, no GitHub request) in runs from before
	// bounded histories, and how long a failed watch waits to be tried
	// again.
	healthEvery = 30 * time.Second
	// watchLength bounds one watch of a serving runner's instance (an
	// activity that returns when the instance exits); then another starts.
	watchLength = time.Hour
	// watchSettle is how long a runner that was removed waits for its
	// watch to see the instance gone, so that no activity of it is left
	// running on the agent when it completes.
	watchSettle = 10 * time.Second
)

// leanRunnerVersion is the workflow.GetVersion change of the runs of
// release v6 (the oldest in the support window): one version marker, the
// search attributes its pool started it with, no state upserted when it
// completes. Every such run has it.
const leanRunnerVersion = "lean-runner"

// RunnerWorkflow owns one runner instance from provisioning to deletion.
// Its activities run on its agent's task queue; it tells its pool when the
// runner comes online and when it is gone, and takes the pool's controls.
// A runner that lives long (kept idle by minIdle, or reusable) continues
// as new before its history grows long, carrying where it was.
func RunnerWorkflow(ctx workflow.Context, in RunnerInput) (RunnerResult, error) {
	if in.Version >= runnerV1 {
		return leanRunner(ctx, in)
	}
	r := &runnerWorkflow{in: in, state: RunnerProvisioning, log: log.With(workflow.GetLogger(ctx),
		"runner", in.Name, "repository", in.Owner+"/"+in.Repo, "pool", poolOrDefault(in.Pool))}
	supported(ctx, leanRunnerVersion)
	if in.Resume != nil {
		r.resume(*in.Resume)
	}
	workflow.Go(ctx, r.receiveControls)
	return r.run(ctx)
}

type runnerWorkflow struct {
	in        RunnerInput
	log       log.Logger
	state     RunnerState
	runnerID  int64
	deleteReq bool
	busy      bool
	jobDone   bool
	// lateCreate: the create returned after the runner's job had begun
	// (the agent died mid-create and retried it on its return). Its
	// instance may be a second one with a registration of its own, maybe
	// running a job: it is removed through GitHub, never killed mid-job.
	lateCreate bool
	calls      int
	// online: it came online (or took a job) within its bootstrap time.
	online   bool
	deadline time.Time
}

// resume takes up where the run before this one was.
func (r *runnerWorkflow) resume(st RunnerResume) {
	r.state, r.runnerID, r.calls, r.online, r.deadline = st.State, st.RunnerID, st.Calls, st.Online, st.BootstrapDeadline
	r.busy, r.jobDone, r.deleteReq, r.lateCreate = st.Busy, st.JobDone, st.DeleteRequested, st.LateCreate
}

func (r *runnerWorkflow) receiveControls(ctx workflow.Context) {
	ch := workflow.GetSignalChannel(ctx, SignalControl)
	for {
		var c RunnerControl
		if !ch.Receive(ctx, &c) {
			return
		}
		r.apply(c)
	}
}

func (r *runnerWorkflow) apply(c RunnerControl) {
	switch c.Action {
	case ControlBusy:
		r.busy = true
	case ControlJobDone:
		r.busy, r.jobDone = false, true
	case ControlDelete:
		r.deleteReq = true
	}
}

func (r *runnerWorkflow) setState(ctx workflow.Context, s RunnerState) {
	if r.state == s {
		return
	}
	r.state = s
	if s == RunnerDeleted {
		return // the workflow completes now: its status tells
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, SearchAttributeRunnerState.ValueSet(string(s)))
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("Runner **%s** of pool %s of %s/%s on agent %s is %s.", r.in.Name,
		poolOrDefault(r.in.Pool), r.in.Owner, r.in.Repo, r.in.Agent, s))
}

// tell signals the pool; a pool that is gone is not an error.
func (r *runnerWorkflow) tell(ctx workflow.Context, s RunnerState, errText string) {
	ev := RunnerEvent{Name: r.in.Name, State: s, RunnerID: r.runnerID, Error: errText}
	if err := workflow.SignalExternalWorkflow(ctx, r.in.RepositoryID, "", SignalRunner, ev).Get(ctx, nil); err != nil {
		r.log.Warn("Repository did not take the runner's event", "state", s, "error", err)
	}
}

// activityOptions runs an activity on the agent's queue; an agent that is
// down leaves it waiting up to ScheduleToStart, then it is retried.
func (r *runnerWorkflow) activityOptions(ctx workflow.Context, what string, startToClose time.Duration, nonRetryable ...string) workflow.Context {
	r.calls++
	var heartbeat time.Duration
	if startToClose > time.Minute {
		// Long calls heartbeat (every 5s): an agent that dies in one is
		// noticed within 15s and the call retried, not at the end of
		// StartToClose. (Timeouts are not part of the replayed commands.)
		heartbeat = 15 * time.Second
	}
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              AgentTaskQueue(r.in.Agent),
		ActivityID:             fmt.Sprintf("agent/%s/%s/%s/%d", r.in.Agent, what, r.in.Name, r.calls),
		ScheduleToStartTimeout: 5 * time.Minute,
		StartToCloseTimeout:    startToClose,
		HeartbeatTimeout:       heartbeat,
		Summary:                fmt.Sprintf("%s runner %s on agent %s for %s/%s", what, r.in.Name, r.in.Agent, r.in.Owner, r.in.Repo),
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			NonRetryableErrorTypes: nonRetryable,
		},
	})
}

func (r *runnerWorkflow) providerArgs() map[string]string { return r.in.Provider }

// errContinueAsNew tells run that the history is long: the run continues
// as new where it is.
var errContinueAsNew = errors.New("continue as new")

func (r *runnerWorkflow) run(ctx workflow.Context) (RunnerResult, error) {
	if r.in.Resume == nil {
		if res, err, ok := r.create(ctx); !ok {
			return res, err
		}
	}
	if !r.online {
		// Bootstrap: wait until GitHub reports it online (or it takes a job).
		online, err := r.waitOnline(ctx, r.deadline)
		switch {
		case errors.Is(err, errContinueAsNew):
			return r.continueAsNew(ctx)
		case err != nil:
			return RunnerResult{}, err
		case !online && r.deleteReq:
			return r.remove(ctx)
		case !online:
			return r.fail(ctx, fmt.Sprintf("runner %s did not come online within %s", r.in.Name, r.in.BootstrapTimeout))
		}
		r.online = true
		r.setState(ctx, r.servingState())
		r.tell(ctx, RunnerIdle, "")
	}
	res, err := r.serve(ctx)
	if errors.Is(err, errContinueAsNew) {
		return r.continueAsNew(ctx)
	}
	return res, err
}

// create registers the runner with GitHub and starts its instance, in one
// activity, bounded by the bootstrap timeout; ok is false when the runner
// failed and its result is final.
func (r *runnerWorkflow) create(ctx workflow.Context) (res RunnerResult, err error, ok bool) {
	r.deadline = workflow.Now(ctx).Add(r.in.BootstrapTimeout.D())
	createCtx, cancelCreate := workflow.WithCancel(ctx)
	createCtx = r.activityOptions(createCtx, "create", 5*time.Minute,
		activities.ErrTypeNoProvider, activities.ErrTypeNoGitHub, activities.ErrTypeInvalid, activities.ErrTypeNotFound,
		activities.ErrTypeNameInUse)
	createCtx = workflow.WithScheduleToCloseTimeout(createCtx, r.in.BootstrapTimeout.D())
	var created activities.CreateRunnerResult
	err = workflow.ExecuteActivity(createCtx, activities.CreateRunnerName, activities.CreateRunnerInput{
		Owner: r.in.Owner, Repo: r.in.Repo, Name: r.in.Name, Labels: r.in.Labels, GroupID: r.in.GroupID,
		Ephemeral: r.in.Ephemeral, Provider: r.providerArgs(),
	}).Get(ctx, &created)
	cancelCreate()
	if err != nil {
		r.log.Warn("Runner could not be created", "error", err)
		res, err = r.fail(ctx, fmt.Sprintf("create runner %s: %v", r.in.Name, rootMessage(err)))
		return res, err, false
	}
	r.runnerID = created.RunnerID
	if r.busy || r.jobDone {
		r.lateCreate = true
		r.log.Warn("The runner's job began before its create returned: its instance may be a second one, removed through GitHub",
			"runnerId", created.RunnerID)
	}
	return RunnerResult{}, nil, true
}

func (r *runnerWorkflow) servingState() RunnerState {
	if r.busy {
		return RunnerBusy
	}
	return RunnerIdle
}

// serve runs the runner, idle and busy in turn, until the pool asks for
// its deletion or an ephemeral runner has done its job, watching its
// instance on the agent meanwhile.
func (r *runnerWorkflow) serve(ctx workflow.Context) (RunnerResult, error) {
	for {
		if continueAsNewDue(ctx) {
			return RunnerResult{}, errContinueAsNew
		}
		res, done, err := r.watch(ctx)
		if done || err != nil {
			return res, err
		}
	}
}

// watch runs one WatchRunner activity on the agent, which returns when the
// instance exits or after watchLength, and takes the pool's controls
// meanwhile. done tells that the runner's life has ended with res.
func (r *runnerWorkflow) watch(ctx workflow.Context) (res RunnerResult, done bool, err error) {
	watchCtx, stopWatch := workflow.WithCancel(ctx)
	defer stopWatch()
	watch := workflow.ExecuteActivity(r.watchOptions(watchCtx), activities.WatchRunnerName, activities.RunnerStatusInput{
		Owner: r.in.Owner, Repo: r.in.Repo, Name: r.in.Name, RunnerID: r.runnerID, Provider: r.providerArgs(),
	})
	for {
		if err := workflow.Await(ctx, func() bool {
			return watch.IsReady() || r.finished() || r.servingState() != r.state || continueAsNewDue(ctx)
		}); err != nil {
			return RunnerResult{}, true, err
		}
		switch {
		case r.finished():
			res, err := r.remove(ctx)
			if err == nil {
				// The instance is gone: the watch sees it at once.
				_, err = awaitTimeout(ctx, watchSettle, watch.IsReady)
			}
			return res, true, err
		case watch.IsReady():
			return r.watched(ctx, watch)
		case r.servingState() != r.state:
			r.setState(ctx, r.servingState())
		default:
			return RunnerResult{}, false, nil // continue as new
		}
	}
}

// finished: the pool asked for the runner's deletion, or an ephemeral
// runner has done its job.
func (r *runnerWorkflow) finished() bool { return r.deleteReq || (r.jobDone && r.in.Ephemeral) }

// watched acts on what a watch found: an instance that ended cleanly is
// removed, one that crashed or vanished is reported lost; a watch that
// failed (the agent cannot watch) is tried again after healthEvery.
func (r *runnerWorkflow) watched(ctx workflow.Context, watch workflow.Future) (RunnerResult, bool, error) {
	var st activities.RunnerStatus
	if err := watch.Get(ctx, &st); err != nil {
		r.log.Warn("Watching the runner's instance failed; watching again", "error", err)
		_, err := awaitTimeout(ctx, healthEvery, r.finished)
		return RunnerResult{}, false, err
	}
	code := st.ExitCode
	switch st.Instance {
	case "exited":
	case "absent":
		code = -1
	default:
		return RunnerResult{}, false, nil // still running: watch on
	}
	if code == 0 {
		// It ended cleanly (an ephemeral runner after its job, its
		// completion not yet reported): remove it. GitHub unregisters an
		// ephemeral runner that ran its job by itself.
		if r.in.Ephemeral && r.busy {
			r.jobDone = true
		}
		res, err := r.remove(ctx)
		return res, true, err
	}
	res, err := r.fail(ctx, fmt.Sprintf("runner %s lost: its instance exited with code %d", r.in.Name, code))
	return res, true, err
}

// watchOptions runs WatchRunner on the agent's queue: it heartbeats, so an
// agent that dies in it is noticed within a minute and the watch is tried
// again, for as long as the agent is away.
func (r *runnerWorkflow) watchOptions(ctx workflow.Context) workflow.Context {
	r.calls++
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           AgentTaskQueue(r.in.Agent),
		ActivityID:          fmt.Sprintf("agent/%s/watch/%s/%d", r.in.Agent, r.in.Name, r.calls),
		StartToCloseTimeout: watchLength,
		HeartbeatTimeout:    time.Minute,
		Summary:             fmt.Sprintf("watch runner %s on agent %s for %s/%s", r.in.Name, r.in.Agent, r.in.Owner, r.in.Repo),
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrTypeNoProvider},
		},
	})
}

// continueAsNew carries where the runner is into a new run, after taking
// the controls still buffered.
func (r *runnerWorkflow) continueAsNew(ctx workflow.Context) (RunnerResult, error) {
	ch := workflow.GetSignalChannel(ctx, SignalControl)
	for {
		var c RunnerControl
		if !ch.ReceiveAsync(&c) {
			break
		}
		r.apply(c)
	}
	in := r.in
	in.Resume = &RunnerResume{Online: r.online, BootstrapDeadline: r.deadline, State: r.state, RunnerID: r.runnerID,
		Busy: r.busy, JobDone: r.jobDone, DeleteRequested: r.deleteReq, LateCreate: r.lateCreate, Calls: r.calls}
	return RunnerResult{State: r.state, RunnerID: r.runnerID}, workflow.NewContinueAsNewError(ctx, RunnerWorkflowName, in)
}

// waitOnline polls the runner's status with growing intervals until it is
// online, busy, asked to go, or the deadline passes; errContinueAsNew
// when the history is long first.
func (r *runnerWorkflow) waitOnline(ctx workflow.Context, deadline time.Time) (bool, error) {
	interval := onlinePollFirst
	for {
		if r.busy || r.jobDone {
			return true, nil
		}
		if r.deleteReq {
			return false, nil
		}
		remaining := deadline.Sub(workflow.Now(ctx))
		if remaining <= 0 {
			return false, nil
		}
		if continueAsNewDue(ctx) {
			return false, errContinueAsNew
		}
		woke, err := awaitTimeout(ctx, min(interval, remaining), func() bool { return r.busy || r.jobDone || r.deleteReq })
		if err != nil {
			return false, err
		}
		if woke {
			continue
		}
		if online, lost := r.pollStatus(ctx, remaining); online || lost {
			return online, nil
		}
		interval = min(2*interval, onlinePollMax)
	}
}

// pollStatus asks the agent for the runner's status on GitHub: online, or
// lost when its instance died before it came online.
func (r *runnerWorkflow) pollStatus(ctx workflow.Context, remaining time.Duration) (online, lost bool) {
	var st activities.RunnerStatus
	sctx := r.activityOptions(ctx, "status", 30*time.Second)
	sctx = workflow.WithScheduleToCloseTimeout(sctx, max(remaining, time.Minute))
	if err := workflow.ExecuteActivity(sctx, activities.RunnerStatusName, activities.RunnerStatusInput{
		Owner: r.in.Owner, Repo: r.in.Repo, Name: r.in.Name, RunnerID: r.runnerID, Provider: r.providerArgs(),
	}).Get(ctx, &st); err != nil {
		return false, false
	}
	if st.GitHubStatus == "online" {
		r.busy = r.busy || st.Busy
		return true, false
	}
	if st.Instance == "exited" && st.ExitCode == 0 {
		// It came online, served and ended between two looks (its
		// webhooks missed, as while the server was down): the watch
		// finds it ended and removes it. Not a failure.
		return true, false
	}
	return false, st.Instance == "exited"
}

// remove deletes the runner from GitHub, then its instance. A runner that
// GitHub reports busy is left to finish its job and tried again: never
// forced.
func (r *runnerWorkflow) remove(ctx workflow.Context) (RunnerResult, error) {
	r.setState(ctx, RunnerDeleting)
	if err := r.deleteEverywhere(ctx); err != nil {
		return RunnerResult{}, err
	}
	r.setState(ctx, RunnerDeleted)
	r.tell(ctx, RunnerDeleted, "")
	return RunnerResult{State: RunnerDeleted, RunnerID: r.runnerID}, nil
}

func (r *runnerWorkflow) deleteEverywhere(ctx workflow.Context) error {
	for {
		dctx := r.activityOptions(ctx, "delete", 2*time.Minute, activities.ErrTypeRunnerBusy)
		err := workflow.ExecuteActivity(dctx, activities.DeleteRunnerName, activities.DeleteRunnerInput{
			Owner: r.in.Owner, Repo: r.in.Repo, Name: r.in.Name, RunnerID: r.runnerID, Provider: r.providerArgs(),
			// GitHub unregisters an ephemeral runner after its job itself
			// (not the second registration of a late create).
			GitHubDone: r.in.Ephemeral && r.jobDone && !r.lateCreate,
		}).Get(ctx, nil)
		var ae *temporal.ApplicationError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ae) && ae.Type() == activities.ErrTypeRunnerBusy:
			r.log.Info("Runner busy; deletion waits for its job")
			if err := workflow.Sleep(ctx, busyRetryDelay); err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// fail cleans up what a failed runner left and reports it failed. It
// tells the pool first, so that it replaces the runner (and learns which
// job was lost) at once, while the cleanup may wait for GitHub to stop
// reporting the dead runner busy.
func (r *runnerWorkflow) fail(ctx workflow.Context, reason string) (RunnerResult, error) {
	r.tell(ctx, RunnerFailed, reason)
	r.setState(ctx, RunnerDeleting)
	if err := r.deleteEverywhere(ctx); err != nil {
		r.log.Error("Cleanup of a failed runner failed", "error", err)
	}
	r.setState(ctx, RunnerFailed)
	return RunnerResult{State: RunnerFailed, RunnerID: r.runnerID, Error: reason}, nil
}

// rootMessage is the innermost message of an activity error, which says
// what went wrong without the wrapping of the retries.
func rootMessage(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}
