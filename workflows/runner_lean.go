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

// Versions of RunnerWorkflow's rules, named by RunnerInput.Version: a
// runner follows its version from start to end (0: a runner a
// repository's workflow from before pools started, runner.go).
const (
	// runnerV1: one activity for the runner's whole life (RunRunner),
	// its end reported by its agent to its pool.
	runnerV1 = 1
	// runnerVersionCurrent is what pools start runners with.
	runnerVersionCurrent = runnerV1
)

// Timing of a lean runner's activities.
const (
	// runnerAttempt bounds one attempt of RunRunner: a runner that lives
	// longer (reusable, or kept idle) is taken up by the next attempt,
	// which finds its instance running.
	runnerAttempt = 24 * time.Hour
	// runnerHeartbeat is how soon an agent that died in a runner's
	// activity is noticed: the activity is tried again when the agent
	// is back.
	runnerHeartbeat = 15 * time.Second
)

// leanRunner runs a runner's life in one activity on its agent
// (RunRunner): register with GitHub and start the instance, watch it
// until it ends, remove what is left, report the end to the pool. Its
// history is a dozen events: no state upserts, no signals of its own. The
// pool's delete (signal SignalControl) cancels the activity, which then
// removes the runner, waiting for a busy one to finish its job. An agent
// that is away makes the activity wait on its queue, however long: a
// runner never fails for it.
func leanRunner(ctx workflow.Context, in RunnerInput) (RunnerResult, error) {
	logger := log.With(workflow.GetLogger(ctx), "runner", in.Name, "repository", in.Owner+"/"+in.Repo, "pool", poolOrDefault(in.Pool))
	runCtx, cancel := workflow.WithCancel(ctx)
	f := workflow.ExecuteActivity(workflow.WithActivityOptions(runCtx, leanOptions(in, "run", runnerAttempt,
		activities.ErrTypeNoProvider, activities.ErrTypeNoGitHub, activities.ErrTypeInvalid, activities.ErrTypeNameInUse)),
		activities.RunRunnerName, activities.RunRunnerInput{CreateRunnerInput: createInput(in), Pool: in.RepositoryID})
	deleteAsked := false
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, SignalControl)
		for {
			var c RunnerControl
			if !ch.Receive(ctx, &c) {
				return
			}
			if c.Action == ControlDelete && !deleteAsked {
				deleteAsked = true
				cancel()
			}
		}
	})
	var res activities.RunRunnerResult
	err := f.Get(ctx, &res)
	var canceled *temporal.CanceledError
	switch {
	case err == nil && (res.Outcome == activities.OutcomeVanished || (res.Outcome == activities.OutcomeExited && res.ExitCode != 0)):
		return RunnerResult{State: RunnerFailed, RunnerID: res.RunnerID,
			Error: fmt.Sprintf("runner %s lost: its instance %s (exit code %d)", in.Name, res.Outcome, res.ExitCode)}, nil
	case err == nil:
		return RunnerResult{State: RunnerDeleted, RunnerID: res.RunnerID}, nil
	case errors.As(err, &canceled) || deleteAsked:
		// Deleted before the activity ran, between two attempts, or it
		// failed as it removed the runner: what is left is removed.
		dctx := workflow.WithActivityOptions(ctx, leanOptions(in, "delete", 10*time.Minute))
		err := workflow.ExecuteActivity(dctx, activities.DeleteRunnerName, activities.DeleteRunnerInput{
			Owner: in.Owner, Repo: in.Repo, Name: in.Name, Provider: in.Provider, WaitBusy: true, Pool: in.RepositoryID,
		}).Get(ctx, nil)
		if err != nil {
			return RunnerResult{}, err
		}
		return RunnerResult{State: RunnerDeleted}, nil
	default:
		// A failure no retry mends (no such provider, a refusal): the
		// agent reported it to the pool.
		logger.Warn("Runner could not be created", "error", err)
		return RunnerResult{State: RunnerFailed, Error: fmt.Sprintf("create runner %s: %v", in.Name, rootMessage(err))}, nil
	}
}

// createInput is what RunRunner creates the runner with.
func createInput(in RunnerInput) activities.CreateRunnerInput {
	return activities.CreateRunnerInput{Owner: in.Owner, Repo: in.Repo, Name: in.Name, Labels: in.Labels, GroupID: in.GroupID,
		Ephemeral: in.Ephemeral, Provider: in.Provider}
}

// leanOptions runs an activity of a lean runner on its agent's queue,
// with no limit on how long it waits for the agent, heartbeating.
func leanOptions(in RunnerInput, what string, attempt time.Duration, nonRetryable ...string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		TaskQueue:           AgentTaskQueue(in.Agent),
		ActivityID:          fmt.Sprintf("agent/%s/%s/%s/1", in.Agent, what, in.Name),
		StartToCloseTimeout: attempt,
		HeartbeatTimeout:    runnerHeartbeat,
		WaitForCancellation: true,
		Summary:             fmt.Sprintf("%s runner %s on agent %s for %s/%s", what, in.Name, in.Agent, in.Owner, in.Repo),
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			NonRetryableErrorTypes: nonRetryable,
		},
	}
}
