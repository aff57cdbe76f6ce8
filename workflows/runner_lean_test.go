package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/garo-run/garo/activities"
)

// leanEnv runs a lean RunnerWorkflow against a fake agent.
type leanEnv struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	// life is how long RunRunner runs before it returns res (or err).
	life    time.Duration
	res     activities.RunRunnerResult
	err     error
	runs    int
	deletes int
	// deleteErr fails the n-th DeleteRunner.
	deleteErr func(n int) error
	inputs    []activities.RunRunnerInput
}

func newLeanEnv(t *testing.T) *leanEnv {
	e := &leanEnv{t: t, env: quietSuite().NewTestWorkflowEnvironment(), life: time.Minute,
		res: activities.RunRunnerResult{Outcome: activities.OutcomeExited, RunnerID: 7}, deleteErr: func(int) error { return nil }}
	e.env.RegisterWorkflow(RunnerWorkflow)
	e.env.RegisterActivityWithOptions(func(context.Context, activities.RunRunnerInput) (activities.RunRunnerResult, error) {
		return activities.RunRunnerResult{}, nil
	}, activity.RegisterOptions{Name: activities.RunRunnerName})
	e.env.RegisterActivityWithOptions(func(_ context.Context, in activities.DeleteRunnerInput) error {
		e.deletes++
		return e.deleteErr(e.deletes)
	}, activity.RegisterOptions{Name: activities.DeleteRunnerName})
	e.env.OnActivity(activities.RunRunnerName, mock.Anything, mock.Anything).AfterFn(func() time.Duration { return e.life }).Return(
		func(ctx context.Context, in activities.RunRunnerInput) (activities.RunRunnerResult, error) {
			e.runs++
			e.inputs = append(e.inputs, in)
			return e.res, e.err
		})
	return e
}

func leanInput() RunnerInput {
	in := runnerInput(true)
	in.RepositoryID, in.Version = PoolWorkflowID("octo", "app", DefaultPool), runnerVersionCurrent
	return in
}

func (e *leanEnv) run(in RunnerInput) RunnerResult {
	e.env.ExecuteWorkflow(RunnerWorkflow, in)
	require.True(e.t, e.env.IsWorkflowCompleted())
	require.NoError(e.t, e.env.GetWorkflowError())
	var res RunnerResult
	require.NoError(e.t, e.env.GetWorkflowResult(&res))
	return res
}

func TestALeanRunnerLivesInOneActivity(t *testing.T) {
	e := newLeanEnv(t)
	res := e.run(leanInput())
	assert.Equal(t, RunnerDeleted, res.State)
	assert.Equal(t, 1, e.runs, "create, watch and delete in one activity")
	assert.Zero(t, e.deletes)
	require.Len(t, e.inputs, 1)
	assert.Equal(t, PoolWorkflowID("octo", "app", DefaultPool), e.inputs[0].Pool, "the agent reports the end to the pool")
	assert.True(t, e.inputs[0].Ephemeral)
}

func TestALeanRunnerThatWasLostEndsFailed(t *testing.T) {
	e := newLeanEnv(t)
	e.res = activities.RunRunnerResult{Outcome: activities.OutcomeExited, ExitCode: 1}
	res := e.run(leanInput())
	assert.Equal(t, RunnerFailed, res.State)
	assert.Contains(t, res.Error, "exit code 1")
}

func TestALeanRunnerThatCannotBeCreatedFails(t *testing.T) {
	e := newLeanEnv(t)
	e.err = temporal.NewNonRetryableApplicationError("agent lab-1 offers no provider", activities.ErrTypeNoProvider, nil)
	res := e.run(leanInput())
	assert.Equal(t, RunnerFailed, res.State)
	assert.Contains(t, res.Error, "offers no provider")
}

// TestALeanRunnerDeletedBeforeItsActivityRanCleansUp: the pool deletes
// the runner while its activity has not run yet (its agent is away): the
// activity is cancelled, and what an attempt may have made is removed by
// a delete, which waits for the agent however long: a failed try is
// tried again, the runner never fails for it (B2).
func TestALeanRunnerDeletedBeforeItsActivityRanCleansUp(t *testing.T) {
	e := newLeanEnv(t)
	e.life = time.Hour
	e.deleteErr = func(n int) error {
		if n <= 3 {
			return errors.New("agent away")
		}
		return nil
	}
	e.env.RegisterDelayedCallback(func() {
		e.env.SignalWorkflow(SignalControl, RunnerControl{Action: ControlDelete})
	}, time.Minute)
	res := e.run(leanInput())
	assert.Equal(t, RunnerDeleted, res.State)
	assert.Equal(t, 4, e.deletes, "tried until the agent took it")
}

// TestALeanRunnerWaitsForItsAgentHoweverLong: none of a lean runner's
// activities has a limit on its wait for the agent (ScheduleToStart):
// an agent away for days makes its runners wait, never fail (B2).
func TestALeanRunnerWaitsForItsAgentHoweverLong(t *testing.T) {
	in := leanInput()
	run := leanOptions(in, "run", runnerAttempt)
	del := leanOptions(in, "delete", 10*time.Minute)
	for _, o := range []struct {
		name string
		s2s  time.Duration
		max  int32
	}{{"run", run.ScheduleToStartTimeout, run.RetryPolicy.MaximumAttempts}, {"delete", del.ScheduleToStartTimeout, del.RetryPolicy.MaximumAttempts}} {
		assert.Zero(t, o.s2s, "%s: no limit on the wait for the agent", o.name)
		assert.Zero(t, o.max, "%s: tried until it succeeds", o.name)
	}
	assert.True(t, run.WaitForCancellation, "a delete waits for the activity to remove the runner")
	assert.Equal(t, "agent/lab-1/run/garo-abc-1/1", run.ActivityID, "named after its agent, for the authorizer")
}
