package workflows

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// A repository keeps the usage of its pools as small rolling aggregates in
// its own state (RepositoryState.Usage), carried across continue-as-new:
// one UsageLedger per pool and agent, each a series of buckets per usage
// window. Its limits:
//   - a ledger holds at most 13 + 25 + 29 = 67 buckets (UsageWindows);
//   - a bucket's queue-wait histogram has at most one bin per 10 % band of
//     waits between 1 ms and 7 days: 204 bins, and in practice a few
//     dozen (a ledger full for a week is 18 KB of JSON for waits of 5 s to
//     2 min, 54 KB for waits spread from 1 ms to a week);
//   - a repository keeps at most MaxUsageLedgers ledgers; that of the
//     pool and agent idle longest goes first, as does one with nothing
//     left in its longest window;
//   - and it carries at most 1 MiB of them into its next run
//     (maxUsageBytes), the ledgers idle longest dropped first.

// QueryUsage answers a repository's usage (UsageRequest → RepositoryUsage).
const QueryUsage = "usage"

// MaxUsageLedgers bounds the usage ledgers of one repository: twice
// MaxPools, so that a pool that changes agent keeps the old agent's week.
const MaxUsageLedgers = 2 * MaxPools

// UsageWindow is one span over which usage is shown: its buckets are Step
// long, and the window covers the last Length plus the bucket under way.
type UsageWindow struct {
	Name   string        `json:"name"`
	Length time.Duration `json:"-"`
	Step   time.Duration `json:"-"`
}

// From is where the window ends at now begins: the start of its first
// bucket, Length and up to a Step before now.
func (w UsageWindow) From(now time.Time) time.Time { return now.Add(-w.Length).Truncate(w.Step) }

// buckets is how many buckets the window keeps: Length/Step and the one
// under way.
func (w UsageWindow) buckets() int { return int(w.Length/w.Step) + 1 }

// usageWindows are the windows, in the order of a ledger's series.
var usageWindows = []UsageWindow{
	{Name: "1h", Length: time.Hour, Step: 5 * time.Minute},
	{Name: "24h", Length: 24 * time.Hour, Step: time.Hour},
	{Name: "7d", Length: 7 * 24 * time.Hour, Step: 6 * time.Hour},
}

// UsageWindows lists the windows usage is kept for.
func UsageWindows() []UsageWindow { return slices.Clone(usageWindows) }

// ParseUsageWindow returns the window called name: "1h", "24h" or "7d".
func ParseUsageWindow(name string) (UsageWindow, error) {
	for _, w := range usageWindows {
		if w.Name == name {
			return w, nil
		}
	}
	return UsageWindow{}, fmt.Errorf("invalid window %q: want 1h, 24h or 7d", name)
}

func windowIndex(name string) int {
	return slices.IndexFunc(usageWindows, func(w UsageWindow) bool { return w.Name == name })
}

// UsageCounts are the figures of a span of time that add up: jobs by how
// they ended, runner time by state (milliseconds) and its cost.
type UsageCounts struct {
	// Served are the jobs that ran to their end on a runner of the pool,
	// whatever their conclusion; Failed those of them that did not
	// succeed (failure, timed_out, cancelled, ...); Lost the jobs whose
	// runner was lost while it ran them (not among Served).
	Served int `json:"served,omitempty"`
	Failed int `json:"failed,omitempty"`
	Lost   int `json:"lost,omitempty"`
	// BootstrapFailures are the runners that failed before they came
	// online.
	BootstrapFailures int `json:"bootstrapFailures,omitempty"`
	// BusyMs is runner time running a job; IdleMs online without one
	// (and being deleted); BootingMs from a runner's start until it is
	// online.
	BusyMs    int64 `json:"busyMs,omitempty"`
	IdleMs    int64 `json:"idleMs,omitempty"`
	BootingMs int64 `json:"bootingMs,omitempty"`
	// UsefulCost is the price of the busy time, WasteCost of the rest, at
	// the pool's hourlyPrice when the time was spent.
	UsefulCost float64 `json:"usefulCost,omitempty"`
	WasteCost  float64 `json:"wasteCost,omitempty"`
}

// addTime counts ms of runner time of kind k, and its cost at price an
// hour: busy time is useful, the rest waste.
func (c *UsageCounts) addTime(ms int64, k runnerTime, price float64) {
	cost := float64(ms) * price / float64(time.Hour.Milliseconds())
	switch k {
	case timeBusy:
		c.BusyMs += ms
		c.UsefulCost += cost
	case timeIdle:
		c.IdleMs += ms
		c.WasteCost += cost
	default:
		c.BootingMs += ms
		c.WasteCost += cost
	}
}

// toBusy moves up to ms of idle time, then of booting time, to busy,
// with its cost.
func (c *UsageCounts) toBusy(ms int64, price float64) {
	idle := min(ms, c.IdleMs)
	booting := min(ms-idle, c.BootingMs)
	c.addTime(-idle, timeIdle, price)
	c.addTime(-booting, timeBooting, price)
	c.addTime(idle+booting, timeBusy, price)
}

// Add adds o to c.
func (c *UsageCounts) Add(o UsageCounts) {
	c.Served += o.Served
	c.Failed += o.Failed
	c.Lost += o.Lost
	c.BootstrapFailures += o.BootstrapFailures
	c.BusyMs += o.BusyMs
	c.IdleMs += o.IdleMs
	c.BootingMs += o.BootingMs
	c.UsefulCost += o.UsefulCost
	c.WasteCost += o.WasteCost
}

// UsageBucket is the usage of one bucket of time: the Step of its window
// from Start (Unix seconds).
type UsageBucket struct {
	Start int64 `json:"t"`
	UsageCounts
	Waits WaitHistogram `json:"waits,omitzero"`
}

// Add adds o's figures to b.
func (b *UsageBucket) Add(o UsageBucket) {
	b.UsageCounts.Add(o.UsageCounts)
	b.Waits.Merge(o.Waits)
}

// UsageLedger is the usage of one pool while one agent served it.
type UsageLedger struct {
	Pool  string `json:"pool"`
	Agent string `json:"agent"`
	// Series has one list of buckets per usage window, in the order of
	// UsageWindows, each oldest first, only buckets with something in.
	Series [][]UsageBucket `json:"series"`
	// Last is when something was last added (Unix seconds).
	Last int64 `json:"last"`
}

// runnerTime is what a runner's time is counted as.
type runnerTime int

const (
	timeBooting runnerTime = iota
	timeIdle
	timeBusy
)

// timeOf is what time in state s counts as: deleting is idle, waste.
func timeOf(s RunnerState) runnerTime {
	switch s {
	case RunnerProvisioning:
		return timeBooting
	case RunnerBusy:
		return timeBusy
	default:
		return timeIdle
	}
}

// add applies f to the bucket of each window that holds t.
func (l *UsageLedger) add(t time.Time, f func(*UsageBucket)) {
	for i, w := range usageWindows {
		f(l.bucket(i, t.Truncate(w.Step).Unix()))
	}
	l.Last = max(l.Last, t.Unix())
}

// bucket finds, or makes, the bucket of series i that starts at start.
func (l *UsageLedger) bucket(i int, start int64) *UsageBucket {
	for len(l.Series) < len(usageWindows) {
		l.Series = append(l.Series, nil)
	}
	s := l.Series[i]
	j, found := slices.BinarySearchFunc(s, start, func(b UsageBucket, t int64) int { return cmp.Compare(b.Start, t) })
	if !found {
		s = slices.Insert(s, j, UsageBucket{Start: start})
		l.Series[i] = s
	}
	return &l.Series[i][j]
}

// addTime counts runner time of kind k from from to to, split across
// buckets, and its cost at price an hour.
func (l *UsageLedger) addTime(from, to time.Time, k runnerTime, price float64) {
	l.span(from, to, func(b *UsageBucket, ms int64) { b.addTime(ms, k, price) })
}

// toBusy counts as busy the idle (or booting) time from from to to: a
// runner that ran a job while both its webhooks were missed was counted
// idle.
func (l *UsageLedger) toBusy(from, to time.Time, price float64) {
	l.span(from, to, func(b *UsageBucket, ms int64) { b.UsageCounts.toBusy(ms, price) })
}

// span applies f to each bucket of each window that from to to overlaps,
// with the milliseconds of the overlap.
func (l *UsageLedger) span(from, to time.Time, f func(*UsageBucket, int64)) {
	if !to.After(from) {
		return
	}
	for i, w := range usageWindows {
		start := max(from.UnixMilli(), to.Add(-w.Length-w.Step).UnixMilli())
		end, step := to.UnixMilli(), w.Step.Milliseconds()
		for b := start - start%step; b < end; b += step {
			if ms := min(end, b+step) - max(start, b); ms > 0 {
				f(l.bucket(i, b/1000), ms)
			}
		}
	}
	l.Last = max(l.Last, to.Unix())
}

// prune drops the buckets that have left their window at now; it reports
// whether the ledger is empty then.
func (l *UsageLedger) prune(now time.Time) bool {
	empty := true
	for i := range l.Series {
		w := usageWindows[i]
		oldest := w.From(now).Unix()
		s := l.Series[i]
		n := 0
		for n < len(s) && s[n].Start < oldest {
			n++
		}
		l.Series[i] = slices.Delete(s, 0, n)
		if len(l.Series[i]) > 0 {
			empty = false
		}
	}
	return empty
}

// window is the ledger's usage over window w at now: one bucket per step,
// oldest first, empty ones included.
func (l UsageLedger) window(w int, now time.Time) []UsageBucket {
	win := usageWindows[w]
	first := win.From(now)
	out := make([]UsageBucket, 0, win.buckets())
	for t := first; !t.After(now); t = t.Add(win.Step) {
		out = append(out, UsageBucket{Start: t.Unix()})
	}
	if w < len(l.Series) {
		for _, b := range l.Series[w] {
			if i := int((b.Start - first.Unix()) / int64(win.Step.Seconds())); b.Start >= first.Unix() && i < len(out) {
				out[i].Add(b)
			}
		}
	}
	return out
}

// clone is a deep copy of the ledger.
func (l UsageLedger) clone() UsageLedger {
	c := l
	c.Series = make([][]UsageBucket, len(l.Series))
	for i, s := range l.Series {
		c.Series[i] = make([]UsageBucket, len(s))
		for j, b := range s {
			b.Waits.Bins = slices.Clone(b.Waits.Bins)
			c.Series[i][j] = b
		}
	}
	return c
}

// UsageRequest asks a repository for its usage over Window ("1h", "24h"
// or "7d") as at Now: the caller's clock, since a quiet workflow's own
// time is that of its last task.
type UsageRequest struct {
	Window string    `json:"window"`
	Now    time.Time `json:"now"`
}

// RepositoryUsage is a repository's usage over a window: one entry per
// pool and agent, each with the window's buckets.
type RepositoryUsage struct {
	Repository string        `json:"repository"`
	Window     string        `json:"window"`
	From       time.Time     `json:"from"`
	To         time.Time     `json:"to"`
	Pools      []LedgerUsage `json:"pools"`
}

// LedgerUsage is a pool's usage while one agent served it, over a window.
type LedgerUsage struct {
	Pool    string        `json:"pool"`
	Agent   string        `json:"agent"`
	Buckets []UsageBucket `json:"buckets"`
}

// UsageTotals are a pool's figures since it was configured: what the
// Prometheus metrics export (as counters). At is when they were taken.
type UsageTotals struct {
	UsageCounts
	// WaitBuckets count the queue waits at or under each of
	// WaitBucketBounds (not cumulative); WaitCount and WaitSeconds all of
	// them.
	WaitBuckets []int     `json:"waitBuckets,omitempty"`
	WaitCount   int       `json:"waitCount,omitempty"`
	WaitSeconds float64   `json:"waitSeconds,omitempty"`
	At          time.Time `json:"at,omitzero"`
	// Price is what a runner-hour of the pool costs at At.
	Price float64 `json:"price,omitempty"`
}

// WaitBucketBounds are the upper bounds, in seconds, of the queue-wait
// histogram that UsageTotals keep.
var WaitBucketBounds = []float64{1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// addWait counts one queue wait.
func (t *UsageTotals) addWait(seconds float64) {
	if len(t.WaitBuckets) != len(WaitBucketBounds) {
		t.WaitBuckets = make([]int, len(WaitBucketBounds))
	}
	for i, b := range WaitBucketBounds {
		if seconds <= b {
			t.WaitBuckets[i]++
			break
		}
	}
	t.WaitCount++
	t.WaitSeconds += seconds
}
