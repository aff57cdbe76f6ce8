package runners

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/activities/github"
	"github.com/garo-run/garo/activities/provider"
	"github.com/garo-run/garo/activities/provider/process"
	"github.com/garo-run/garo/tests/githubsim"
)

type env struct {
	dir  string
	url  string
	sim  *githubsim.Sim
	gh   *github.Client
	proc *process.Provider
	a    *Activities
	act  *testsuite.TestActivityEnvironment
}

// newEnv runs the activities against the simulator, with a process
// provider whose "runner" sleeps (it never connects, so GitHub keeps it
// offline and idle).
func newEnv(t *testing.T) *env {
	return newEnvRunning(t, "sh", "-c", "env > env.$GARO_RUNNER_NAME; sleep 300")
}

// newEnvRunning is an env whose runner runs command.
func newEnvRunning(t *testing.T, command ...string) *env {
	sim := githubsim.New(githubsim.Options{Seed: 1})
	t.Cleanup(sim.Close)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	sim.SetBaseURL(srv.URL)
	gh, err := github.New(github.Config{URL: srv.URL, Token: "ghs_x", Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	dir := t.TempDir()
	p, err := process.New(process.Config{StateDir: dir, Command: command, StopTimeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() {
		// Not t.Context(): it is cancelled before cleanups run, and a
		// delete must wait for its process to stop writing into dir.
		list, _ := p.List(context.Background(), nil)
		for _, in := range list {
			_ = p.Delete(context.Background(), in.Name)
		}
	})
	var s testsuite.WorkflowTestSuite
	e := &env{dir: dir, url: srv.URL, sim: sim, gh: gh, proc: p, act: s.NewTestActivityEnvironment(),
		a: &Activities{Agent: "lab-1", GitHub: gh, Providers: map[string]provider.Provider{"process": p}}}
	e.a.Register(e.act)
	return e
}

func createInput(ephemeral bool) activities.CreateRunnerInput {
	return activities.CreateRunnerInput{Owner: "octo", Repo: "app", Name: "garo-x-1", Labels: []string{"self-hosted"},
		GroupID: 1, Ephemeral: ephemeral, Provider: map[string]string{"kind": "process"}}
}

func (e *env) create(t *testing.T, in activities.CreateRunnerInput) (activities.CreateRunnerResult, error) {
	v, err := e.act.ExecuteActivity(activities.CreateRunnerName, in)
	if err != nil {
		return activities.CreateRunnerResult{}, err
	}
	var res activities.CreateRunnerResult
	require.NoError(t, v.Get(&res))
	return res, nil
}

func TestCreateIsIdempotentAndDeleteRemovesBoth(t *testing.T) {
	e := newEnv(t)
	first, err := e.create(t, createInput(true))
	require.NoError(t, err)
	assert.NotZero(t, first.RunnerID)
	assert.NotEmpty(t, first.InstanceID)
	// A retry of the same activity keeps the running instance and its
	// registration.
	again, err := e.create(t, createInput(true))
	require.NoError(t, err)
	assert.Equal(t, first, again)
	assert.Len(t, e.sim.Runners("octo/app"), 1)
	list, err := e.proc.List(t.Context(), map[string]string{"garo-repository": "octo/app", "garo-agent": "lab-1"})
	require.NoError(t, err)
	assert.Len(t, list, 1, "the instance is tagged with its agent and repository")
	assert.Contains(t, e.runnerEnv(t), "ACTIONS_RUNNER_INPUT_JITCONFIG=", "the JIT config reaches the runner in its environment")

	v, err := e.act.ExecuteActivity(activities.RunnerStatusName, activities.RunnerStatusInput{Owner: "octo", Repo: "app",
		Name: "garo-x-1", RunnerID: first.RunnerID, Provider: map[string]string{"kind": "process"}})
	require.NoError(t, err)
	var st activities.RunnerStatus
	require.NoError(t, v.Get(&st))
	assert.Equal(t, activities.RunnerStatus{GitHubStatus: "offline", Instance: "running"}, st)

	_, err = e.act.ExecuteActivity(activities.DeleteRunnerName, activities.DeleteRunnerInput{Owner: "octo", Repo: "app",
		Name: "garo-x-1", RunnerID: first.RunnerID, Provider: map[string]string{"kind": "process"}})
	require.NoError(t, err)
	assert.Empty(t, e.sim.Runners("octo/app"), "removed from GitHub")
	_, err = e.proc.Get(t.Context(), "garo-x-1")
	assert.True(t, errors.Is(err, provider.ErrNotFound), "and its instance deleted")
	// Deleting again is a success: the activity may be retried.
	_, err = e.act.ExecuteActivity(activities.DeleteRunnerName, activities.DeleteRunnerInput{Owner: "octo", Repo: "app",
		Name: "garo-x-1", Provider: map[string]string{"kind": "process"}})
	require.NoError(t, err)
}

func TestReusableRunnerGetsARegistrationToken(t *testing.T) {
	e := newEnv(t)
	res, err := e.create(t, createInput(false))
	require.NoError(t, err)
	assert.Zero(t, res.RunnerID, "the runner registers itself with the token")
	assert.NotEmpty(t, res.InstanceID)
	runnerEnv := e.runnerEnv(t)
	assert.Contains(t, runnerEnv, "ACTIONS_RUNNER_INPUT_URL="+e.url+"/octo/app\n")
	assert.Contains(t, runnerEnv, "ACTIONS_RUNNER_INPUT_NAME=garo-x-1\n")
	assert.Contains(t, runnerEnv, "ACTIONS_RUNNER_INPUT_TOKEN=")
	assert.NotContains(t, runnerEnv, "ACTIONS_RUNNER_INPUT_JITCONFIG")
}

// runnerEnv is the environment the fake runner process saw.
func (e *env) runnerEnv(t *testing.T) string {
	var b []byte
	require.Eventually(t, func() bool {
		b, _ = os.ReadFile(filepath.Join(e.dir, "env.garo-x-1"))
		return len(b) > 0
	}, 5*time.Second, 10*time.Millisecond)
	return string(b)
}

func TestStatusOfTheInstanceAloneAsksNothingOfGitHub(t *testing.T) {
	e := newEnv(t)
	_, err := e.create(t, createInput(true))
	require.NoError(t, err)
	before := e.sim.Stats().Requests
	v, err := e.act.ExecuteActivity(activities.RunnerStatusName, activities.RunnerStatusInput{Owner: "octo", Repo: "app",
		Name: "garo-x-1", Provider: map[string]string{"kind": "process"}, InstanceOnly: true})
	require.NoError(t, err)
	var st activities.RunnerStatus
	require.NoError(t, v.Get(&st))
	assert.Equal(t, "running", st.Instance)
	assert.Equal(t, before, e.sim.Stats().Requests)
}

func TestMissingProviderOrGitHubIsNotRetried(t *testing.T) {
	e := newEnv(t)
	in := createInput(true)
	in.Provider = map[string]string{"kind": "ec2"}
	_, err := e.create(t, in)
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "%v", err)
	assert.Equal(t, activities.ErrTypeNoProvider, ae.Type())
	assert.True(t, ae.NonRetryable())

	e.a.GitHub = nil
	_, err = e.create(t, createInput(true))
	require.True(t, errors.As(err, &ae), "%v", err)
	assert.Equal(t, activities.ErrTypeNoGitHub, ae.Type())
	assert.Empty(t, e.sim.Runners("octo/app"))
}

func TestDeleteAfterAnEphemeralJobAsksNothingOfGitHub(t *testing.T) {
	e := newEnv(t)
	res, err := e.create(t, createInput(true))
	require.NoError(t, err)
	before := e.sim.Stats().Requests
	_, err = e.act.ExecuteActivity(activities.DeleteRunnerName, activities.DeleteRunnerInput{Owner: "octo", Repo: "app",
		Name: "garo-x-1", RunnerID: res.RunnerID, Provider: map[string]string{"kind": "process"}, GitHubDone: true})
	require.NoError(t, err)
	assert.Equal(t, before, e.sim.Stats().Requests, "GitHub unregisters ephemeral runners after their job itself")
	_, err = e.proc.Get(t.Context(), "garo-x-1")
	assert.True(t, errors.Is(err, provider.ErrNotFound), "the instance is deleted")
}

// TestWatchReportsAnExitAtOnceAndAsksNothingOfGitHub: the watch returns
// within seconds of the instance's exit, with its code, and makes no
// GitHub request; one whose deadline comes first reports it running.
func TestWatchReportsAnExitAtOnceAndAsksNothingOfGitHub(t *testing.T) {
	e := newEnv(t)
	_, err := e.create(t, createInput(true))
	require.NoError(t, err)
	before := e.sim.Stats().Requests
	in := activities.RunnerStatusInput{Owner: "octo", Repo: "app", Name: "garo-x-1", Provider: map[string]string{"kind": "process"}}

	e.act.SetTestTimeout(time.Minute)
	inst, err := e.proc.Get(t.Context(), "garo-x-1")
	require.NoError(t, err)
	pid, _ := strconv.Atoi(inst.ID)
	go func() {
		time.Sleep(500 * time.Millisecond)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}()
	start := time.Now()
	v, err := e.act.ExecuteActivity(activities.WatchRunnerName, in)
	require.NoError(t, err)
	var st activities.RunnerStatus
	require.NoError(t, v.Get(&st))
	assert.Equal(t, "exited", st.Instance)
	assert.NotZero(t, st.ExitCode, "killed, not a clean exit")
	assert.Less(t, time.Since(start), 5*time.Second, "the exit is seen within seconds")
	assert.Equal(t, before, e.sim.Stats().Requests)

	require.NoError(t, e.proc.Delete(t.Context(), "garo-x-1"))
	v, err = e.act.ExecuteActivity(activities.WatchRunnerName, in)
	require.NoError(t, err)
	require.NoError(t, v.Get(&st))
	assert.Equal(t, "absent", st.Instance)
}

// TestAWatchEndsQuietlyWhenTheAgentStops: an agent that stops ends its
// watches with the runner still running, not with an error, so that the
// workflow watches on once the agent is back and no error is logged.
func TestAWatchEndsQuietlyWhenTheAgentStops(t *testing.T) {
	e := newEnv(t)
	_, err := e.create(t, createInput(true))
	require.NoError(t, err)
	stop := make(chan struct{})
	e.act.SetWorkerStopChannel(stop)
	e.act.SetTestTimeout(time.Minute)
	go func() {
		time.Sleep(200 * time.Millisecond)
		close(stop)
	}()
	v, err := e.act.ExecuteActivity(activities.WatchRunnerName, activities.RunnerStatusInput{Owner: "octo", Repo: "app",
		Name: "garo-x-1", Provider: map[string]string{"kind": "process"}})
	require.NoError(t, err)
	var st activities.RunnerStatus
	require.NoError(t, v.Get(&st))
	assert.Equal(t, "running", st.Instance)
}

// TestCreateNeverStartsARunnerTwice: an attempt of CreateRunner started
// the instance, which ran and ended cleanly (an ephemeral runner after its
// job) before the attempt could answer; the retry keeps it rather than
// start the runner a second time. An instance that crashed is replaced.
func TestCreateNeverStartsARunnerTwice(t *testing.T) {
	e := newEnvRunning(t, "sh", "-c", "echo started >> starts.$GARO_RUNNER_NAME; exit ${EXIT_CODE:-0}")
	in := createInput(true)
	_, err := e.create(t, in)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		inst, err := e.proc.Get(t.Context(), in.Name)
		return err == nil && inst.State == provider.StateExited
	}, 10*time.Second, 10*time.Millisecond)
	_, err = e.create(t, in)
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(e.dir, "starts."+in.Name))
	require.NoError(t, err)
	assert.Equal(t, "started\n", string(b), "started once")

	crashed := createInput(true)
	crashed.Name = "garo-x-2"
	_, err = e.proc.Create(t.Context(), provider.CreateRequest{Name: crashed.Name, Env: map[string]string{"EXIT_CODE": "3"}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		inst, err := e.proc.Get(t.Context(), crashed.Name)
		return err == nil && inst.State == provider.StateExited
	}, 10*time.Second, 10*time.Millisecond)
	_, err = e.create(t, crashed)
	require.NoError(t, err)
	assert.Eventually(t, func() bool {
		b, err := os.ReadFile(filepath.Join(e.dir, "starts."+crashed.Name))
		return err == nil && string(b) == "started\nstarted\n"
	}, 10*time.Second, 10*time.Millisecond, "a crashed instance is started again")
	require.Eventually(t, func() bool { // its process has ended before the test's directory goes
		inst, err := e.proc.Get(t.Context(), crashed.Name)
		return err == nil && inst.State == provider.StateExited
	}, 10*time.Second, 10*time.Millisecond)
}

// TestFailedCreatesAreCountedByReason: garo_runner_provisioning_failures
// counts each failed create by provider and reason, from fixed sets.
func TestFailedCreatesAreCountedByReason(t *testing.T) {
	e := newEnv(t)
	e.a.Failures = NewFailureCounter(prometheus.NewRegistry())
	in := createInput(true)
	in.Provider = map[string]string{"kind": "ec2"}
	_, err := e.create(t, in)
	require.Error(t, err)
	in.Provider = map[string]string{"kind": "process", "image": "x"}
	_, err = e.create(t, in)
	require.Error(t, err)
	_, err = e.create(t, createInput(true))
	require.NoError(t, err)
	assert.Equal(t, 1.0, testutil.ToFloat64(e.a.Failures.WithLabelValues("unknown", "unavailable")), "no such provider")
	assert.Equal(t, 1.0, testutil.ToFloat64(e.a.Failures.WithLabelValues("process", "invalid")), "an option it does not take")
	assert.Equal(t, 2, testutil.CollectAndCount(e.a.Failures), "a success is no failure")
}

// flakyGet is a provider whose Get fails (a cloud API that times out)
// while it counts the creates.
type flakyGet struct {
	provider.Provider
	creates int
}

func (f *flakyGet) Get(context.Context, string) (provider.Instance, error) {
	return provider.Instance{}, errors.New("read timed out")
}

func (f *flakyGet) Create(ctx context.Context, req provider.CreateRequest) (provider.Instance, error) {
	f.creates++
	return f.Provider.Create(ctx, req)
}

// TestACreateThatCannotReadItsInstanceStartsNone: a retried create that
// cannot tell whether its earlier attempt started the instance (the
// provider's Get fails) fails, to be tried again, rather than start a
// second instance, which would be a second runner.
func TestACreateThatCannotReadItsInstanceStartsNone(t *testing.T) {
	e := newEnv(t)
	_, err := e.create(t, createInput(true))
	require.NoError(t, err)
	flaky := &flakyGet{Provider: e.proc}
	e.a.Providers["process"] = flaky
	_, err = e.create(t, createInput(true))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "look up instance of runner garo-x-1")
	assert.Zero(t, flaky.creates, "no second instance")
	list, err := e.proc.List(context.Background(), nil)
	require.NoError(t, err)
	assert.Len(t, list, 1)
}
