package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
)

// usageStart is an hour's start, so that the stream below fills the 5-minute
// buckets 0-300 s, 300-600 s and 600-900 s of that hour.
var usageStart = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// newUsagePoolEnv is a poolEnv whose clock starts at usageStart, and that
// leaves the runners the tests end by signal.
func newUsagePoolEnv(t *testing.T) *poolEnv {
	e := newPoolEnv(t)
	e.env.SetStartTime(usageStart)
	e.env.SetDetachedChildWait(false)
	return e
}

// jobAt sends a job event at d with GitHub's times: queued at queued,
// started at started (when set), and conclusion.
func (e *poolEnv) jobAt(d time.Duration, ev JobEvent, queued, started time.Duration, runner func() string) {
	e.at(d, func() {
		q := usageStart.Add(queued)
		ev.CreatedAt, ev.Repository = &q, "octo/app"
		if started > 0 {
			s := usageStart.Add(started)
			ev.StartedAt = &s
		}
		if runner != nil {
			ev.RunnerName = runner()
		}
		if ev.Labels == nil {
			ev.Labels = []string{"self-hosted", "linux"}
		}
		e.sawOnGitHub(ev.Action, ev.JobID, ev.RunnerName, ev.Labels)
		if ev.Action == JobCompleted && ev.Conclusion != "" {
			e.mu.Lock()
			j := e.github[ev.JobID]
			j.Conclusion = ev.Conclusion
			e.github[ev.JobID] = j
			e.mu.Unlock()
		}
		e.env.SignalWorkflow(SignalJob, ev)
	})
}

func (e *poolEnv) usage(window string) RepositoryUsage {
	enc, err := e.env.QueryWorkflow(QueryUsage, UsageRequest{Window: window, Now: e.env.Now()})
	require.NoError(e.t, err)
	var u RepositoryUsage
	require.NoError(e.t, enc.Get(&u))
	return u
}

// sumBuckets adds up a ledger's buckets.
func sumBuckets(bs []UsageBucket) UsageBucket {
	var s UsageBucket
	for _, b := range bs {
		s.Add(b)
	}
	return s
}

// TestUsageFiguresMatchAKnownJobStream runs a stream of five jobs whose
// true figures are known: runners take 10 s to come online and 1 s to
// go; one job fails, one's completed webhook is lost (the reconciliation
// counts it), one's runner is lost mid-job, and one runner fails before
// it comes online. A runner-hour costs 3.6, a second 0.001.
//
//	job  queued  started  ended   runner          wait
//	1      60      75      135    A 60-136        15
//	2     200     230      290    B 200-291       30  (conclusion failure)
//	3     300     320     (380)   C 300-380       20  (completed webhook lost)
//	4     400     420      450    D 400-450 lost  20
//	5     600     640      700    E 600-601 fails, F 621-701   40
func TestUsageFiguresMatchAKnownJobStream(t *testing.T) {
	e := newUsagePoolEnv(t)
	e.slow = 10 * time.Second
	var cfgErr error
	e.configure(0, poolConfig(func(c *PoolConfig) { c.MaxRunners = 2; c.HourlyPrice = 3.6 }), &cfgErr)
	s := time.Second
	e.jobAt(60*s, JobEvent{Action: JobQueued, JobID: 1}, 60*s, 0, nil)
	e.jobAt(75*s, JobEvent{Action: JobInProgress, JobID: 1}, 60*s, 75*s, e.startedName(0))
	e.jobAt(135*s, JobEvent{Action: JobCompleted, JobID: 1, Conclusion: "success"}, 60*s, 75*s, e.startedName(0))
	e.jobAt(200*s, JobEvent{Action: JobQueued, JobID: 2}, 200*s, 0, nil)
	e.jobAt(230*s, JobEvent{Action: JobInProgress, JobID: 2}, 200*s, 230*s, e.startedName(1))
	e.jobAt(290*s, JobEvent{Action: JobCompleted, JobID: 2, Conclusion: "failure"}, 200*s, 230*s, e.startedName(1))
	e.jobAt(300*s, JobEvent{Action: JobQueued, JobID: 3}, 300*s, 0, nil)
	e.jobAt(320*s, JobEvent{Action: JobInProgress, JobID: 3}, 300*s, 320*s, e.startedName(2))
	e.lose(380*s, 3, e.startedName(2))
	e.jobAt(400*s, JobEvent{Action: JobQueued, JobID: 4}, 400*s, 0, nil)
	e.jobAt(420*s, JobEvent{Action: JobInProgress, JobID: 4}, 400*s, 420*s, e.startedName(3))
	e.at(450*s, func() {
		e.env.SignalWorkflow(SignalRunner, RunnerEvent{Name: e.startedName(3)(), State: RunnerFailed, Error: "instance vanished"})
	})
	e.jobAt(460*s, JobEvent{Action: JobCompleted, JobID: 4, Conclusion: "failure"}, 400*s, 420*s, e.startedName(3))
	e.at(599*s, func() { e.failNext = 1 })
	e.jobAt(600*s, JobEvent{Action: JobQueued, JobID: 5}, 600*s, 0, nil)
	e.jobAt(640*s, JobEvent{Action: JobInProgress, JobID: 5}, 600*s, 640*s, e.startedName(5))
	e.jobAt(700*s, JobEvent{Action: JobCompleted, JobID: 5, Conclusion: "success"}, 600*s, 640*s, e.startedName(5))

	got := map[string]RepositoryUsage{}
	var view PoolView
	e.at(800*s, func() {
		for _, w := range []string{"1h", "24h", "7d"} {
			got[w] = e.usage(w)
		}
		view, _ = e.query().Pool(DefaultPool)
	})
	e.drain(900 * s)
	e.run()
	require.NoError(t, cfgErr)

	u := got["1h"]
	require.Len(t, u.Pools, 1)
	assert.Equal(t, "lab-1", u.Pools[0].Agent)
	bs := u.Pools[0].Buckets
	require.Len(t, bs, 13, "12 five-minute buckets and the one under way")
	assert.Equal(t, usageStart.Add(-50*time.Minute).Unix(), bs[0].Start)
	first, second, third := bs[10], bs[11], bs[12]
	assert.Equal(t, usageStart.Unix(), first.Start)
	assert.Equal(t, UsageCounts{Served: 2, Failed: 1, BusyMs: 120_000, IdleMs: 27_000, BootingMs: 20_000,
		UsefulCost: 0.120, WasteCost: 0.047}, roundCosts(first.UsageCounts))
	assert.Equal(t, UsageCounts{Served: 1, Lost: 1, BusyMs: 90_000, IdleMs: 20_000, BootingMs: 20_000,
		UsefulCost: 0.090, WasteCost: 0.040}, roundCosts(second.UsageCounts), "job 3 counted by the reconciliation, job 4 lost and not served")
	assert.Equal(t, UsageCounts{Served: 1, BootstrapFailures: 1, BusyMs: 60_000, IdleMs: 10_000, BootingMs: 11_000,
		UsefulCost: 0.060, WasteCost: 0.021}, roundCosts(third.UsageCounts))

	total := sumBuckets(bs)
	assert.Equal(t, UsageCounts{Served: 4, Failed: 1, Lost: 1, BootstrapFailures: 1, BusyMs: 270_000, IdleMs: 57_000,
		BootingMs: 51_000, UsefulCost: 0.270, WasteCost: 0.108}, roundCosts(total.UsageCounts))
	assert.Equal(t, 5, total.Waits.Count)
	assert.InEpsilon(t, 20, total.Waits.Quantile(0.5), WaitAccuracy, "p50 of 15, 20, 20, 30, 40")
	assert.InEpsilon(t, 30, total.Waits.Quantile(0.95), WaitAccuracy, "p95: rank 0.95·4 is the 4th")
	assert.Equal(t, 40.0, total.Waits.Max, "the maximum is exact")

	for _, w := range []string{"24h", "7d"} {
		all := sumBuckets(got[w].Pools[0].Buckets)
		assert.Equal(t, roundCosts(total.UsageCounts), roundCosts(all.UsageCounts), "window %s", w)
		assert.Equal(t, 40.0, all.Waits.Max, "window %s", w)
	}
	assert.Len(t, got["24h"].Pools[0].Buckets, 25)
	assert.Len(t, got["7d"].Pools[0].Buckets, 29)

	require.NotNil(t, view.Usage, "the pool's totals")
	assert.Equal(t, roundCosts(total.UsageCounts), roundCosts(view.Usage.UsageCounts))
	assert.Equal(t, 5, view.Usage.WaitCount)
	assert.Equal(t, 125.0, view.Usage.WaitSeconds)
	assert.Equal(t, []int{0, 0, 0, 4, 1, 0, 0, 0, 0, 0}, view.Usage.WaitBuckets, "15, 20, 20 and 30 s within 30 s; 40 within 60")
	assert.Equal(t, 5, view.Counts.JobsDone, "jobsDone counts every end, the lost job's too, as it always has")
}

// roundCosts rounds the costs to a thousandth, as the sums of floats
// differ in the last bits.
func roundCosts(c UsageCounts) UsageCounts {
	r := func(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }
	c.UsefulCost, c.WasteCost = r(c.UsefulCost), r(c.WasteCost)
	return c
}

// TestUsageGoesAcrossContinueAsNew: a run that continues as new carries
// its usage, and the next run answers it.
func TestUsageGoesAcrossContinueAsNew(t *testing.T) {
	e := newUsagePoolEnv(t)
	var cfgErr error
	e.configure(0, poolConfig(func(c *PoolConfig) { c.HourlyPrice = 1 }), &cfgErr)
	s := time.Second
	e.jobAt(10*s, JobEvent{Action: JobQueued, JobID: 1}, 10*s, 0, nil)
	e.jobAt(20*s, JobEvent{Action: JobInProgress, JobID: 1}, 10*s, 20*s, e.startedName(0))
	e.jobAt(80*s, JobEvent{Action: JobCompleted, JobID: 1}, 10*s, 20*s, e.startedName(0))
	e.at(2*time.Minute, func() { e.env.SetContinueAsNewSuggested(true) })
	e.env.ExecuteWorkflow(RepositoryWorkflowName, RepositoryInput{Owner: "octo", Repo: "app"})
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(e.env.GetWorkflowError(), &can), "got %v", e.env.GetWorkflowError())
	require.NoError(t, cfgErr)
	var next RepositoryInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.Len(t, next.Repository.Usage, 1)
	assert.Equal(t, 1, next.Repository.Pools[0].UsageTotals.Served)

	e2 := newPoolEnv(t)
	e2.env.SetStartTime(usageStart.Add(5 * time.Minute))
	var u RepositoryUsage
	e2.at(time.Second, func() { u = e2.usage("1h") })
	e2.drain(time.Minute)
	e2.runWith(next)
	require.Len(t, u.Pools, 1)
	all := sumBuckets(u.Pools[0].Buckets)
	assert.Equal(t, 1, all.Served, "the job of the run before")
	assert.Equal(t, int64(60_000), all.BusyMs)
	assert.Equal(t, 10.0, all.Waits.Max)
}

// TestWaitHistogramQuantilesAreWithinTheirAccuracy: for waits of 1 to 1000
// s, each quantile is within WaitAccuracy of the true one, of a merge as
// of the whole; waits under a millisecond count as none.
func TestWaitHistogramQuantilesAreWithinTheirAccuracy(t *testing.T) {
	var a, b, whole WaitHistogram
	assert.Zero(t, a.Quantile(0.5), "no waits: 0")
	for i := 1; i <= 1000; i++ {
		half := &a
		if i%2 == 0 {
			half = &b
		}
		half.Add(float64(i))
		whole.Add(float64(i))
	}
	a.Merge(b)
	assert.Equal(t, whole, a, "a merge is the sketch of the whole")
	for _, q := range []float64{0, 0.5, 0.95, 0.99, 1} {
		want := float64(int(q*999) + 1) // rank q·(n−1) of 1..1000
		assert.InEpsilon(t, want, a.Quantile(q), WaitAccuracy+1e-9, "q=%v", q)
	}
	assert.Equal(t, 1000.0, a.Max)
	assert.LessOrEqual(t, a.Quantile(1), a.Max, "never above the exact maximum")
	assert.LessOrEqual(t, len(a.Bins), 80, "one bin per 10 %% band: %d", len(a.Bins))

	var z WaitHistogram
	z.Add(0)
	z.Add(-3) // clocks apart: none
	z.Add(2)
	assert.Equal(t, 2, z.Zero)
	assert.Zero(t, z.Quantile(0.5))
	assert.InEpsilon(t, 2, z.Quantile(1), WaitAccuracy)
}

// TestUsageCountsRunnerTimeFromGitHubWhenWebhooksAreMissed: job 1's
// in_progress webhook is missed (its completed one comes), job 2's both
// are, and its runner has ended before the reconciliation learns how the
// job went. Each runner is busy, as GitHub says, from its job's start to
// its end, not idle; each wait is GitHub's.
//
//	job  queued  started  ended   runner                 wait
//	1       5       20      80    A 5-81 (online at 15)   15
//	2     100      120     180    B 100-181 (online 110)  20
//
// Job 2, still queued as far as the pool knows when B ends, has it start
// runner C at 181 (online at 191, idle until the query at 300): waste.
// Idle: A 15-20 and 80-81 (deleting), B 110-181 but for the job's 60 s,
// C 191-300.
func TestUsageCountsRunnerTimeFromGitHubWhenWebhooksAreMissed(t *testing.T) {
	e := newUsagePoolEnv(t)
	e.slow = 10 * time.Second
	var cfgErr error
	e.configure(0, poolConfig(func(c *PoolConfig) { c.HourlyPrice = 3.6 }), &cfgErr)
	s := time.Second
	e.jobAt(5*s, JobEvent{Action: JobQueued, JobID: 1}, 5*s, 0, nil)
	end := usageStart.Add(80 * s)
	e.jobAt(80*s, JobEvent{Action: JobCompleted, JobID: 1, Conclusion: "success", CompletedAt: &end}, 5*s, 20*s, e.startedName(0))
	e.jobAt(100*s, JobEvent{Action: JobQueued, JobID: 2}, 100*s, 0, nil)
	e.at(181*s, func() {
		st, end, created := usageStart.Add(120*s), usageStart.Add(180*s), usageStart.Add(100*s)
		name := e.startedName(1)()
		e.mu.Lock()
		e.queued = nil
		e.github[2] = activities.JobState{QueuedJob: activities.QueuedJob{ID: 2, Labels: []string{"self-hosted", "linux"}, CreatedAt: created},
			Status: "completed", Conclusion: "success", RunnerName: name, StartedAt: &st, CompletedAt: &end}
		e.mu.Unlock()
		e.env.SignalWorkflow(SignalRunner, RunnerEvent{Name: name, State: RunnerDeleted})
	})
	var u RepositoryUsage
	e.at(5*time.Minute, func() { u = e.usage("1h") })
	e.drain(6 * time.Minute)
	e.run()
	require.NoError(t, cfgErr)
	require.Len(t, u.Pools, 1)
	all := sumBuckets(u.Pools[0].Buckets)
	assert.Equal(t, UsageCounts{Served: 2, BusyMs: 120_000, IdleMs: (6 + 11 + 109) * 1000, BootingMs: 30_000,
		UsefulCost: 0.12, WasteCost: 0.156}, roundCosts(all.UsageCounts))
	assert.Equal(t, 2, all.Waits.Count)
	assert.Equal(t, 20.0, all.Waits.Max)
	assert.InEpsilon(t, 15, all.Waits.Quantile(0), WaitAccuracy)
}

// TestAUsageLedgerStaysWithinItsLimits fills a ledger for 8 days: a job a
// minute with waits from 1 ms to a week (the worst case for its
// histograms), and runners always busy. It keeps 67 buckets, each with at
// most 204 wait bins (one per 10 % band from 1 ms to 7 days), whatever the
// time; its size in the state is logged for docs/architecture.md.
func TestAUsageLedgerStaysWithinItsLimits(t *testing.T) {
	worst, usual := UsageLedger{Pool: "default", Agent: "lab-1"}, UsageLedger{Pool: "default", Agent: "lab-1"}
	start := usageStart
	var at time.Time
	for i := range 8 * 24 * 60 {
		at = start.Add(time.Duration(i) * time.Minute)
		wait := math.Pow(10, -3+float64(i%401)*(math.Log10(maxWait)+3)/400) // 1 ms to 7 d
		worst.add(at, func(b *UsageBucket) { b.Served++; b.Waits.Add(wait) })
		worst.addTime(at.Add(-time.Minute), at, timeBusy, 1)
		usual.add(at, func(b *UsageBucket) { b.Served++; b.Waits.Add(float64(5 + i%120)) })
		usual.addTime(at.Add(-time.Minute), at, timeBusy, 1)
		if i%60 == 0 {
			worst.prune(at)
			usual.prune(at)
		}
	}
	worst.prune(at)
	usual.prune(at)
	limit := waitMapping.Index(maxWait) - waitMapping.Index(minWait) + 1
	assert.Equal(t, 204, limit, "the bound usage.go documents")
	n, bins := 0, 0
	for _, s := range worst.Series {
		n += len(s)
		for _, b := range s {
			assert.LessOrEqual(t, len(b.Waits.Bins), limit)
			bins = max(bins, len(b.Waits.Bins))
		}
	}
	assert.Equal(t, 13+25+29, n, "buckets kept")
	w, err := json.Marshal(worst)
	require.NoError(t, err)
	u, err := json.Marshal(usual)
	require.NoError(t, err)
	t.Logf("a ledger full for a week: %d bytes in the worst case (at most %d bins a bucket), %d with waits of 5 s to 2 min",
		len(w), bins, len(u))
	assert.Less(t, len(w), 160_000)
	assert.Less(t, len(u), 40_000)
}

// TestARepositoryCarriesAtMostAMebibyteOfUsage: 30 ledgers with waits in
// every band are over 1 MiB; those idle longest are dropped until the rest
// fits, so the next run's input stays under Temporal's payload limit.
func TestARepositoryCarriesAtMostAMebibyteOfUsage(t *testing.T) {
	r := &repository{log: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))}
	for p := range 30 {
		l := UsageLedger{Pool: fmt.Sprintf("pool-%d", p), Agent: "lab-1"}
		for i := range 7 * 24 * 60 {
			at := usageStart.Add(time.Duration(i) * time.Minute)
			wait := math.Pow(10, -3+float64(i%401)*(math.Log10(maxWait)+3)/400)
			l.add(at, func(b *UsageBucket) { b.Waits.Add(wait) })
		}
		l.Last -= int64(p) // pool-29 idle longest
		r.s.Usage = append(r.s.Usage, l)
	}
	before, err := json.Marshal(r.s.Usage)
	require.NoError(t, err)
	require.Greater(t, len(before), maxUsageBytes)
	r.boundUsage()
	after, err := json.Marshal(r.s.Usage)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(after), maxUsageBytes)
	assert.Less(t, len(r.s.Usage), 30)
	assert.Equal(t, "pool-0", r.s.Usage[0].Pool, "the ledgers used last are kept")
	assert.Equal(t, fmt.Sprintf("pool-%d", len(r.s.Usage)-1), r.s.Usage[len(r.s.Usage)-1].Pool)
}

// TestARunnerFromBeforeUsageIsCountedFromTheRunsStart: a run that goes on
// from a state without usage (its warm runner has no Since) counts that
// runner's idle time from its own start.
func TestARunnerFromBeforeUsageIsCountedFromTheRunsStart(t *testing.T) {
	e := newUsagePoolEnv(t)
	since := usageStart.Add(-time.Hour)
	cfg := poolConfig(func(c *PoolConfig) { c.MinIdle = 1; c.HourlyPrice = 3.6 })
	st := RepositoryState{Configured: true, Prefix: "abc123", Seq: 1, Pools: []PoolState{{Name: DefaultPool, Config: cfg,
		Runners: []RunnerRecord{{Name: "garo-abc123-1", State: RunnerIdle, RunnerID: 7, CreatedAt: since, IdleSince: &since}}}}}
	var u RepositoryUsage
	e.at(time.Minute, func() { u = e.usage("1h") })
	e.drain(2 * time.Minute)
	e.at(2*time.Minute+time.Second, func() {
		e.env.SignalWorkflow(SignalRunner, RunnerEvent{Name: "garo-abc123-1", State: RunnerDeleted})
	})
	e.runWith(RepositoryInput{Owner: "octo", Repo: "app", Repository: &st})
	require.Len(t, u.Pools, 1)
	all := sumBuckets(u.Pools[0].Buckets)
	assert.Equal(t, int64(60_000), all.IdleMs, "idle from the run's start, not before")
	assert.InDelta(t, 0.06, all.WasteCost, 1e-9)
}
