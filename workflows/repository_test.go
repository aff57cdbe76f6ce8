package workflows

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
)

// poolEnv runs a RepositoryWorkflow with fake runners: each comes online at
// once (or fails, when told to), and deletes itself when asked.
type poolEnv struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	// started records each runner start with its time.
	started []startRec
	// failNext makes the next runners fail to come up.
	failNext int
	// slow makes runners take this long to come online.
	slow time.Duration
	// queued is what GitHub lists as queued when the pool polls; the
	// activity runs on its own goroutine, hence the lock.
	mu     sync.Mutex
	queued []activities.QueuedJob
	polls  int
	// github is GitHub's view of single jobs (started or ended), and
	// unregistered the runners GitHub no longer lists; reconciled
	// records what each reconciliation asked.
	github       map[int64]activities.JobState
	unregistered map[string]bool
	reconciled   []activities.ReconcileInput
	// reconcileIDs are the activity ids of the reconciliations.
	reconcileIDs []string
	// reruns are the jobs GitHubRerunJob was asked to run again.
	reruns []int64
	// ownQueue: the test sets GitHub's queue (setQueued), apart from
	// the webhooks it sends.
	ownQueue bool
	// ends are the runner workflows (by id) that end at a time, and how:
	// AwaitRunnerEnds reports them then.
	ends map[string]timedEnd
	// offline are the agents AgentOnline reports offline; asked counts
	// the questions.
	offline map[string]bool
	asked   int
	// handed are the PoolWorkflows the run handed its pools over to.
	handed []PoolInput
}

type timedEnd struct {
	at  time.Time
	end activities.RunnerEnd
}

// awaitRunnerEnds fakes AwaitRunnerEnds: it waits until the first of ids
// to end has, or for an hour, and reports those that have.
func (e *poolEnv) mockRunnerEnds() {
	var due time.Time
	e.env.OnActivity(activities.AwaitRunnerEndsName, mock.Anything, mock.Anything).AfterFn(func() time.Duration {
		due = e.env.Now().Add(time.Hour)
		for _, te := range e.ends {
			if te.at.Before(due) {
				due = te.at
			}
		}
		return max(0, due.Sub(e.env.Now()))
	}).Return(func(_ context.Context, ids []string) ([]activities.RunnerEnd, error) {
		var out []activities.RunnerEnd
		for _, id := range ids {
			if te, ok := e.ends[id]; ok && !te.at.After(due) {
				out = append(out, te.end)
				delete(e.ends, id) // told once
			}
		}
		return out, nil
	})
}

// fakeReconcile answers GitHubReconcile from the test's GitHub.
func (e *poolEnv) fakeReconcile(ctx context.Context, in activities.ReconcileInput) (activities.Reconciliation, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.polls++
	e.reconcileIDs = append(e.reconcileIDs, activity.GetInfo(ctx).ActivityID)
	e.reconciled = append(e.reconciled, in)
	out := activities.Reconciliation{Queued: append([]activities.QueuedJob(nil), e.queued...)}
	ids := slices.Sorted(maps.Keys(e.github))
	for _, id := range ids {
		if j := e.github[id]; j.Status == "in_progress" {
			out.Started = append(out.Started, j)
		}
	}
	for _, id := range in.Running {
		if j, ok := e.github[id]; ok && j.Status == "completed" {
			out.Ended = append(out.Ended, j)
		}
	}
	for _, name := range in.Runners {
		if !e.unregistered[name] {
			out.Runners = append(out.Runners, activities.RunnerState{Name: name, Status: "online"})
		}
	}
	return out, nil
}

// setGitHubJob sets what GitHub says of one job.
func (e *poolEnv) setGitHubJob(j activities.JobState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.github[j.ID] = j
}

func (e *poolEnv) setQueued(jobs []activities.QueuedJob) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ownQueue, e.queued = true, jobs
}

func (e *poolEnv) pollCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.polls
}

type startRec struct {
	name, pool string
	at         time.Time
}

func newPoolEnv(t *testing.T) *poolEnv {
	e := &poolEnv{t: t, env: quietSuite().NewTestWorkflowEnvironment(), ends: map[string]timedEnd{}, offline: map[string]bool{},
		github: map[int64]activities.JobState{}, unregistered: map[string]bool{}}
	e.env.RegisterWorkflowWithOptions(RepositoryWorkflow, workflow.RegisterOptions{Name: RepositoryWorkflowName})
	e.env.RegisterWorkflowWithOptions(e.fakeRunner, workflow.RegisterOptions{Name: RunnerWorkflowName})
	e.env.RegisterWorkflowWithOptions(func(_ workflow.Context, in PoolInput) (PoolView, error) {
		e.handed = append(e.handed, in)
		return PoolView{}, nil
	}, workflow.RegisterOptions{Name: PoolWorkflowName})
	e.env.RegisterActivityWithOptions(func(ctx context.Context, r activities.Repo) ([]activities.QueuedJob, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.polls++
		return append([]activities.QueuedJob(nil), e.queued...), nil
	}, activity.RegisterOptions{Name: activities.GitHubListQueuedJobsName})
	e.env.RegisterActivityWithOptions(e.fakeReconcile, activity.RegisterOptions{Name: activities.GitHubReconcileName})
	e.env.RegisterActivityWithOptions(func(ctx context.Context, in activities.RerunInput) (activities.RerunResult, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		assert.True(t, strings.HasPrefix(activity.GetInfo(ctx).ActivityID, "agent/"), "named after its agent: %s",
			activity.GetInfo(ctx).ActivityID)
		e.reruns = append(e.reruns, in.JobID)
		return activities.RerunResult{Rerun: true}, nil
	}, activity.RegisterOptions{Name: activities.GitHubRerunJobName})
	e.env.RegisterActivityWithOptions(func(context.Context, []string) ([]activities.RunnerEnd, error) { return nil, nil },
		activity.RegisterOptions{Name: activities.AwaitRunnerEndsName})
	e.env.RegisterActivityWithOptions(func(_ context.Context, agent string) (bool, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.asked++
		return !e.offline[agent], nil
	}, activity.RegisterOptions{Name: activities.AgentOnlineName})
	e.mockRunnerEnds()
	// A run of the release before pools: it hands over only when told.
	e.env.OnGetVersion(poolEngineVersion, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	// Runners a test puts in a run's state are not children of it: their
	// controls reach them, and they do not answer.
	e.env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, "", SignalControl, mock.Anything).Return(nil)
	return e
}

func (e *poolEnv) fakeRunner(ctx workflow.Context, in RunnerInput) (RunnerResult, error) {
	e.started = append(e.started, startRec{in.Name, in.Pool, workflow.Now(ctx)})
	tell := func(s RunnerState, msg string) {
		_ = workflow.SignalExternalWorkflow(ctx, in.RepositoryID, "", SignalRunner, RunnerEvent{Name: in.Name, State: s, RunnerID: 7, Error: msg}).Get(ctx, nil)
	}
	if e.failNext > 0 {
		e.failNext--
		_ = workflow.Sleep(ctx, time.Second)
		tell(RunnerFailed, "boom")
		return RunnerResult{State: RunnerFailed}, nil
	}
	if e.slow > 0 {
		_ = workflow.Sleep(ctx, e.slow)
	}
	tell(RunnerIdle, "")
	ch := workflow.GetSignalChannel(ctx, SignalControl)
	for {
		var c RunnerControl
		ch.Receive(ctx, &c)
		if c.Action == ControlDelete || (c.Action == ControlJobDone && in.Ephemeral) {
			_ = workflow.Sleep(ctx, time.Second)
			tell(RunnerDeleted, "")
			return RunnerResult{State: RunnerDeleted}, nil
		}
	}
}

func poolConfig(mutate ...func(*PoolConfig)) PoolConfig {
	c := DefaultPoolConfig()
	c.Agent = "lab-1"
	c.QueuePollInterval = 0 // these tests feed the queue by webhook only
	for _, m := range mutate {
		m(&c)
	}
	return c
}

func (e *poolEnv) at(d time.Duration, f func()) { e.env.RegisterDelayedCallback(f, d) }

// configure configures the default pool at d.
func (e *poolEnv) configure(d time.Duration, c PoolConfig, errp *error) {
	e.configurePool(d, "", c, errp)
}

func (e *poolEnv) configurePool(d time.Duration, pool string, c PoolConfig, errp *error) {
	e.configureWith(d, ConfigureRequest{Pool: pool, Config: c, Actor: "admin"}, errp)
}

func (e *poolEnv) configureWith(d time.Duration, req ConfigureRequest, errp *error) {
	e.at(d, func() {
		e.env.UpdateWorkflow(UpdateConfigure, "", &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { *errp = err },
			OnComplete: func(_ any, err error) { *errp = err },
		}, req)
	})
}

// drain drains the default pool at d.
func (e *poolEnv) drain(d time.Duration) { e.drainWith(d, DrainRequest{Actor: "admin"}, nil) }

func (e *poolEnv) drainWith(d time.Duration, req DrainRequest, errp *error) {
	e.at(d, func() {
		e.env.UpdateWorkflow(UpdateDrain, "", &testsuite.TestUpdateCallback{
			OnReject: func(err error) {
				if errp != nil {
					*errp = err
				}
			},
			OnComplete: func(any, error) {},
		}, req)
	})
}

func (e *poolEnv) job(d time.Duration, action string, id int64, runner string, labels ...string) {
	if labels == nil {
		labels = []string{"self-hosted", "linux"}
	}
	e.at(d, func() {
		e.sawOnGitHub(action, id, runner, labels)
		e.env.SignalWorkflow(SignalJob, JobEvent{Action: action, Repository: "octo/app", JobID: id, Labels: labels, RunnerName: runner})
	})
}

// sawOnGitHub makes the test's GitHub agree with a webhook it sends: a
// reconciliation then changes nothing. (A test that sets the queue itself
// with setQueued tells GitHub's queue apart from its webhooks.)
func (e *poolEnv) sawOnGitHub(action string, id int64, runner string, labels []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ownQueue {
		return
	}
	e.queued = slices.DeleteFunc(e.queued, func(j activities.QueuedJob) bool { return j.ID == id })
	switch action {
	case JobQueued, JobWaiting:
		e.queued = append(e.queued, activities.QueuedJob{ID: id, Labels: labels, CreatedAt: e.env.Now()})
	case JobInProgress:
		e.github[id] = activities.JobState{QueuedJob: activities.QueuedJob{ID: id, Labels: labels}, Status: "in_progress", RunnerName: runner}
	case JobCompleted:
		e.github[id] = activities.JobState{QueuedJob: activities.QueuedJob{ID: id, Labels: labels}, Status: "completed",
			Conclusion: "success", RunnerName: runner}
	}
}

// view takes the default pool's view at d.
func (e *poolEnv) view(d time.Duration, v *PoolView) {
	e.at(d, func() {
		rv := e.query()
		p, ok := rv.Pool(DefaultPool)
		require.True(e.t, ok, "no default pool in %+v", rv)
		*v = p
	})
}

// repoView takes the whole repository's view at d.
func (e *poolEnv) repoView(d time.Duration, v *RepositoryView) {
	e.at(d, func() { *v = e.query() })
}

func (e *poolEnv) query() RepositoryView {
	enc, err := e.env.QueryWorkflow(QueryState)
	require.NoError(e.t, err)
	var v RepositoryView
	require.NoError(e.t, enc.Get(&v))
	return v
}

func (e *poolEnv) run() RepositoryView {
	return e.runWith(RepositoryInput{Owner: "octo", Repo: "app"})
}

func (e *poolEnv) runWith(in RepositoryInput) RepositoryView {
	e.env.ExecuteWorkflow(RepositoryWorkflowName, in)
	require.True(e.t, e.env.IsWorkflowCompleted())
	require.NoError(e.t, e.env.GetWorkflowError())
	var v RepositoryView
	require.NoError(e.t, e.env.GetWorkflowResult(&v))
	return v
}

func runnerName(e *poolEnv, i int) string { return e.started[i].name }

func TestPoolKeepsMinIdleAndDrains(t *testing.T) {
	e := newPoolEnv(t)
	var cfgErr error
	var v PoolView
	e.configure(0, poolConfig(func(c *PoolConfig) { c.MinIdle = 1 }), &cfgErr)
	e.view(time.Minute, &v)
	e.drain(2 * time.Minute)
	final := e.run()
	require.NoError(t, cfgErr)
	assert.Equal(t, 1, v.Counts.Idle)
	require.Len(t, v.Runners, 1)
	assert.Len(t, e.started, 1, "one runner for minIdle 1, no more")
	assert.Empty(t, final.Pools, "a drained pool ends with no runner, and then the repository")
}

func TestPoolScalesToQueueWithinMaxRunners(t *testing.T) {
	e := newPoolEnv(t)
	var cfgErr error
	var v PoolView
	e.configure(0, poolConfig(func(c *PoolConfig) { c.MinIdle, c.MaxRunners = 1, 3 }), &cfgErr)
	for i := int64(1); i <= 5; i++ {
		e.job(time.Minute, JobQueued, i, "")
	}
	e.view(2*time.Minute, &v)
	e.drain(3 * time.Minute)
	e.run()
	// wanted = min(maxRunners 3, busy 0 + minIdle 1 + queued 5) = 3.
	assert.Len(t, e.started, 3)
	assert.Equal(t, 5, v.Counts.Queued, "jobs wait until GitHub reports them started")
	assert.Equal(t, []int64{1, 2, 3, 4, 5}, queueIDs(v), "FIFO")
	require.False(t, v.OldestQueuedAt.IsZero(), "the oldest queued job's time is shown")
	assert.Equal(t, v.Queue[0].QueuedAt, v.OldestQueuedAt)
}

func queueIDs(v PoolView) []int64 {
	var ids []int64
	for _, q := range v.Queue {
		ids = append(ids, q.JobID)
	}
	return ids
}

func TestPoolBindsJobsOnlyWhenInProgressAndDeletesEphemeralAfterTheirJob(t *testing.T) {
	e := newPoolEnv(t)
	var cfgErr error
	var queued, busy, after PoolView
	e.configure(0, poolConfig(), &cfgErr)
	e.job(time.Minute, JobQueued, 1, "")
	e.view(2*time.Minute, &queued)
	e.at(3*time.Minute, func() {
		e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobInProgress, JobID: 1, RunnerName: runnerName(e, 0)})
	})
	e.view(4*time.Minute, &busy)
	e.at(5*time.Minute, func() {
		e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobCompleted, JobID: 1, RunnerName: runnerName(e, 0)})
	})
	e.view(10*time.Minute, &after)
	e.drain(11 * time.Minute)
	e.run()
	assert.Equal(t, 1, queued.Counts.Queued)
	assert.Equal(t, 1, queued.Counts.Idle, "a runner was started for the job, but the job is not bound yet")
	assert.Equal(t, 0, busy.Counts.Queued)
	require.Len(t, busy.Runners, 1)
	assert.Equal(t, RunnerBusy, busy.Runners[0].State)
	assert.Equal(t, int64(1), busy.Runners[0].JobID)
	assert.Empty(t, after.Runners, "an ephemeral runner is deleted after its one job")
	assert.Equal(t, 1, after.Counts.JobsDone)
	assert.Len(t, e.started, 1, "no new runner without demand (minIdle 0)")
}

func TestPoolDedupesAndToleratesAnyOrder(t *testing.T) {
	e := newPoolEnv(t)
	var cfgErr error
	var v PoolView
	e.configure(0, poolConfig(func(c *PoolConfig) { c.MaxRunners = 10 }), &cfgErr)
	e.job(time.Minute, JobQueued, 1, "")
	e.job(time.Minute, JobQueued, 1, "") // duplicate delivery
	e.job(time.Minute, JobWaiting, 1, "")
	e.job(time.Minute, JobCompleted, 2, "") // completed before its queued
	e.job(time.Minute+time.Second, JobQueued, 2, "")
	e.job(time.Minute, JobInProgress, 3, "someone-else") // in progress for an unknown job
	e.job(time.Minute+time.Second, JobQueued, 3, "")
	e.job(time.Minute, JobQueued, 4, "", "self-hosted", "gpu") // labels the pool lacks
	e.job(time.Minute, JobQueued, 5, "", "SELF-HOSTED")        // labels match case-insensitively
	e.view(2*time.Minute, &v)
	var rv RepositoryView
	e.repoView(2*time.Minute, &rv)
	e.drain(3 * time.Minute)
	e.run()
	assert.Equal(t, []int64{1, 5}, queueIDs(v))
	assert.Equal(t, []int64{4}, queueIDs(PoolView{Queue: rv.Unmatched}), "a job no pool fits is listed, not dropped")
	assert.Equal(t, 1, rv.UnmatchedTotal)
}

func TestPoolDeletesIdleRunnersAfterGraceNeverBusyOnes(t *testing.T) {
	e := newPoolEnv(t)
	var cfgErr, cfg2Err error
	var before, after PoolView
	e.configure(0, poolConfig(func(c *PoolConfig) {
		c.MinIdle, c.MaxRunners, c.Ephemeral, c.IdleGracePeriod = 0, 3, false, Duration(2*time.Minute)
	}), &cfgErr)
	for i := int64(1); i <= 3; i++ {
		e.job(time.Minute, JobQueued, i, "")
	}
	// Runner 0 takes job 1 and keeps it; runners 1 and 2 take and finish
	// jobs 2 and 3 at 3m, and are idle from then on.
	e.at(2*time.Minute, func() {
		for i := 0; i < 3; i++ {
			e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobInProgress, JobID: int64(i + 1), RunnerName: runnerName(e, i)})
		}
	})
	e.at(3*time.Minute, func() {
		for i := 1; i < 3; i++ {
			e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobCompleted, JobID: int64(i + 1), RunnerName: runnerName(e, i)})
		}
	})
	e.view(4*time.Minute+50*time.Second, &before)
	// Lowering maxRunners to 1 cannot take the busy runner.
	e.configure(6*time.Minute, poolConfig(func(c *PoolConfig) {
		c.MinIdle, c.MaxRunners, c.Ephemeral, c.IdleGracePeriod = 0, 1, false, Duration(2*time.Minute)
	}), &cfg2Err)
	e.view(10*time.Minute, &after)
	e.at(11*time.Minute, func() {
		e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobCompleted, JobID: 1, RunnerName: runnerName(e, 0)})
	})
	e.drain(12 * time.Minute)
	e.run()
	require.NoError(t, cfg2Err)
	assert.Equal(t, 2, before.Counts.Idle, "within the grace period, idle runners stay")
	assert.Equal(t, 1, before.Counts.Busy)
	assert.Equal(t, 0, after.Counts.Idle, "after it, idle runners beyond minIdle are gone")
	require.Len(t, after.Runners, 1)
	assert.Equal(t, RunnerBusy, after.Runners[0].State, "a busy runner is never deleted")
}

func TestPoolBacksOffAfterFailuresAndRecovers(t *testing.T) {
	e := newPoolEnv(t)
	e.failNext = 3
	var cfgErr error
	var degraded, recovered PoolView
	e.configure(0, poolConfig(func(c *PoolConfig) { c.MinIdle = 1 }), &cfgErr)
	e.view(30*time.Second, &degraded)
	e.view(30*time.Minute, &recovered)
	e.drain(31 * time.Minute)
	e.run()
	assert.True(t, degraded.Degraded)
	assert.Equal(t, "boom", degraded.LastError)
	require.Len(t, e.started, 4, "three failures, then a success")
	// Each failure (1s after its start) is followed by a longer pause.
	var gaps []time.Duration
	for i := 1; i < len(e.started); i++ {
		gaps = append(gaps, e.started[i].at.Sub(e.started[i-1].at)-time.Second)
	}
	assert.Equal(t, []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second}, gaps)
	assert.False(t, recovered.Degraded, "one success clears degraded")
	assert.Equal(t, 1, recovered.Counts.Idle)
}

func TestPoolRejectsBadConfigAndChangesNothing(t *testing.T) {
	e := newPoolEnv(t)
	var okErr, badErr, drainedErr error
	var v PoolView
	e.configure(0, poolConfig(func(c *PoolConfig) { c.MinIdle = 1 }), &okErr)
	e.configure(time.Minute, poolConfig(func(c *PoolConfig) { c.MinIdle, c.MaxRunners = 5, 2 }), &badErr)
	e.view(2*time.Minute, &v)
	e.drain(3 * time.Minute)
	e.configure(3*time.Minute+time.Second, poolConfig(), &drainedErr)
	e.run()
	require.NoError(t, okErr)
	assert.ErrorContains(t, badErr, "minIdle")
	assert.Equal(t, 1, v.Config.MinIdle, "a rejected update changes nothing")
	assert.ErrorContains(t, drainedErr, "draining")
}

func TestPoolContinuesAsNewKeepingState(t *testing.T) {
	e := newPoolEnv(t)
	e.slow = time.Hour // runners stay provisioning
	// The runners are abandoned, not ended, when the pool moves on.
	e.env.SetDetachedChildWait(false)
	var cfgErr error
	e.configure(0, poolConfig(func(c *PoolConfig) { c.MinIdle = 1 }), &cfgErr)
	e.job(time.Minute, JobQueued, 1, "")
	e.job(time.Minute, JobQueued, 2, "")
	e.job(time.Minute, JobCompleted, 9, "")
	e.job(2*time.Minute, JobQueued, 3, "")
	e.at(2*time.Minute+time.Second, func() { e.env.SetContinueAsNewSuggested(true) })
	e.job(2*time.Minute, JobQueued, 4, "", "arm64")
	e.env.ExecuteWorkflow(RepositoryWorkflowName, RepositoryInput{Owner: "octo", Repo: "app"})
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(e.env.GetWorkflowError(), &can), "got %v", e.env.GetWorkflowError())
	var next RepositoryInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.NotNil(t, next.Repository)
	st := next.Repository
	require.Len(t, st.Pools, 1)
	p := st.Pools[0]
	assert.Equal(t, DefaultPool, p.Name)
	assert.Equal(t, 1, p.Config.MinIdle)
	assert.Equal(t, []int64{1, 2, 3}, queueIDs(PoolView{Queue: p.Queue}), "the queue goes along, in order")
	assert.Len(t, p.Runners, 3)
	assert.Equal(t, []int64{4}, queueIDs(PoolView{Queue: st.Unmatched}), "the unmatched jobs go along")
	assert.Equal(t, 1, st.UnmatchedTotal)
	assert.True(t, st.Configured)
	assert.Contains(t, st.Seen, "9/completed", "the dedupe window goes along")
	assert.Equal(t, 3, st.Seq)
	assert.NotEmpty(t, st.Prefix)
}

func TestPoolConfigDefaultsAndValidation(t *testing.T) {
	c := DefaultPoolConfig()
	assert.Equal(t, PoolConfig{Agent: "local", Labels: []string{"self-hosted", "linux"}, MinIdle: 0, MaxRunners: 3,
		IdleGracePeriod: Duration(2 * time.Minute), BootstrapTimeout: Duration(10 * time.Minute),
		QueuePollInterval: Duration(2 * time.Minute), Ephemeral: true,
		RunnerGroup: "default", Provider: ProviderConfig{"kind": "process"}}, c)
	require.NoError(t, c.Validate())
	for name, mutate := range map[string]func(*PoolConfig){
		"minIdle > maxRunners": func(c *PoolConfig) { c.MinIdle = 4 },
		"negative minIdle":     func(c *PoolConfig) { c.MinIdle = -1 },
		"too many runners":     func(c *PoolConfig) { c.MaxRunners = MaxRunnersLimit + 1 },
		"no runners":           func(c *PoolConfig) { c.MaxRunners = 0 },
		"no labels":            func(c *PoolConfig) { c.Labels = nil },
		"long label":           func(c *PoolConfig) { c.Labels = []string{string(make([]byte, 257))} },
		"grace too long":       func(c *PoolConfig) { c.IdleGracePeriod = Duration(25 * time.Hour) },
		"bootstrap too short":  func(c *PoolConfig) { c.BootstrapTimeout = Duration(time.Second) },
		"bad agent":            func(c *PoolConfig) { c.Agent = "Bad Agent" },
		"bad group":            func(c *PoolConfig) { c.RunnerGroup = "ops" },
		"no provider":          func(c *PoolConfig) { c.Provider = ProviderConfig{} },
		"poll too often":       func(c *PoolConfig) { c.QueuePollInterval = Duration(time.Second) },
	} {
		c := DefaultPoolConfig()
		mutate(&c)
		assert.Error(t, c.Validate(), name)
	}
	id, err := RunnerGroupID("42")
	require.NoError(t, err)
	assert.Equal(t, int64(42), id)
}

func TestPoolPausesProvisioningWhileItsAgentIsOffline(t *testing.T) {
	e := newPoolEnv(t)
	var cfgErr error
	var paused, resumed PoolView
	e.configure(0, poolConfig(func(c *PoolConfig) { c.MaxRunners = 5 }), &cfgErr)
	e.at(time.Minute, func() { e.env.SignalWorkflow(SignalAgent, AgentStatusEvent{Agent: "lab-1", Online: false}) })
	e.job(2*time.Minute, JobQueued, 1, "")
	e.job(2*time.Minute, JobQueued, 2, "")
	e.view(3*time.Minute, &paused)
	e.at(4*time.Minute, func() { e.env.SignalWorkflow(SignalAgent, AgentStatusEvent{Agent: "lab-1", Online: true}) })
	e.view(5*time.Minute, &resumed)
	e.drain(6 * time.Minute)
	e.run()
	assert.True(t, paused.AgentOffline)
	assert.Equal(t, 2, paused.Counts.Queued, "jobs keep waiting")
	assert.Empty(t, paused.Runners, "no runner is started for an offline agent")
	assert.False(t, resumed.AgentOffline)
	assert.Len(t, resumed.Runners, 2, "provisioning resumes when the agent returns")
}

func TestPoolFindsJobsWhoseWebhookWasMissed(t *testing.T) {
	e := newPoolEnv(t)
	var cfgErr error
	var found, later, gone PoolView
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e.env.SetStartTime(start)
	e.configure(0, poolConfig(func(c *PoolConfig) { c.QueuePollInterval = Duration(time.Minute) }), &cfgErr)
	// GitHub lists job 77 as queued, but its webhook never came; job 5's
	// webhook came, yet GitHub lists it no more (its in_progress was lost).
	e.job(time.Second, JobQueued, 5, "")
	e.at(2*time.Second, func() {
		e.setQueued([]activities.QueuedJob{{ID: 77, RunID: 7, Labels: []string{"self-hosted"}, CreatedAt: start}})
	})
	e.view(90*time.Second, &found)
	e.view(150*time.Second, &later)
	e.at(3*time.Minute, func() { e.setQueued(nil) })
	e.view(5*time.Minute, &gone)
	e.drain(6 * time.Minute)
	e.run()
	require.NoError(t, cfgErr)
	assert.Equal(t, []int64{5, 77}, queueIDs(found), "the missed job is queued; a fresh one stays for a grace minute")
	assert.NotEmpty(t, found.Runners, "runners start for them")
	assert.Equal(t, []int64{77}, queueIDs(later), "a job GitHub no longer lists as queued leaves the queue")
	assert.Empty(t, gone.Queue)
	assert.GreaterOrEqual(t, e.pollCount(), 4, "polled every minute")
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, id := range e.reconcileIDs {
		assert.Equal(t, AgentActivityID("lab-1", "reconcile", i+1), id,
			"an agent's activities are named after it, for Temporal's authorizer")
	}
}

// TestALeanLoopKeepsOneTimerAndHoldsBackCountsInTheMemo: jobs arriving
// one after another wake the loop each time; it keeps the timer of its
// next reconciliation across those turns rather than starting and
// cancelling one each, and publishes a memo for counts alone at most
// every memoEvery, while a change of configuration is published at once.
func TestALeanLoopKeepsOneTimerAndHoldsBackCountsInTheMemo(t *testing.T) {
	e := newPoolEnv(t)
	var started, canceled int
	e.env.SetOnTimerScheduledListener(func(string, time.Duration) { started++ })
	e.env.SetOnTimerCanceledListener(func(string) { canceled++ })
	var memos []time.Time
	e.env.OnUpsertMemo(mock.Anything).Run(func(mock.Arguments) { memos = append(memos, e.env.Now()) }).Return(nil)
	var cfgErr error
	e.configure(0, poolConfig(func(c *PoolConfig) { c.MaxRunners, c.QueuePollInterval = 3, 0 }), &cfgErr)
	for i := int64(1); i <= 20; i++ {
		e.job(time.Minute+time.Duration(i)*100*time.Millisecond, JobQueued, i, "")
	}
	e.configure(2*time.Minute, poolConfig(func(c *PoolConfig) { c.MaxRunners, c.QueuePollInterval = 4, 0 }), &cfgErr)
	e.drain(3 * time.Minute)
	e.run()
	require.NoError(t, cfgErr)
	assert.LessOrEqual(t, canceled, 3, "timers cancelled (%d started) for 20 jobs", started)
	var burst int
	for _, at := range memos {
		if at.After(e.env.Now().Add(-time.Hour)) && !at.Before(memos[0].Add(time.Minute)) && at.Before(memos[0].Add(time.Minute+2*time.Second)) {
			burst++
		}
	}
	assert.LessOrEqual(t, burst, 1, "20 jobs in two seconds: one memo at most, at %v", memos)
	var atConfig bool
	for _, at := range memos {
		atConfig = atConfig || at.Equal(memos[0].Add(2*time.Minute))
	}
	assert.True(t, atConfig, "a change of configuration is published at once: %v", memos)
}
