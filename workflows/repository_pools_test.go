package workflows

import (
	"testing"
	"time"

	"github.com/garo-run/garo/activities"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func labels(l ...string) func(*PoolConfig) { return func(c *PoolConfig) { c.Labels = l } }

// poolsOf maps pool names to their views.
func poolsOf(v RepositoryView) map[string]PoolView {
	m := map[string]PoolView{}
	for _, p := range v.Pools {
		m[p.Pool] = p
	}
	return m
}

func (e *poolEnv) startedIn(pool string) []string {
	var names []string
	for _, s := range e.started {
		if s.pool == pool {
			names = append(names, s.name)
		}
	}
	return names
}

func TestEachJobGoesToTheClosestPoolAndTheRestIsListed(t *testing.T) {
	e := newPoolEnv(t)
	var errLinux, errGPU, errBig error
	var v RepositoryView
	e.configurePool(0, "linux", poolConfig(labels("self-hosted", "linux"), func(c *PoolConfig) { c.MaxRunners = 10 }), &errLinux)
	e.configurePool(0, "gpu", poolConfig(labels("self-hosted", "linux", "gpu"), func(c *PoolConfig) { c.Agent = "lab-2" }), &errGPU)
	e.configurePool(0, "big", poolConfig(labels("self-hosted", "linux", "x64", "large")), &errBig)
	e.job(time.Minute, JobQueued, 1, "", "self-hosted", "linux")
	e.job(time.Minute, JobQueued, 2, "", "self-hosted", "GPU")
	e.job(time.Minute, JobQueued, 3, "", "self-hosted")
	e.job(time.Minute, JobQueued, 4, "", "large")
	e.job(time.Minute, JobQueued, 5, "", "self-hosted", "arm64")
	e.repoView(2*time.Minute, &v)
	for _, p := range []string{"big", "gpu", "linux"} {
		e.drainWith(3*time.Minute, DrainRequest{Pool: p}, nil)
	}
	final := e.run()
	require.NoError(t, errLinux)
	require.NoError(t, errGPU)
	require.NoError(t, errBig)
	pools := poolsOf(v)
	require.Len(t, pools, 3)
	assert.Equal(t, []int64{1, 3}, queueIDs(pools["linux"]), "the fewest extra labels win")
	assert.Equal(t, []int64{2}, queueIDs(pools["gpu"]), "labels match case-insensitively")
	assert.Equal(t, []int64{4}, queueIDs(pools["big"]))
	assert.Equal(t, []int64{5}, queueIDs(PoolView{Queue: v.Unmatched}), "a job no pool fits is listed")
	assert.Equal(t, 1, v.UnmatchedJobs)
	assert.Equal(t, 1, v.UnmatchedTotal)
	assert.Len(t, e.startedIn("linux"), 2, "each pool starts runners for its own queue")
	assert.Len(t, e.startedIn("gpu"), 1)
	assert.Len(t, e.startedIn("big"), 1)
	assert.Equal(t, "lab-2", pools["gpu"].Config.Agent, "each pool has its own agent")
	assert.Empty(t, final.Pools, "the repository ends with its last pool")
	for _, name := range e.startedIn("gpu") {
		assert.Contains(t, name, "-gpu-", "a runner's name tells its pool")
	}
}

func TestAPoolConfiguredLaterTakesTheJobsThatFitNoOther(t *testing.T) {
	e := newPoolEnv(t)
	var err1, err2 error
	var before, after RepositoryView
	e.configurePool(0, "linux", poolConfig(labels("self-hosted", "linux")), &err1)
	e.job(time.Minute, JobQueued, 1, "", "self-hosted", "gpu")
	e.job(time.Minute, JobQueued, 2, "", "self-hosted", "gpu", "linux")
	e.repoView(2*time.Minute, &before)
	e.configurePool(3*time.Minute, "gpu", poolConfig(labels("self-hosted", "gpu", "linux")), &err2)
	e.repoView(4*time.Minute, &after)
	e.drainWith(5*time.Minute, DrainRequest{Agent: "lab-1"}, nil)
	e.run()
	require.NoError(t, err2)
	assert.Equal(t, 2, before.UnmatchedJobs)
	assert.Empty(t, e.startedIn("linux"), "no runner for a job its pool does not fit")
	assert.Equal(t, []int64{1, 2}, queueIDs(poolsOf(after)["gpu"]), "the new pool takes them, oldest first")
	assert.Zero(t, after.UnmatchedJobs)
	assert.Equal(t, 2, after.UnmatchedTotal, "they still count as unmatched when they came")
	assert.Len(t, e.startedIn("gpu"), 2)
}

func TestARunnerOfAnotherPoolMayTakeTheJob(t *testing.T) {
	e := newPoolEnv(t)
	var err1, err2 error
	var busy, done RepositoryView
	e.configurePool(0, "a", poolConfig(labels("self-hosted", "linux"), func(c *PoolConfig) { c.MinIdle = 1 }), &err1)
	e.configurePool(0, "b", poolConfig(labels("self-hosted", "linux", "x64")), &err2)
	e.job(time.Minute, JobQueued, 1, "", "self-hosted", "linux", "x64")
	// GitHub gives job 1 (queued for pool b) to pool a's idle runner.
	e.at(2*time.Minute, func() {
		e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobInProgress, JobID: 1, RunnerName: e.startedIn("a")[0]})
	})
	e.repoView(3*time.Minute, &busy)
	e.at(4*time.Minute, func() {
		e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobCompleted, JobID: 1, RunnerName: e.startedIn("a")[0]})
	})
	e.repoView(5*time.Minute, &done)
	e.drainWith(6*time.Minute, DrainRequest{Agent: "lab-1"}, nil)
	e.run()
	a, b := poolsOf(busy)["a"], poolsOf(busy)["b"]
	assert.Empty(t, b.Queue, "the job left pool b's queue when it started")
	assert.Equal(t, 1, a.Counts.Busy, "pool a's runner is busy with it")
	assert.Equal(t, int64(1), a.Runners[0].JobID)
	assert.Equal(t, 1, poolsOf(done)["a"].Counts.JobsDone, "the job counts for the pool that ran it")
	assert.Zero(t, poolsOf(done)["b"].Counts.JobsDone)
}

func TestDrainingOnePoolLeavesTheOthersServing(t *testing.T) {
	e := newPoolEnv(t)
	var err1, err2, errUnknown, errDraining, errBadName error
	var draining, drained RepositoryView
	e.configurePool(0, "linux", poolConfig(labels("self-hosted", "linux"), func(c *PoolConfig) { c.MinIdle = 1 }), &err1)
	e.configurePool(0, "gpu", poolConfig(labels("self-hosted", "linux", "gpu"), func(c *PoolConfig) { c.MinIdle = 1 }), &err2)
	e.job(time.Minute, JobQueued, 1, "", "self-hosted", "gpu")
	e.drainWith(2*time.Minute, DrainRequest{Pool: "gpu", Actor: "admin"}, nil)
	e.drainWith(2*time.Minute, DrainRequest{Pool: "nope"}, &errUnknown)
	// Its idle runner takes a second to go.
	e.configurePool(2*time.Minute+300*time.Millisecond, "gpu", poolConfig(), &errDraining)
	e.configurePool(2*time.Minute+300*time.Millisecond, "Bad_Name", poolConfig(), &errBadName)
	e.repoView(2*time.Minute+500*time.Millisecond, &draining)
	e.repoView(10*time.Minute, &drained)
	e.drainWith(11*time.Minute, DrainRequest{Pool: "linux"}, nil)
	e.run()
	assert.Equal(t, ErrTypeNotFound, errType(errUnknown))
	assert.Equal(t, ErrTypeDraining, errType(errDraining))
	assert.ErrorContains(t, errDraining, "draining")
	assert.Equal(t, ErrTypeInvalidRequest, errType(errBadName))
	assert.True(t, poolsOf(draining)["gpu"].Draining)
	assert.Equal(t, []int64{1}, queueIDs(PoolView{Queue: draining.Unmatched}), "a draining pool's jobs find another pool, or wait unmatched")
	require.Len(t, drained.Pools, 1, "the drained pool is gone")
	assert.Equal(t, "linux", drained.Pools[0].Pool)
	assert.Equal(t, 1, drained.Pools[0].Counts.Idle, "the other pool keeps serving")
}

func TestDrainingAnAgentDrainsOnlyItsPoolsAndOfflineOnlyPausesThem(t *testing.T) {
	e := newPoolEnv(t)
	var err1, err2 error
	var paused, after RepositoryView
	e.configurePool(0, "here", poolConfig(labels("self-hosted", "here"), func(c *PoolConfig) { c.MaxRunners = 5 }), &err1)
	e.configurePool(0, "there", poolConfig(labels("self-hosted", "there"), func(c *PoolConfig) { c.Agent, c.MaxRunners = "lab-2", 5 }), &err2)
	e.at(time.Minute, func() { e.env.SignalWorkflow(SignalAgent, AgentStatusEvent{Agent: "lab-2", Online: false}) })
	e.job(2*time.Minute, JobQueued, 1, "", "here")
	e.job(2*time.Minute, JobQueued, 2, "", "there")
	e.repoView(3*time.Minute, &paused)
	e.drainWith(4*time.Minute, DrainRequest{Agent: "lab-1", Actor: "unregister agent lab-1"}, nil)
	e.repoView(10*time.Minute, &after)
	e.drainWith(11*time.Minute, DrainRequest{Agent: "lab-2"}, nil)
	e.run()
	assert.False(t, poolsOf(paused)["here"].AgentOffline)
	assert.True(t, poolsOf(paused)["there"].AgentOffline)
	assert.Len(t, e.startedIn("here"), 1)
	assert.Empty(t, e.startedIn("there"), "no runner starts for the offline agent's pool")
	require.Len(t, after.Pools, 1)
	assert.Equal(t, "there", after.Pools[0].Pool, "only the agent's own pools drain")
}

// TestAPoolForgetsRunnersWhoseWorkflowsEndedUnseen: runners a run did not
// start (it continued as new) whose workflows end without telling the
// pool leave it; the job of one lost while busy goes back into the queue
// when GitHub lists it as queued again, and a drain ends.
func TestAPoolForgetsRunnersWhoseWorkflowsEndedUnseen(t *testing.T) {
	e := newPoolEnv(t)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e.env.SetStartTime(start)
	busy, idle := "garo-abc-1", "garo-abc-2"
	st := &RepositoryState{Configured: true, Seq: 2, Prefix: "abc", Seen: []string{"7/queued", "7/in_progress"},
		Pools: []PoolState{{Name: DefaultPool, Config: poolConfig(func(c *PoolConfig) { c.MinIdle = 1 }),
			Runners: []RunnerRecord{
				{Name: busy, State: RunnerBusy, JobID: 7, CreatedAt: start},
				{Name: idle, State: RunnerIdle, CreatedAt: start, IdleSince: &start},
			}}}}
	id := func(name string) string { return RunnerWorkflowID("octo", "app", name) }
	e.ends[id(busy)] = timedEnd{start.Add(10 * time.Minute), activities.RunnerEnd{WorkflowID: id(busy), Status: "terminated", Error: "terminated by ops"}}
	// GitHub gives the job of the lost runner back to the queue.
	e.setQueued([]activities.QueuedJob{{ID: 7, RunID: 70, Labels: []string{"self-hosted", "linux"}, CreatedAt: start}})
	var lost, after RepositoryView
	e.repoView(10*time.Minute+5*time.Second, &lost)
	e.repoView(20*time.Minute, &after)
	e.drain(30 * time.Minute)
	// The idle one deletes itself when drained; its word is lost, its
	// workflow completes.
	e.ends[id(idle)] = timedEnd{start.Add(31 * time.Minute), activities.RunnerEnd{WorkflowID: id(idle), Status: "completed"}}
	final := e.runWith(RepositoryInput{Owner: "octo", Repo: "app", Repository: st})
	p := poolsOf(after)[DefaultPool]
	names := []string{}
	for _, r := range p.Runners {
		names = append(names, r.Name)
	}
	assert.NotContains(t, names, busy, "the runner whose workflow was terminated left the pool")
	assert.Contains(t, names, idle)
	assert.True(t, poolsOf(lost)[DefaultPool].Degraded, "a runner lost is a failure")
	assert.Contains(t, poolsOf(lost)[DefaultPool].LastError, "terminated")
	assert.Equal(t, []int64{7}, queueIDs(p), "its job, queued again on GitHub, is back in the queue")
	assert.NotEmpty(t, e.startedIn(DefaultPool), "and a runner starts for it")
	assert.Empty(t, final.Pools, "the drain ended")
}
