package workflows

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAPoolOf20000QueuedJobsCarriesLittleAndServesThemAll: 20,000 jobs
// queue while the pool's agent is away; the pool continues as new with a
// payload under 256 KiB (the queue is a page and a count), and serves
// them all once the agent is back, continuing as new on its signal
// budget on the way if it must.
func TestAPoolOf20000QueuedJobsCarriesLittleAndServesThemAll(t *testing.T) {
	s := newPoolSim(t)
	s.offline["lab-1"] = true
	s.jobTime, s.bootTime, s.tick = 100*time.Millisecond, 500*time.Millisecond, time.Second
	var err error
	s.configure(0, simConfig(func(c *PoolConfig) { c.MaxRunners = 200 }), &err)
	for i := range 40 {
		s.queue(time.Second+time.Duration(i)*time.Millisecond, 500)
	}
	s.continueAt(time.Minute)
	s.at(90*time.Second, func() {
		s.mu.Lock()
		delete(s.offline, "lab-1")
		s.mu.Unlock()
		s.env.SignalWorkflow(SignalAgent, AgentStatusEvent{Agent: "lab-1", Online: true})
	})
	s.drain(3 * time.Hour)
	v := s.run()
	require.NoError(t, err)
	require.NotEmpty(t, s.continued)
	first := s.continued[0]
	b, jerr := json.Marshal(first)
	require.NoError(t, jerr)
	assert.Less(t, len(b), 256<<10, "the carried state of 20,000 queued jobs")
	assert.Equal(t, 20000, len(first.Carried.Queue)+first.Carried.QueueRest, "every job still counted")
	for _, in := range s.continued {
		b, _ := json.Marshal(in)
		assert.Less(t, len(b), 256<<10)
	}
	assert.Equal(t, 20000, s.done(), "every job served")
	assert.Equal(t, 20000, v.Counts.JobsDone)
	assert.LessOrEqual(t, s.maxActive, 200)
}

// TestARunDrivenPastItsSignalBudgetContinuesAsNewAndLosesNothing: 1,500
// jobs queued one signal each (as webhooks come when nothing batches
// them) make the run continue as new on its signal budget, far below
// Temporal's 10,000; every job is served and counted once.
func TestARunDrivenPastItsSignalBudgetContinuesAsNewAndLosesNothing(t *testing.T) {
	s := newPoolSim(t)
	s.jobTime = time.Second
	var err error
	s.configure(0, simConfig(func(c *PoolConfig) { c.MaxRunners = 50 }), &err)
	for i := range 1500 {
		s.queue(time.Second+time.Duration(i)*10*time.Millisecond, 1)
	}
	s.drain(time.Hour)
	v := s.run()
	require.NoError(t, err)
	require.NotEmpty(t, s.continued, "the run continued as new on its signal budget")
	assert.Equal(t, 1500, s.done())
	assert.Equal(t, 1500, v.Counts.JobsDone, "each job counted once, across the runs")
}

// TestFiveThousandRunnerStartsInOneStepStayUnderThePerTaskGuard: a pool
// of maxRunners 5,000 with 5,000 jobs queued starts its runners in
// batches of at most 500 (one activity each), never a child: no task
// comes near Temporal's limits.
func TestFiveThousandRunnerStartsInOneStepStayUnderThePerTaskGuard(t *testing.T) {
	s := newPoolSim(t)
	s.jobTime, s.tick = time.Second, time.Second
	var err error
	s.configure(0, simConfig(func(c *PoolConfig) { c.MaxRunners = 5000 }), &err)
	s.queue(time.Second, 5000)
	var peak PoolStatus
	s.status(3*time.Second, &peak)
	s.drain(10 * time.Minute)
	s.run()
	require.NoError(t, err)
	assert.Equal(t, 5000, len(s.started), "a runner for each job")
	for _, n := range s.startBatches {
		assert.LessOrEqual(t, n, startBatch)
	}
	assert.GreaterOrEqual(t, len(s.startBatches), 10)
	assert.Equal(t, 5000, s.done())
	for _, in := range s.continued {
		b, _ := json.Marshal(in)
		assert.Less(t, len(b), 256<<10, "5,000 runners carried packed")
	}
}

// TestRunnersThatEndBeforeTheirWebhooksAreNotReplacedForJobsTheyRan:
// GitHub's webhooks run seconds behind; an ephemeral runner that ran its
// job and ended before its job's in_progress reached the pool leaves that
// job counted as queued, and the pool must not start another runner for
// it (poolV2): one runner a job, give or take the last few.
func TestRunnersThatEndBeforeTheirWebhooksAreNotReplacedForJobsTheyRan(t *testing.T) {
	s := newPoolSim(t)
	s.jobTime, s.bootTime, s.webhookLag = time.Second, time.Second, 5*time.Second
	var err error
	s.configure(0, simConfig(func(c *PoolConfig) { c.MaxRunners = 20 }), &err)
	s.queue(time.Second, 200)
	s.drain(time.Hour)
	v := s.run()
	require.NoError(t, err)
	assert.Equal(t, 200, s.done(), "every job served")
	assert.Equal(t, 200, v.Counts.JobsDone)
	assert.LessOrEqual(t, len(s.started), 205, "runners started for 200 jobs")
}
