package workflows

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAnOldRunHandsEveryPoolOverAndLosesNothing is the upgrade: a
// RepositoryWorkflow of the release before the pool engine serves two
// pools (300 jobs queued for one, runners busy, a job no pool fits) when
// the server of the new release asks it to hand over. Each pool goes on in
// a PoolWorkflow of its own with everything it had: its config, its
// runners and their jobs, its queue (a page of it and the count of the
// rest, which the pool's first reconcile re-derives from GitHub), the
// marks of every job it saw, and the jobs no pool fits with the pool that
// keeps them. The old run then ends.
func TestAnOldRunHandsEveryPoolOverAndLosesNothing(t *testing.T) {
	e := newPoolEnv(t)
	e.env.SetTestTimeout(30 * time.Second)
	var errLinux, errGPU error
	e.configurePool(0, "linux", poolConfig(func(c *PoolConfig) { c.MaxRunners = 2 }), &errLinux)
	e.configurePool(0, "gpu", poolConfig(func(c *PoolConfig) { c.Labels, c.MaxRunners = []string{"self-hosted", "gpu"}, 1 }), &errGPU)
	const queued = 300
	for id := int64(1); id <= queued; id++ {
		e.job(time.Second, JobQueued, id, "")
	}
	e.job(time.Second, JobQueued, 1001, "", "self-hosted", "gpu")
	e.job(time.Second, JobQueued, 2001, "", "self-hosted", "arm")
	busy := map[string]int64{}
	e.at(30*time.Second, func() {
		for i, s := range e.started {
			if s.pool == "linux" {
				id := int64(len(busy) + 1)
				busy[s.name] = id
				e.sawOnGitHub(JobInProgress, id, s.name, nil)
				e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobInProgress, Repository: "octo/app", JobID: id,
					Labels: []string{"self-hosted", "linux"}, RunnerName: runnerName(e, i)})
			}
		}
	})
	e.at(time.Minute, func() { e.env.SignalWorkflow(SignalMigrate, nil) })
	// The runners go on after the handover; here they end later.
	e.at(2*time.Minute, func() {
		for _, s := range e.started {
			require.NoError(t, e.env.SignalWorkflowByID(RunnerWorkflowID("octo", "app", s.name), SignalControl,
				RunnerControl{Action: ControlDelete}))
		}
	})
	e.run()
	require.NoError(t, errLinux)
	require.NoError(t, errGPU)

	handed := e.handed
	require.Len(t, handed, 2, "a PoolWorkflow for each pool")
	byPool := map[string]PoolInput{}
	for _, in := range handed {
		assert.Equal(t, "octo", in.Owner)
		assert.Equal(t, "app", in.Repo)
		assert.Equal(t, poolVersionCurrent, in.Version)
		require.NotNil(t, in.Carried)
		assert.True(t, in.Carried.ReconcileNow, "it looks at GitHub at once")
		byPool[in.Pool] = in
	}
	linux, gpu := byPool["linux"].Carried, byPool["gpu"].Carried
	require.NotNil(t, linux)
	require.NotNil(t, gpu)
	assert.Equal(t, 2, linux.Config.MaxRunners)
	assert.Equal(t, []string{"self-hosted", "gpu"}, gpu.Config.Labels)

	require.Len(t, busy, 2)
	for name, job := range busy {
		i := slices.IndexFunc(linux.Runners, func(r PoolRunner) bool {
			return (&poolWorkflow{ref: PoolRef{Owner: "octo", Repo: "app", Pool: "linux"}, s: *linux}).runnerName(r) == name
		})
		require.GreaterOrEqual(t, i, 0, "runner %s goes on in its pool", name)
		assert.Equal(t, RunnerBusy, linux.Runners[i].State)
		assert.Equal(t, job, linux.Runners[i].JobID)
	}
	assert.Len(t, gpu.Runners, 1)

	// Jobs 1 and 2 run; 3 to 300 wait: a page, and the count of the rest.
	assert.Len(t, linux.Queue, queuePage)
	assert.Equal(t, int64(3), linux.Queue[0].JobID, "oldest first")
	assert.Equal(t, queued-2-queuePage, linux.QueueRest)
	for id := int64(1); id <= queued; id++ {
		assert.True(t, linux.Marks.has(id, markQueued), "job %d's queued event is remembered", id)
	}
	assert.True(t, gpu.Marks.has(1001, markQueued))
	waiting := slices.ContainsFunc(gpu.Queue, func(j QueuedJob) bool { return j.JobID == 1001 })
	assert.True(t, waiting, "the gpu job waits in its pool")

	keeper := byPool["gpu"].Routes.Keeper()
	assert.Equal(t, keeper, byPool["linux"].Routes.Keeper(), "every pool agrees which one keeps the unmatched jobs")
	kept := byPool[keeper].Carried
	require.Len(t, kept.Unmatched, 1)
	assert.Equal(t, int64(2001), kept.Unmatched[0].JobID)
}
