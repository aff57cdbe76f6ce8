package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/activities"
)

// lose makes GitHub report job id done on runner, with no webhook, and
// the runner's workflow report it deleted (its instance exited after the
// job), as when the server was down for the completed webhook.
func (e *poolEnv) lose(d time.Duration, id int64, runner func() string) {
	e.at(d, func() {
		name := runner()
		e.setGitHubJob(activities.JobState{QueuedJob: activities.QueuedJob{ID: id}, Status: "completed",
			Conclusion: "success", RunnerName: name})
		e.env.SignalWorkflow(SignalRunner, RunnerEvent{Name: name, State: RunnerDeleted})
	})
}

func (e *poolEnv) startedName(i int) func() string {
	return func() string {
		require.Greater(e.t, len(e.started), i, "runner %d never started", i)
		return e.started[i].name
	}
}

// TestJobsDoneIsExactWhenCompletedWebhooksAreLost: the completed webhook of
// a job is lost and its runner ends first. The pool frees the runner at
// once, and the reconciliation within a minute counts the job from
// GitHub's view. A completed webhook that comes late, after its runner has
// gone, is counted too, and never twice.
func TestJobsDoneIsExactWhenCompletedWebhooksAreLost(t *testing.T) {
	e := newPoolEnv(t)
	e.env.SetDetachedChildWait(false) // the runners said they ended, and the test leaves them
	var cfgErr error
	var lost, counted, late PoolView
	e.configure(0, poolConfig(func(c *PoolConfig) { c.MaxRunners = 2 }), &cfgErr)
	e.job(time.Second, JobQueued, 1, "")
	e.job(time.Second, JobQueued, 2, "")
	e.at(10*time.Second, func() {
		e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobInProgress, JobID: 1, RunnerName: e.startedName(0)()})
		e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobInProgress, JobID: 2, RunnerName: e.startedName(1)()})
	})
	e.lose(20*time.Second, 1, e.startedName(0))
	e.view(21*time.Second, &lost)
	e.view(90*time.Second, &counted)
	// Job 2's completed webhook comes after its runner has gone, and
	// GitHub reports it too: it counts once.
	e.lose(100*time.Second, 2, e.startedName(1))
	e.at(101*time.Second, func() {
		e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobCompleted, JobID: 2, RunnerName: e.startedName(1)()})
	})
	e.view(5*time.Minute, &late)
	e.drain(6 * time.Minute)
	e.run()
	require.NoError(t, cfgErr)
	assert.Equal(t, 0, lost.Counts.JobsDone, "not counted before GitHub says so")
	assert.Len(t, lost.Runners, 1, "the runner that ended is freed at once")
	assert.Equal(t, 1, counted.Counts.JobsDone, "counted from GitHub's view within a minute")
	assert.Equal(t, 2, late.Counts.JobsDone, "a late webhook counts, once")
}

// TestResyncReconcilesAtOnce: a quiet repository (its pool does not poll)
// reconciles with GitHub as soon as it is asked to, and routes the job
// that was queued while the server could not take its webhook.
func TestResyncReconcilesAtOnce(t *testing.T) {
	e := newPoolEnv(t)
	var cfgErr error
	var before, after PoolView
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e.env.SetStartTime(start)
	e.configure(0, poolConfig(), &cfgErr)
	e.at(10*time.Minute, func() {
		e.setQueued([]activities.QueuedJob{{ID: 9, Labels: []string{"self-hosted"}, CreatedAt: start.Add(9 * time.Minute)}})
	})
	e.view(11*time.Minute, &before)
	failedSince := start.Add(11 * time.Minute)
	e.at(12*time.Minute, func() {
		e.env.SignalWorkflow(SignalResync, ResyncRequest{Reason: "a webhook was refused", FailedSince: &failedSince})
	})
	e.view(12*time.Minute+time.Second, &after)
	e.drain(13 * time.Minute)
	e.run()
	require.NoError(t, cfgErr)
	assert.Empty(t, before.Queue, "a quiet repository does not poll")
	assert.Equal(t, []int64{9}, queueIDs(after), "a resync reconciles at once")
	assert.NotEmpty(t, after.Runners, "and a runner starts for the job")
	require.NotEmpty(t, e.reconciled)
	asked := e.reconciled[0]
	require.NotNil(t, asked.RedeliverSince, "the webhooks that failed are asked for again")
	assert.Equal(t, failedSince, *asked.RedeliverSince)
	for _, later := range e.reconciled[1:] {
		assert.Nil(t, later.RedeliverSince, "once")
	}
}

// TestReconcileBindsAJobWhoseInProgressWasMissed: GitHub reports a job in
// progress on the pool's idle runner whose in_progress webhook never came:
// the runner is busy, so it is neither deleted as idle nor counted free.
func TestReconcileBindsAJobWhoseInProgressWasMissed(t *testing.T) {
	e := newPoolEnv(t)
	var cfgErr error
	var v PoolView
	e.configure(0, poolConfig(func(c *PoolConfig) { c.MinIdle = 1 }), &cfgErr)
	e.job(5*time.Second, JobQueued, 3, "")
	e.at(10*time.Second, func() {
		e.setGitHubJob(activities.JobState{QueuedJob: activities.QueuedJob{ID: 3}, Status: "in_progress", RunnerName: e.startedName(0)()})
		e.mu.Lock()
		e.queued = nil
		e.mu.Unlock()
	})
	e.view(2*time.Minute, &v)
	e.at(3*time.Minute, func() {
		e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobCompleted, JobID: 3, RunnerName: e.startedName(0)()})
	})
	e.drain(4 * time.Minute)
	e.run()
	require.NoError(t, cfgErr)
	require.NotEmpty(t, v.Runners)
	r := v.Runners[0]
	assert.Equal(t, RunnerBusy, r.State)
	assert.Equal(t, int64(3), r.JobID)
	assert.Empty(t, v.Queue)
}

// TestReconcileReplacesAnIdleRunnerGitHubNoLongerLists: an idle runner
// whose registration is gone from GitHub can take no job: it is deleted
// and the pool starts another.
func TestReconcileReplacesAnIdleRunnerGitHubNoLongerLists(t *testing.T) {
	e := newPoolEnv(t)
	var cfgErr error
	var v PoolView
	e.configure(0, poolConfig(func(c *PoolConfig) { c.MinIdle = 1; c.QueuePollInterval = Duration(time.Minute) }), &cfgErr)
	e.at(10*time.Second, func() {
		e.mu.Lock()
		e.unregistered[e.startedName(0)()] = true
		e.mu.Unlock()
	})
	e.view(4*time.Minute, &v)
	e.drain(5 * time.Minute)
	e.run()
	require.NoError(t, cfgErr)
	require.GreaterOrEqual(t, len(e.started), 2, "a runner replaced the unregistered one")
	require.Len(t, v.Runners, 1)
	assert.NotEqual(t, e.started[0].name, v.Runners[0].Name)
	assert.Equal(t, RunnerIdle, v.Runners[0].State)
}

// TestALostJobIsRunAgainOnce: in a pool with retryLostJobs, a job whose
// runner was lost mid-job and that GitHub then reports failed is run
// again through GitHub's re-run API, once, however often its end is told;
// a job that failed on a runner that was not lost is not, nor is a lost
// job in a pool that does not retry.
func TestALostJobIsRunAgainOnce(t *testing.T) {
	for _, retry := range []bool{true, false} {
		e := newPoolEnv(t)
		e.env.SetDetachedChildWait(false)
		var cfgErr error
		e.configure(0, poolConfig(func(c *PoolConfig) { c.MaxRunners, c.RetryLostJobs = 2, retry }), &cfgErr)
		e.job(time.Second, JobQueued, 1, "")
		e.job(time.Second, JobQueued, 2, "")
		e.at(10*time.Second, func() {
			e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobInProgress, JobID: 1, RunnerName: e.startedName(0)()})
			e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobInProgress, JobID: 2, RunnerName: e.startedName(1)()})
		})
		// Runner 0 is lost; then GitHub fails its job, and says so twice
		// (a redelivery). Job 2 fails on its own.
		e.at(20*time.Second, func() {
			e.env.SignalWorkflow(SignalRunner, RunnerEvent{Name: e.startedName(0)(), State: RunnerFailed, Error: "lost"})
		})
		for _, d := range []time.Duration{25 * time.Second, 26 * time.Second} {
			e.at(d, func() {
				e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobCompleted, JobID: 1, RunnerName: e.startedName(0)(), Conclusion: "failure"})
			})
		}
		e.at(27*time.Second, func() {
			e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobCompleted, JobID: 2, RunnerName: e.startedName(1)(), Conclusion: "failure"})
		})
		e.drain(time.Minute)
		e.run()
		require.NoError(t, cfgErr)
		if retry {
			assert.Equal(t, []int64{1}, e.reruns, "the lost job runs again, once")
		} else {
			assert.Empty(t, e.reruns, "a pool that does not retry")
		}
	}
}

// TestAJobWhoseEveryWebhookAfterQueuedWasLostIsCounted: a queued job
// leaves GitHub's queue with neither its in_progress nor its completed
// webhook (the server was down through its whole run): the repository
// keeps it as running, learns from GitHub that it ended on one of its
// runners, and counts it. A job cancelled before it started is not.
func TestAJobWhoseEveryWebhookAfterQueuedWasLostIsCounted(t *testing.T) {
	e := newPoolEnv(t)
	e.env.SetDetachedChildWait(false)
	var cfgErr error
	var v PoolView
	e.configure(0, poolConfig(func(c *PoolConfig) { c.MaxRunners = 2 }), &cfgErr)
	e.job(time.Second, JobQueued, 1, "")
	e.job(time.Second, JobQueued, 2, "")
	e.at(10*time.Second, func() {
		e.mu.Lock()
		e.queued = nil
		e.mu.Unlock()
		e.setGitHubJob(activities.JobState{QueuedJob: activities.QueuedJob{ID: 1}, Status: "completed", Conclusion: "success",
			RunnerName: e.startedName(0)()})
		e.setGitHubJob(activities.JobState{QueuedJob: activities.QueuedJob{ID: 2}, Status: "completed", Conclusion: "cancelled"})
	})
	e.view(5*time.Minute, &v)
	e.drain(6 * time.Minute)
	e.run()
	require.NoError(t, cfgErr)
	assert.Empty(t, v.Queue)
	assert.Equal(t, 1, v.Counts.JobsDone, "the job that ran on the pool's runner, not the cancelled one")
}

// TestAQueuedJobThatRanUnseenIsCountedAtOnce: the next reconciliation
// (here at a resync) finds that a job still in the pool's queue has run
// and ended on one of the pool's runners: it leaves the queue and is
// counted then, not a poll later.
func TestAQueuedJobThatRanUnseenIsCountedAtOnce(t *testing.T) {
	e := newPoolEnv(t)
	e.env.SetDetachedChildWait(false)
	var cfgErr error
	var v PoolView
	e.configure(0, poolConfig(func(c *PoolConfig) { c.MaxRunners = 1 }), &cfgErr)
	e.job(time.Second, JobQueued, 1, "")
	e.job(time.Second, JobQueued, 2, "")
	e.at(5*time.Second, func() {
		e.mu.Lock()
		e.queued = e.queued[1:] // job 1 ran; job 2 waits
		e.mu.Unlock()
		e.setGitHubJob(activities.JobState{QueuedJob: activities.QueuedJob{ID: 1}, Status: "completed", Conclusion: "success",
			RunnerName: e.startedName(0)()})
		e.env.SignalWorkflow(SignalResync, ResyncRequest{Reason: "test"})
	})
	e.view(6*time.Second, &v)
	e.drain(time.Minute)
	e.run()
	require.NoError(t, cfgErr)
	assert.Equal(t, []int64{2}, queueIDs(v), "the job that ran left the queue")
	assert.Equal(t, 1, v.Counts.JobsDone, "and was counted at once")
}

// TestJobEventsThatComeAfterTheirRunnerEndedCount: a job of 100 ms ends
// and its runner's exit is seen before the job's in_progress and completed
// webhooks come: the job still counts, once, in the pool that named the
// runner.
func TestJobEventsThatComeAfterTheirRunnerEndedCount(t *testing.T) {
	e := newPoolEnv(t)
	e.env.SetDetachedChildWait(false)
	var cfgErr error
	var v PoolView
	e.configure(0, poolConfig(), &cfgErr)
	e.job(time.Second, JobQueued, 1, "")
	e.at(10*time.Second, func() {
		e.env.SignalWorkflow(SignalRunner, RunnerEvent{Name: e.startedName(0)(), State: RunnerDeleted})
	})
	e.at(11*time.Second, func() {
		e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobInProgress, JobID: 1, RunnerName: e.startedName(0)()})
		e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobCompleted, JobID: 1, RunnerName: e.startedName(0)(), Conclusion: "success"})
		e.env.SignalWorkflow(SignalJob, JobEvent{Action: JobCompleted, JobID: 1, RunnerName: e.startedName(0)(), Conclusion: "success"})
	})
	e.view(12*time.Second, &v)
	e.drain(time.Minute)
	e.run()
	require.NoError(t, cfgErr)
	assert.Equal(t, 1, v.Counts.JobsDone)
}
