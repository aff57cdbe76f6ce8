package workflows

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/activities"
)

// TestARerunAskedBeforeTheRunContinuesIsCarriedOut: a lost job fails and
// the pool asks GitHub to run it again; the run continues as new before
// the answer comes (the command may even be in the task that continues
// as new, and dropped with it). The re-run is an intent, carried until
// confirmed: the next run asks again, and it runs once (B1).
func TestARerunAskedBeforeTheRunContinuesIsCarriedOut(t *testing.T) {
	s := manualSim(t)
	s.rerunTakes = time.Minute
	var err error
	s.configure(0, simConfig(func(c *PoolConfig) { c.MaxRunners, c.RetryLostJobs = 2, true }), &err)
	s.send(time.Second, s.ev(JobQueued, 1, -1))
	s.send(10*time.Second, s.ev(JobInProgress, 1, 0))
	s.ended(20*time.Second, 0, activities.OutcomeExited, 137)
	s.at(25*time.Second, func() {
		failed := s.ev(JobCompleted, 1, 0)()
		failed.Conclusion, failed.Routed = "failure", true
		s.env.SignalWorkflow(SignalIntake, IntakeBatch{Jobs: []JobEvent{failed}})
	})
	s.continueAt(30 * time.Second)
	s.drain(5 * time.Minute)
	s.run()
	require.NoError(t, err)
	require.NotEmpty(t, s.continued)
	carried := s.continued[0].Carried
	assert.Equal(t, []int64{1}, carried.Reruns, "the re-run not yet confirmed is carried, as an intent")
	assert.Equal(t, []int64{1}, carried.Retried)
	assert.Equal(t, []int64{1}, s.reruns, "run by the next run, once")
}

// TestTheRedeliveryWindowOutlivesAFailedLookAndTheRun: a resync asks for
// the webhooks that failed since a time; the look fails, and the run
// continues as new: the next look still asks for them, and once done,
// none after it (B4).
func TestTheRedeliveryWindowOutlivesAFailedLookAndTheRun(t *testing.T) {
	s := manualSim(t)
	var asked []*time.Time
	s.github = func(in activities.ReconcileInput) activities.Reconciliation {
		if !in.RunnersOnly {
			asked = append(asked, in.RedeliverSince)
		}
		return activities.Reconciliation{}
	}
	s.reconcileErr = func() error {
		if s.env.Now().Before(s.epoch.Add(90 * time.Second)) {
			return errors.New("GitHub unavailable")
		}
		return nil
	}
	var err error
	s.configure(0, simConfig(), &err)
	since := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	s.at(time.Minute, func() {
		s.env.SignalWorkflow(SignalResync, ResyncRequest{Reason: "a webhook was refused", FailedSince: &since})
	})
	s.continueAt(70 * time.Second)
	s.at(3*time.Minute, func() { s.env.SignalWorkflow(SignalResync, ResyncRequest{Reason: "again"}) })
	s.at(5*time.Minute, func() { s.env.SignalWorkflow(SignalResync, ResyncRequest{Reason: "and again"}) })
	s.drain(6 * time.Minute)
	s.run()
	require.NoError(t, err)
	require.NotEmpty(t, s.continued)
	require.NotNil(t, s.continued[0].Carried.RedeliverSince, "carried into the next run")
	var redelivered int
	for _, a := range asked {
		if a != nil {
			assert.Equal(t, since, *a)
			redelivered++
		}
	}
	assert.Positive(t, redelivered, "a look after the failed ones asked for the redelivery")
	assert.Nil(t, asked[len(asked)-1], "once it succeeded, no more")
}
