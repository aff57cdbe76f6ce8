package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func simConfig(mutate ...func(*PoolConfig)) PoolConfig {
	c := DefaultPoolConfig()
	c.Agent = "lab-1"
	c.QueuePollInterval = 0
	for _, m := range mutate {
		m(&c)
	}
	return c
}

func TestAPoolServesItsQueueWithinMaxRunners(t *testing.T) {
	s := newPoolSim(t)
	var err error
	s.configure(0, simConfig(func(c *PoolConfig) { c.MaxRunners = 3 }), &err)
	s.queue(time.Second, 10)
	var mid PoolStatus
	s.status(3*time.Second, &mid)
	s.drain(2 * time.Minute)
	v := s.run()
	require.NoError(t, err)
	assert.Equal(t, 10, s.done(), "every job ran")
	assert.LessOrEqual(t, s.maxActive, 3, "never more than maxRunners")
	assert.Equal(t, 3, mid.Counts.Busy+mid.Counts.Provisioning+mid.Counts.Idle, "%+v", mid.Counts)
	assert.Equal(t, 10, v.Counts.JobsDone)
	assert.Empty(t, v.Runners)
}

func TestAPoolKeepsMinIdleAndDrains(t *testing.T) {
	s := newPoolSim(t)
	var err error
	s.configure(0, simConfig(func(c *PoolConfig) { c.MinIdle, c.MaxRunners = 2, 4 }), &err)
	var warm PoolStatus
	s.status(time.Minute, &warm)
	s.drain(2 * time.Minute)
	v := s.run()
	require.NoError(t, err)
	assert.Equal(t, 2, warm.Counts.Idle, "two warm runners, known online from GitHub: %+v", warm.Counts)
	assert.Len(t, s.started, 2)
	assert.Empty(t, v.Runners, "a drained pool has no runner")
	assert.True(t, v.Draining)
}

func TestAPoolDeletesIdleRunnersAfterGraceNeverBusyOnes(t *testing.T) {
	s := newPoolSim(t)
	s.reusable = true
	s.jobTimes = map[int]time.Duration{0: 10 * time.Minute}
	var err error
	s.configure(0, simConfig(func(c *PoolConfig) {
		c.MaxRunners, c.Ephemeral, c.IdleGracePeriod = 3, false, Duration(time.Minute)
	}), &err)
	s.queue(time.Second, 3)
	var before, after PoolStatus
	s.status(45*time.Second, &before)
	s.status(3*time.Minute, &after)
	s.drain(12 * time.Minute)
	s.run()
	require.NoError(t, err)
	assert.Equal(t, 1, before.Counts.Busy, "the long job runs: %+v", before.Counts)
	assert.Equal(t, 2, before.Counts.Idle, "two runners idle after their job, within the grace: %+v", before.Counts)
	assert.Equal(t, PoolCounts{Busy: 1, JobsDone: 2}, after.Counts, "the idle ones went after the grace, not the busy one")
	assert.Equal(t, 3, s.done())
}

func TestAPoolBacksOffAfterFailuresAndRecovers(t *testing.T) {
	s := newPoolSim(t)
	s.failNext = 2
	var err error
	s.configure(0, simConfig(func(c *PoolConfig) { c.MaxRunners = 1 }), &err)
	s.queue(time.Second, 1)
	var failed, healed PoolStatus
	s.status(5*time.Second, &failed)
	s.status(3*time.Minute, &healed)
	s.drain(4 * time.Minute)
	s.run()
	require.NoError(t, err)
	assert.True(t, failed.Degraded, "%+v", failed.PoolView)
	assert.Contains(t, failed.LastError, "exited with code 1")
	assert.False(t, healed.Degraded, "recovered once a runner took the job")
	assert.Equal(t, 1, s.done())
	require.Len(t, s.started, 3)
	assert.GreaterOrEqual(t, s.started[2].at.Sub(s.started[1].at), 20*time.Second, "the second failure doubled the backoff")
}

func TestAPoolRejectsBadConfigAndChangesNothing(t *testing.T) {
	s := newPoolSim(t)
	var ok, bad, wrongPool error
	s.configure(0, simConfig(), &ok)
	s.configure(time.Second, simConfig(func(c *PoolConfig) { c.MinIdle, c.MaxRunners = 5, 2 }), &bad)
	s.configureWith(2*time.Second, ConfigureRequest{Pool: "other", Config: simConfig()}, &wrongPool)
	var st PoolStatus
	s.status(3*time.Second, &st)
	s.drain(time.Minute)
	s.run()
	require.NoError(t, ok)
	require.Error(t, bad)
	assert.Contains(t, bad.Error(), "maxRunners")
	require.Error(t, wrongPool)
	assert.Equal(t, 3, st.Config.MaxRunners, "the refused config changed nothing")
}

func TestAPoolPausesWhileItsAgentIsOfflineAndServesWhenItIsBack(t *testing.T) {
	s := newPoolSim(t)
	s.offline["lab-1"] = true
	var err error
	s.configure(0, simConfig(), &err)
	s.queue(time.Second, 2)
	var away PoolStatus
	s.status(time.Minute, &away)
	s.at(61*time.Second, func() { s.env.SignalWorkflow(SignalAgent, AgentStatusEvent{Agent: "lab-1", Online: true}) })
	s.drain(3 * time.Minute)
	s.run()
	require.NoError(t, err)
	assert.True(t, away.AgentOffline)
	assert.Equal(t, 2, away.Counts.Queued)
	assert.Equal(t, 0, away.Counts.Provisioning, "no runner while the agent is away")
	assert.Equal(t, 2, s.done(), "served once it is back")
}

// TestAPoolFindsJobsWhoseWebhooksWereAllLost: every webhook is lost. The
// dormant pool (no job, no runner) looks at GitHub when its agent's sweep
// finds runs; then, busy, it reconciles every minute itself: every job is
// served and counted.
func TestAPoolFindsJobsWhoseWebhooksWereAllLost(t *testing.T) {
	s := newPoolSim(t)
	s.silent, s.sweep = true, true
	var err error
	s.configure(0, simConfig(func(c *PoolConfig) { c.QueuePollInterval = Duration(time.Minute) }), &err)
	s.queue(time.Second, 4)
	s.drain(10 * time.Minute)
	v := s.run()
	require.NoError(t, err)
	assert.Equal(t, 4, s.done(), "every job found by reconciling and served")
	assert.Equal(t, 4, v.Counts.JobsDone, "and each counted, its end found by reconciling")
}

func TestARunnerThatNeverComesOnlineIsGivenUp(t *testing.T) {
	s := newPoolSim(t)
	s.neverOnline = true
	var err error
	s.configure(0, simConfig(func(c *PoolConfig) { c.MaxRunners, c.BootstrapTimeout = 1, Duration(time.Minute) }), &err)
	s.queue(time.Second, 1)
	var st PoolStatus
	s.status(70*time.Second, &st)
	s.at(75*time.Second, func() { s.neverOnline = false })
	s.drain(10 * time.Minute)
	s.run()
	require.NoError(t, err)
	assert.True(t, st.Degraded)
	assert.Contains(t, st.LastError, "did not come online within 1m0s")
	assert.Equal(t, 1, st.Usage.BootstrapFailures)
	assert.Equal(t, 1, s.done(), "the job is served by the next runner")
	assert.GreaterOrEqual(t, s.deletes, 1, "the one given up was deleted")
}

// TestADormantPoolSetsNoTimer: a pool with no job and no runner looks at
// GitHub when it is made, then sets no timer for hours (its agent's sweep
// watches its repository); asked to, it looks at once.
func TestADormantPoolSetsNoTimer(t *testing.T) {
	s := manualSim(t)
	var err error
	s.configure(0, simConfig(func(c *PoolConfig) { c.QueuePollInterval = Duration(2 * time.Minute) }), &err)
	var looks int
	s.at(6*time.Hour, func() {
		s.mu.Lock()
		looks = s.reconciles
		s.mu.Unlock()
		s.env.SignalWorkflow(SignalResync, ResyncRequest{Reason: "its agent's sweep found runs queued or in progress"})
	})
	s.drain(6*time.Hour + time.Minute)
	s.run()
	require.NoError(t, err)
	assert.Equal(t, 1, looks, "one look, when it was made, in six hours")
	assert.Equal(t, 2, s.reconciles, "and one when asked")
}

// TestAPoolStartedAgainWithoutItsRoutesServesWhatGitHubQueued: an
// operator terminated a pool's workflow, and the server started it again
// from its memo (its config, no job, no routes), the webhook of a job
// refused meanwhile. Its first look at GitHub finds the job, which routes
// to it, and serves it.
func TestAPoolStartedAgainWithoutItsRoutesServesWhatGitHubQueued(t *testing.T) {
	s := newPoolSim(t)
	s.silent = true // the job's webhook was refused
	s.queue(0, 1)
	s.drain(5 * time.Minute)
	v := s.runWith(PoolInput{Owner: s.ref.Owner, Repo: s.ref.Repo, Pool: s.ref.Pool, Version: PoolVersionCurrent,
		Carried: &PoolCarried{Configured: true, Config: simConfig(), ReconcileNow: true, AgentUnchecked: true}})
	assert.Equal(t, 1, s.done(), "the job found on GitHub and served")
	assert.Equal(t, 1, v.Counts.JobsDone)
}

// TestADormantPoolHoldsNoWatchOpen: once its runners are gone, a pool
// cancels its watch for runners that end unseen (an activity that would
// look every 10 s for an hour): thousands of quiet pools cost nothing.
func TestADormantPoolHoldsNoWatchOpen(t *testing.T) {
	s := newPoolSim(t)
	var err error
	s.configure(0, simConfig(), &err)
	s.queue(time.Second, 3)
	s.drain(30 * time.Minute)
	s.run()
	require.NoError(t, err)
	assert.Equal(t, 3, s.done())
	require.NotEmpty(t, s.watchesStopped, "the watch was cancelled")
	assert.Less(t, s.watchesStopped[0].Sub(s.epoch), 10*time.Minute, "as the runners went, long before the drain")
	assert.Zero(t, s.looks, "no watch ran its hour")
}
