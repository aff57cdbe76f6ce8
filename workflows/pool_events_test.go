package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/activities"
)

func manualSim(t *testing.T) *poolSim {
	s := newPoolSim(t)
	s.manual = true
	s.github = func(activities.ReconcileInput) activities.Reconciliation { return activities.Reconciliation{} }
	return s
}

func TestAPoolBindsJobsOnlyWhenInProgressAndAnEphemeralRunnerEndsAfterItsJob(t *testing.T) {
	s := manualSim(t)
	var err error
	var queued, busy, after PoolStatus
	s.configure(0, simConfig(), &err)
	s.send(time.Minute, s.ev(JobQueued, 1, -1))
	s.status(2*time.Minute, &queued)
	s.send(3*time.Minute, s.ev(JobInProgress, 1, 0))
	s.status(4*time.Minute, &busy)
	s.send(5*time.Minute, s.ev(JobCompleted, 1, 0))
	s.ended(5*time.Minute+time.Second, 0, activities.OutcomeExited, 0)
	s.status(10*time.Minute, &after)
	s.drain(11 * time.Minute)
	s.run()
	require.NoError(t, err)
	assert.Equal(t, 1, queued.Counts.Queued)
	assert.Equal(t, 1, queued.Counts.Provisioning, "a runner was started for the job, but the job is not bound yet")
	assert.Equal(t, 0, busy.Counts.Queued)
	require.Len(t, busy.Runners, 1)
	assert.Equal(t, RunnerBusy, busy.Runners[0].State)
	assert.Equal(t, int64(1), busy.Runners[0].JobID)
	assert.Empty(t, after.Runners, "an ephemeral runner is gone after its one job")
	assert.Equal(t, 1, after.Counts.JobsDone)
	assert.Len(t, s.started, 1, "no new runner without demand (minIdle 0)")
}

func TestAPoolDedupesAndToleratesAnyOrder(t *testing.T) {
	s := manualSim(t)
	var err error
	var st PoolStatus
	s.configure(0, simConfig(func(c *PoolConfig) { c.MaxRunners = 10 }), &err)
	s.send(time.Minute,
		s.ev(JobQueued, 1, -1), s.ev(JobQueued, 1, -1), s.ev(JobWaiting, 1, -1), // duplicates
		s.ev(JobCompleted, 2, -1), s.ev(JobQueued, 2, -1), // completed before its queued
		s.ev(JobInProgress, 3, -1), s.ev(JobQueued, 3, -1), // in progress before its queued
		s.ev(JobQueued, 5, -1, "SELF-HOSTED"))
	s.status(2*time.Minute, &st)
	s.drain(3 * time.Minute)
	s.run()
	require.NoError(t, err)
	assert.Equal(t, []int64{1, 5}, queueIDs(st.PoolView))
}

func TestAJobNoPoolFitsIsKeptByTheKeeperAndHandedToAPoolThatFitsIt(t *testing.T) {
	s := manualSim(t)
	var err error
	var before, after PoolStatus
	s.configure(0, simConfig(), &err)
	unmatched := func() JobEvent { e := s.ev(JobQueued, 4, -1, "self-hosted", "gpu")(); e.Unmatched = true; return e }
	s.send(time.Minute, unmatched)
	s.status(2*time.Minute, &before)
	gpu := Routes{Version: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), Pools: []RouteEntry{
		{Pool: "default", Labels: []string{"self-hosted", "linux"}}, {Pool: "gpu", Labels: []string{"self-hosted", "gpu"}}}}
	s.at(3*time.Minute, func() { s.env.SignalWorkflow(SignalRoutes, gpu) })
	s.status(4*time.Minute, &after)
	s.drain(5 * time.Minute)
	s.run()
	require.NoError(t, err)
	require.Len(t, before.Unmatched, 1, "kept, not dropped")
	assert.Equal(t, 1, before.UnmatchedTotal)
	assert.Empty(t, after.Unmatched, "handed on to the pool that fits it")
	require.NotEmpty(t, s.forwards)
	assert.Equal(t, int64(4), s.forwards[0].Jobs[0].JobID)
	assert.True(t, s.forwards[0].Jobs[0].Routed)
}

func TestAJobAnotherPoolFitsBetterIsHandedOn(t *testing.T) {
	s := manualSim(t)
	var err error
	var st PoolStatus
	s.configure(0, simConfig(func(c *PoolConfig) { c.Labels = []string{"self-hosted", "linux", "x64"} }), &err)
	s.send(time.Minute, s.ev(JobQueued, 1, -1, "self-hosted", "linux"), s.ev(JobQueued, 2, -1, "self-hosted", "linux", "x64"))
	routes := Routes{Version: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), Pools: []RouteEntry{
		{Pool: "default", Labels: []string{"self-hosted", "linux", "x64"}}, {Pool: "small", Labels: []string{"self-hosted", "linux"}}}}
	s.at(2*time.Minute, func() { s.env.SignalWorkflow(SignalRoutes, routes) })
	s.status(3*time.Minute, &st)
	s.drain(4 * time.Minute)
	s.run()
	require.NoError(t, err)
	assert.Equal(t, []int64{2}, queueIDs(st.PoolView), "the job that fits it best stays")
	require.NotEmpty(t, s.forwards)
	assert.Equal(t, int64(1), s.forwards[0].Jobs[0].JobID, "the other goes to the pool that fits it more closely")
	assert.True(t, s.forwards[0].Jobs[0].Routed)
}

func TestADrainingPoolHandsItsQueueOn(t *testing.T) {
	s := manualSim(t)
	var err error
	s.configure(0, simConfig(), &err)
	routes := Routes{Version: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), Pools: []RouteEntry{
		{Pool: "default", Labels: []string{"self-hosted", "linux"}}, {Pool: "other", Labels: []string{"self-hosted", "linux", "big"}}}}
	s.at(time.Second, func() { s.env.SignalWorkflow(SignalRoutes, routes) })
	s.send(time.Minute, s.ev(JobQueued, 1, -1))
	s.drain(2 * time.Minute)
	v := s.run()
	require.NoError(t, err)
	require.Len(t, s.forwards, 1, "its queued job goes to the other pool")
	assert.Equal(t, int64(1), s.forwards[0].Jobs[0].JobID)
	assert.Empty(t, v.Queue)
}
