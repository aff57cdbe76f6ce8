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
	// local call on the agent, no GitHub request).
	healthEvery = 30 * time.Second
)

// RunnerWorkflow owns one runner instance from provisioning to deletion.
// Its activities run on its agent's task queue; it tells its pool when the
// runner comes online and when it is gone, and takes the pool's controls.
func RunnerWorkflow(ctx workflow.Context, in RunnerInput) (RunnerResult, error) {
	r := &runnerWorkflow{in: in, state: RunnerProvisioning, log: log.With(workflow.GetLogger(ctx),
		"runner", in.Name, "repository", in.Owner+"/"+in.Repo, "pool", poolOrDefault(in.Pool))}
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		SearchAttributeAgent.ValueSet(in.Agent),
		SearchAttributeRepository.ValueSet(in.Owner+"/"+in.Repo),
		SearchAttributeRunnerState.ValueSet(string(RunnerProvisioning))); err != nil {
		return RunnerResult{}, fmt.Errorf("upsert search attributes: %w", err)
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
	calls     int
}

func (r *runnerWorkflow) receiveControls(ctx workflow.Context) {
	ch := workflow.GetSignalChannel(ctx, SignalControl)
	for {
		var c RunnerControl
		if !ch.Receive(ctx, &c) {
			return
		}
		switch c.Action {
		case ControlBusy:
			r.busy = true
		case ControlJobDone:
			r.busy, r.jobDone = false, true
		case ControlDelete:
			r.deleteReq = true
		}
	}
}

func (r *runnerWorkflow) setState(ctx workflow.Context, s RunnerState) {
	if r.state == s {
		return
	}
	r.state = s
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
		// Long calls heartbeat (every 10s): an agent that dies in one is
		// noticed within a minute, not at the end of StartToClose.
		heartbeat = time.Minute
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

func (r *runnerWorkflow) run(ctx workflow.Context) (RunnerResult, error) {
	bootstrapDeadline := workflow.Now(ctx).Add(r.in.BootstrapTimeout.D())

	// Provisioning: register with GitHub and start the instance, in one
	// activity, bounded by the bootstrap timeout.
	createCtx, cancelCreate := workflow.WithCancel(ctx)
	createCtx = r.activityOptions(createCtx, "create", 5*time.Minute,
		activities.ErrTypeNoProvider, activities.ErrTypeNoGitHub, activities.ErrTypeInvalid, activities.ErrTypeNotFound,
		activities.ErrTypeNameInUse)
	createCtx = workflow.WithScheduleToCloseTimeout(createCtx, r.in.BootstrapTimeout.D())
	var created activities.CreateRunnerResult
	err := workflow.ExecuteActivity(createCtx, activities.CreateRunnerName, activities.CreateRunnerInput{
		Owner: r.in.Owner, Repo: r.in.Repo, Name: r.in.Name, Labels: r.in.Labels, GroupID: r.in.GroupID,
		Ephemeral: r.in.Ephemeral, Provider: r.providerArgs(),
	}).Get(ctx, &created)
	cancelCreate()
	if err != nil {
		r.log.Warn("Runner could not be created", "error", err)
		return r.fail(ctx, fmt.Sprintf("create runner %s: %v", r.in.Name, rootMessage(err)))
	}
	r.runnerID = created.RunnerID

	// Bootstrap: wait until GitHub reports it online (or it takes a job).
	if !r.waitOnline(ctx, bootstrapDeadline) {
		if r.deleteReq {
			return r.remove(ctx)
		}
		return r.fail(ctx, fmt.Sprintf("runner %s did not come online within %s", r.in.Name, r.in.BootstrapTimeout))
	}
	if r.busy {
		r.setState(ctx, RunnerBusy)
	} else {
		r.setState(ctx, RunnerIdle)
	}
	r.tell(ctx, RunnerIdle, "")

	// Serving: idle and busy in turn, until the pool asks for deletion or
	// an ephemeral runner has done its job.
	for {
		woke, err := workflow.AwaitWithTimeout(ctx, healthEvery, func() bool {
			return r.deleteReq || (r.jobDone && r.in.Ephemeral) ||
				(r.busy && r.state != RunnerBusy) || (!r.busy && r.state == RunnerBusy)
		})
		if err != nil {
			return RunnerResult{}, err
		}
		if !woke {
			if gone, code := r.instanceGone(ctx); gone {
				if code == 0 {
					// It ended cleanly (an ephemeral runner after its job,
					// its completion not yet reported): remove it.
					return r.remove(ctx)
				}
				return r.fail(ctx, fmt.Sprintf("runner %s lost: its instance exited with code %d", r.in.Name, code))
			}
			continue
		}
		if r.deleteReq || (r.jobDone && r.in.Ephemeral) {
			return r.remove(ctx)
		}
		if r.busy {
			r.setState(ctx, RunnerBusy)
		} else {
			r.setState(ctx, RunnerIdle)
		}
	}
}

// instanceGone checks the runner's instance on its agent; it reports
// whether the instance has exited or vanished, with its exit code (-1 when
// it vanished). An agent that does not answer is no evidence either way.
func (r *runnerWorkflow) instanceGone(ctx workflow.Context) (bool, int) {
	sctx := r.activityOptions(ctx, "check", 30*time.Second)
	sctx = workflow.WithScheduleToCloseTimeout(sctx, 2*time.Minute)
	var st activities.RunnerStatus
	if err := workflow.ExecuteActivity(sctx, activities.RunnerStatusName, activities.RunnerStatusInput{
		Owner: r.in.Owner, Repo: r.in.Repo, Name: r.in.Name, RunnerID: r.runnerID, Provider: r.providerArgs(),
		InstanceOnly: true,
	}).Get(ctx, &st); err != nil {
		return false, 0
	}
	switch st.Instance {
	case "exited":
		return true, st.ExitCode
	case "absent":
		return true, -1
	}
	return false, 0
}

// waitOnline polls the runner's status with growing intervals until it is
// online, busy, asked to go, or the deadline passes.
func (r *runnerWorkflow) waitOnline(ctx workflow.Context, deadline time.Time) bool {
	interval := onlinePollFirst
	for {
		if r.busy || r.jobDone {
			return true
		}
		if r.deleteReq {
			return false
		}
		remaining := deadline.Sub(workflow.Now(ctx))
		if remaining <= 0 {
			return false
		}
		woke, _ := workflow.AwaitWithTimeout(ctx, min(interval, remaining), func() bool { return r.busy || r.jobDone || r.deleteReq })
		if woke {
			continue
		}
		var st activities.RunnerStatus
		sctx := r.activityOptions(ctx, "status", 30*time.Second)
		sctx = workflow.WithScheduleToCloseTimeout(sctx, max(remaining, time.Minute))
		if err := workflow.ExecuteActivity(sctx, activities.RunnerStatusName, activities.RunnerStatusInput{
			Owner: r.in.Owner, Repo: r.in.Repo, Name: r.in.Name, RunnerID: r.runnerID, Provider: r.providerArgs(),
		}).Get(ctx, &st); err == nil {
			if st.GitHubStatus == "online" {
				r.busy = r.busy || st.Busy
				return true
			}
			if st.Instance == "exited" && st.GitHubStatus != "online" {
				// The instance died before it came online.
				return false
			}
		}
		interval = min(2*interval, onlinePollMax)
	}
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
			// GitHub unregisters an ephemeral runner after its job itself.
			GitHubDone: r.in.Ephemeral && r.jobDone,
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

// fail cleans up what a failed runner left and reports it failed.
func (r *runnerWorkflow) fail(ctx workflow.Context, reason string) (RunnerResult, error) {
	r.setState(ctx, RunnerDeleting)
	if err := r.deleteEverywhere(ctx); err != nil {
		r.log.Error("Cleanup of a failed runner failed", "error", err)
	}
	r.setState(ctx, RunnerFailed)
	r.tell(ctx, RunnerFailed, reason)
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
