package workflows

import (
	"context"
	"strings"
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

// runnerEnv runs a RunnerWorkflow against fake agent activities and
// records what it tells its pool.
type runnerEnv struct {
	t       *testing.T
	env     *testsuite.TestWorkflowEnvironment
	told    []RunnerEvent
	creates int
	deletes int
	queues  map[string]bool
	online  func(n int) bool // status poll n (from 1) finds it online
	// ended, when set, has status poll n find it gone from GitHub and its
	// instance exited with exitCode.
	ended func(n int) bool
	polls int
	// instance answers the health checks (InstanceOnly) of runs from
	// before bounded histories; default running.
	instance func() (string, int)
	checks   int
	// exitAt, when set, is when the instance exits, with exitCode: the
	// watch reports it then.
	exitAt    time.Time
	exitCode  int
	watches   int
	createErr error
	deleteErr func(n int) error
	// lastDelete is what the last DeleteRunner was asked.
	lastDelete activities.DeleteRunnerInput
	// onTell, when set, sees every event told to the pool.
	onTell func(RunnerEvent)
}

func newRunnerEnv(t *testing.T) *runnerEnv {
	e := &runnerEnv{t: t, env: quietSuite().NewTestWorkflowEnvironment(), queues: map[string]bool{},
		online: func(int) bool { return true }, deleteErr: func(int) error { return nil }}
	e.env.RegisterWorkflow(RunnerWorkflow)
	e.env.RegisterActivityWithOptions(func(ctx context.Context, in activities.CreateRunnerInput) (activities.CreateRunnerResult, error) {
		e.creates++
		e.queues[activity.GetInfo(ctx).TaskQueue] = true
		if e.createErr != nil {
			return activities.CreateRunnerResult{}, e.createErr
		}
		return activities.CreateRunnerResult{RunnerID: 77, InstanceID: "pid-1"}, nil
	}, activity.RegisterOptions{Name: activities.CreateRunnerName})
	e.env.RegisterActivityWithOptions(func(ctx context.Context, in activities.RunnerStatusInput) (activities.RunnerStatus, error) {
		if in.InstanceOnly {
			e.checks++
			if e.instance == nil {
				return activities.RunnerStatus{Instance: "running"}, nil
			}
			st, code := e.instance()
			return activities.RunnerStatus{Instance: st, ExitCode: code}, nil
		}
		e.polls++
		if e.ended != nil && e.ended(e.polls) {
			return activities.RunnerStatus{GitHubStatus: "absent", Instance: "exited", ExitCode: e.exitCode}, nil
		}
		if e.online(e.polls) {
			return activities.RunnerStatus{GitHubStatus: "online", Instance: "running"}, nil
		}
		return activities.RunnerStatus{GitHubStatus: "offline", Instance: "running"}, nil
	}, activity.RegisterOptions{Name: activities.RunnerStatusName})
	// The watch is mocked: its result comes after a while of the
	// environment's clock.
	e.env.RegisterActivityWithOptions(func(context.Context, activities.RunnerStatusInput) (activities.RunnerStatus, error) {
		return activities.RunnerStatus{}, nil
	}, activity.RegisterOptions{Name: activities.WatchRunnerName})
	e.env.RegisterActivityWithOptions(func(ctx context.Context, in activities.DeleteRunnerInput) error {
		e.deletes++
		e.lastDelete = in
		return e.deleteErr(e.deletes)
	}, activity.RegisterOptions{Name: activities.DeleteRunnerName})
	e.env.OnActivity(activities.WatchRunnerName, mock.Anything, mock.Anything).AfterFn(func() time.Duration {
		e.watches++
		if !e.exitAt.IsZero() {
			return min(watchLength-time.Minute, max(0, e.exitAt.Sub(e.env.Now())))
		}
		return watchLength - time.Minute
	}).Return(func(ctx context.Context, in activities.RunnerStatusInput) (activities.RunnerStatus, error) {
		if !e.exitAt.IsZero() && !e.env.Now().Before(e.exitAt) {
			return activities.RunnerStatus{Instance: "exited", ExitCode: e.exitCode}, nil
		}
		return activities.RunnerStatus{Instance: "running"}, nil
	})
	e.env.OnSignalExternalWorkflow(mock.Anything, "garo/repo/octo/app", "", SignalRunner, mock.Anything).Return(
		func(_, _, _, _ string, arg any) error {
			e.told = append(e.told, arg.(RunnerEvent))
			if e.onTell != nil {
				e.onTell(arg.(RunnerEvent))
			}
			return nil
		})
	return e
}

func runnerInput(ephemeral bool) RunnerInput {
	return RunnerInput{RepositoryID: "garo/repo/octo/app", Owner: "octo", Repo: "app", Name: "garo-abc-1", Agent: "lab-1",
		Labels: []string{"self-hosted"}, GroupID: 1, Ephemeral: ephemeral, BootstrapTimeout: Duration(time.Minute),
		Provider: ProviderConfig{"kind": "process"}}
}

func (e *runnerEnv) control(d time.Duration, action string) {
	e.env.RegisterDelayedCallback(func() { e.env.SignalWorkflow(SignalControl, RunnerControl{Action: action, JobID: 5}) }, d)
}

func (e *runnerEnv) run(in RunnerInput) RunnerResult {
	e.env.ExecuteWorkflow(RunnerWorkflow, in)
	require.True(e.t, e.env.IsWorkflowCompleted())
	require.NoError(e.t, e.env.GetWorkflowError())
	var res RunnerResult
	require.NoError(e.t, e.env.GetWorkflowResult(&res))
	return res
}

func (e *runnerEnv) states() []RunnerState {
	var out []RunnerState
	for _, ev := range e.told {
		out = append(out, ev.State)
	}
	return out
}

func TestEphemeralRunnerLivesForOneJob(t *testing.T) {
	e := newRunnerEnv(t)
	e.control(time.Minute, ControlBusy)
	e.control(2*time.Minute, ControlJobDone)
	res := e.run(runnerInput(true))
	assert.Equal(t, RunnerDeleted, res.State)
	assert.Equal(t, int64(77), res.RunnerID)
	assert.Equal(t, []RunnerState{RunnerIdle, RunnerDeleted}, e.states())
	assert.Equal(t, 1, e.creates)
	assert.Equal(t, 1, e.deletes)
	assert.Equal(t, map[string]bool{"garo-agent-lab-1": true}, e.queues, "activities run on the agent's queue")
}

func TestReusableRunnerStaysAfterItsJobUntilDeleted(t *testing.T) {
	e := newRunnerEnv(t)
	e.control(time.Minute, ControlBusy)
	e.control(2*time.Minute, ControlJobDone)
	var deletesBefore int
	e.env.RegisterDelayedCallback(func() { deletesBefore = e.deletes }, 10*time.Minute)
	e.control(11*time.Minute, ControlDelete)
	res := e.run(runnerInput(false))
	assert.Equal(t, 0, deletesBefore, "a reusable runner returns to idle after its job")
	assert.Equal(t, RunnerDeleted, res.State)
	assert.Equal(t, 1, e.deletes)
}

func TestRunnerThatNeverComesOnlineIsReplaced(t *testing.T) {
	e := newRunnerEnv(t)
	e.online = func(int) bool { return false }
	res := e.run(runnerInput(true))
	assert.Equal(t, RunnerFailed, res.State)
	assert.Contains(t, res.Error, "did not come online within 1m0s")
	assert.Equal(t, 1, e.deletes, "what it left is cleaned up")
	require.Len(t, e.told, 1)
	assert.Equal(t, RunnerFailed, e.told[0].State)
	assert.Contains(t, e.told[0].Error, "did not come online")
	// Polls back off: 2s, 4s, 8s, 16s, 30s within the minute.
	assert.LessOrEqual(t, e.polls, 6)
}

func TestBusyRunnerIsNotForcedButWaitedFor(t *testing.T) {
	e := newRunnerEnv(t)
	e.deleteErr = func(n int) error {
		if n < 3 {
			return temporal.NewNonRetryableApplicationError("runner is running a job", "RunnerBusy", nil)
		}
		return nil
	}
	e.control(time.Minute, ControlDelete)
	res := e.run(runnerInput(true))
	assert.Equal(t, RunnerDeleted, res.State)
	assert.Equal(t, 3, e.deletes, "tried again after the job, never forced")
}

func TestRunnerThatCannotBeCreatedFails(t *testing.T) {
	e := newRunnerEnv(t)
	e.createErr = temporal.NewNonRetryableApplicationError("agent lab-1 offers no provider \"ec2\"", activities.ErrTypeNoProvider, nil)
	res := e.run(runnerInput(true))
	assert.Equal(t, RunnerFailed, res.State)
	assert.Contains(t, res.Error, "offers no provider")
	assert.Equal(t, 1, e.creates, "a non-retryable error is not retried")
}

func TestRunnerDeletedWhileProvisioning(t *testing.T) {
	e := newRunnerEnv(t)
	e.online = func(n int) bool { return n > 100 }
	e.control(3*time.Second, ControlDelete)
	res := e.run(runnerInput(true))
	assert.Equal(t, RunnerDeleted, res.State)
	assert.Equal(t, []RunnerState{RunnerDeleted}, e.states())
}

func TestLostRunnerIsReportedFailedWhenItDies(t *testing.T) {
	e := newRunnerEnv(t)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e.env.SetStartTime(start)
	e.exitAt, e.exitCode = start.Add(3*time.Hour+7*time.Minute), 137
	res := e.run(runnerInput(true))
	assert.Equal(t, RunnerFailed, res.State)
	assert.Contains(t, res.Error, "lost: its instance exited with code 137")
	assert.Equal(t, []RunnerState{RunnerIdle, RunnerFailed}, e.states())
	assert.Equal(t, 1, e.deletes, "its registration is removed")
	assert.Less(t, e.env.Now().Sub(e.exitAt), time.Minute, "the watch reports the exit when it happens")
	assert.Zero(t, e.checks, "no health check polls the agent")
	assert.Equal(t, 4, e.watches, "an hour's watch at a time")
}

func TestRunnerThatEndedCleanlyIsRemoved(t *testing.T) {
	e := newRunnerEnv(t)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e.env.SetStartTime(start)
	e.control(time.Minute, ControlBusy)
	e.exitAt = start.Add(2 * time.Minute)
	res := e.run(runnerInput(true))
	assert.Equal(t, RunnerDeleted, res.State, "an ephemeral runner that exited after its job is not a failure")
}

// TestARemovedRunnerLetsItsWatchEnd: a runner removed after its job waits
// a little for its watch to see the instance gone, so that no activity of
// it is left running on the agent; a watch that does not end (an agent
// away) holds it up for watchSettle at most.
func TestARemovedRunnerLetsItsWatchEnd(t *testing.T) {
	e := newRunnerEnv(t)
	var deletedAt time.Time
	e.deleteErr = func(int) error {
		deletedAt = e.env.Now()
		return nil
	}
	e.control(time.Minute, ControlBusy)
	e.control(2*time.Minute, ControlJobDone)
	res := e.run(runnerInput(true))
	assert.Equal(t, RunnerDeleted, res.State)
	require.False(t, deletedAt.IsZero())
	ended := e.env.Now().Sub(deletedAt)
	assert.GreaterOrEqual(t, ended, watchSettle-time.Second, "it waited for its watch")
	assert.LessOrEqual(t, ended, watchSettle+time.Second, "and not longer than watchSettle")
}

// TestAnEphemeralRunnerThatEndsAfterItsJobIsNotRemovedFromGitHub: the
// instance of an ephemeral runner exits cleanly after its job, before the
// completed webhook: GitHub unregisters such a runner itself, so only the
// instance is deleted, with no request to GitHub.
func TestAnEphemeralRunnerThatEndsAfterItsJobIsNotRemovedFromGitHub(t *testing.T) {
	e := newRunnerEnv(t)
	e.control(time.Minute, ControlBusy)
	e.exitAt = e.env.Now().Add(2 * time.Minute)
	res := e.run(runnerInput(true))
	assert.Equal(t, RunnerDeleted, res.State)
	assert.True(t, e.lastDelete.GitHubDone, "GitHub is not asked")

	e = newRunnerEnv(t)
	e.exitAt = e.env.Now().Add(2 * time.Minute)
	res = e.run(runnerInput(true))
	assert.Equal(t, RunnerDeleted, res.State)
	assert.False(t, e.lastDelete.GitHubDone, "a runner that never took a job is removed from GitHub")
}

// TestALostRunnerIsToldAtOnce: a runner whose instance dies mid-job is
// reported failed to its pool at once, so that the pool replaces it and
// learns which job was lost, while its cleanup waits for GitHub to stop
// reporting the dead runner busy.
func TestALostRunnerIsToldAtOnce(t *testing.T) {
	e := newRunnerEnv(t)
	e.control(time.Minute, ControlBusy)
	e.exitAt, e.exitCode = e.env.Now().Add(2*time.Minute), 137
	var toldAt, cleanedAt time.Time
	e.onTell = func(ev RunnerEvent) {
		if ev.State == RunnerFailed {
			toldAt = e.env.Now()
		}
	}
	e.deleteErr = func(n int) error {
		if n == 1 {
			return temporal.NewNonRetryableApplicationError("busy", activities.ErrTypeRunnerBusy, nil)
		}
		cleanedAt = e.env.Now()
		return nil
	}
	res := e.run(runnerInput(true))
	assert.Equal(t, RunnerFailed, res.State)
	require.False(t, toldAt.IsZero())
	assert.True(t, toldAt.Before(cleanedAt), "told at %s, cleaned up at %s", toldAt, cleanedAt)
	assert.Equal(t, []RunnerState{RunnerIdle, RunnerFailed}, e.states(), "told once")
}

// TestARunnerThatServedUnseenIsRemovedNotFailed: its instance came
// online, ran a job and ended cleanly between two status polls, every
// webhook of it missed (the server was down): the runner is removed, and
// its pool is not degraded. One whose instance crashed so is failed.
func TestARunnerThatServedUnseenIsRemovedNotFailed(t *testing.T) {
	e := newRunnerEnv(t)
	e.ended = func(int) bool { return true }
	e.exitAt = e.env.Now()
	res := e.run(runnerInput(true))
	assert.Equal(t, RunnerDeleted, res.State)
	assert.Equal(t, []RunnerState{RunnerIdle, RunnerDeleted}, e.states())

	e = newRunnerEnv(t)
	e.ended = func(int) bool { return true }
	e.exitAt, e.exitCode = e.env.Now(), 1
	res = e.run(runnerInput(true))
	assert.Equal(t, RunnerFailed, res.State)
}

// TestALeanRunnerUpsertsOnlyTheStatesItServesIn: its pool started it with
// its search attributes, and its status tells that it completed: it
// upserts the states in between only (a run from before it upserted on
// start and on completion too).
func TestALeanRunnerUpsertsOnlyTheStatesItServesIn(t *testing.T) {
	e := newRunnerEnv(t)
	var upserts []string
	e.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		var vals []string
		if v, ok := sa.GetKeyword(SearchAttributeAgent); ok && v != "" {
			vals = append(vals, "agent")
		}
		if v, ok := sa.GetKeyword(SearchAttributeRepository); ok && v != "" {
			vals = append(vals, "repository")
		}
		if v, ok := sa.GetKeyword(SearchAttributeRunnerState); ok {
			vals = append(vals, v)
		}
		upserts = append(upserts, strings.Join(vals, ","))
	}).Return(nil)
	e.control(time.Minute, ControlBusy)
	e.control(2*time.Minute, ControlJobDone)
	res := e.run(runnerInput(true))
	assert.Equal(t, RunnerDeleted, res.State)
	assert.Equal(t, []string{"idle", "busy", "deleting"}, upserts)
}

// TestARunnerWhoseJobEndedBeforeItsCreateReturnedIsRemovedFromGitHub: the
// agent died while it created the runner, its first instance ran a job
// meanwhile, and the create, retried when the agent came back, made a
// second registration and instance. That one may already run a job of its
// own: it is removed through GitHub (waiting while busy), never killed.
func TestARunnerWhoseJobEndedBeforeItsCreateReturnedIsRemovedFromGitHub(t *testing.T) {
	e := newRunnerEnv(t)
	e.env.OnActivity(activities.CreateRunnerName, mock.Anything, mock.Anything).After(30*time.Second).
		Return(activities.CreateRunnerResult{RunnerID: 78, InstanceID: "pid-2"}, nil)
	e.control(10*time.Second, ControlBusy)
	e.control(20*time.Second, ControlJobDone)
	res := e.run(runnerInput(true))
	assert.Equal(t, RunnerDeleted, res.State)
	assert.False(t, e.lastDelete.GitHubDone, "the registration the create made is removed through GitHub")
	assert.Equal(t, int64(78), e.lastDelete.RunnerID)
}
