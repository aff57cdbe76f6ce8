package workflows

import (
	"cmp"
	"encoding/json"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"
)

// The usage of a repository's pools (usage.go) is counted as things
// happen: a runner's time when it changes state (RunnerRecord.Since), a
// queue wait when GitHub reports its job in progress on a runner of the
// pool, a job's end when its completed event (or a reconciliation) says
// so. It changes no command, so running workflows replay as they did.

// ledgerOf is the index in ls of the ledger of pool under agent, or -1.
func ledgerOf(ls []UsageLedger, pool, agent string) int {
	return slices.IndexFunc(ls, func(l UsageLedger) bool { return l.Pool == pool && l.Agent == agent })
}

// ledger is the usage ledger of pool p under its agent now.
func (p *pool) ledger() *UsageLedger {
	s := &p.r.s
	if i := ledgerOf(s.Usage, p.s.Name, p.s.Config.Agent); i >= 0 {
		return &s.Usage[i]
	}
	if len(s.Usage) >= MaxUsageLedgers {
		i := idlestLedger(s.Usage)
		s.Usage = slices.Delete(s.Usage, i, i+1)
	}
	s.Usage = append(s.Usage, UsageLedger{Pool: p.s.Name, Agent: p.s.Config.Agent})
	return &s.Usage[len(s.Usage)-1]
}

// accrue counts a runner's time in its state up to now: call it before
// the state changes. A time before the runner's Since counts nothing.
func (p *pool) accrue(rec *RunnerRecord, now time.Time) {
	if !now.After(rec.Since) {
		return
	}
	k, price := timeOf(rec.State), p.price()
	p.ledger().addTime(rec.Since, now, k, price)
	p.s.UsageTotals.addTime(now.Sub(rec.Since).Milliseconds(), k, price)
	rec.Since = now
}

// lateEvent is how late an event must come for its runner's time to
// count from when GitHub says it happened: GitHub's times are to the
// second, so an event on time counts from its arrival.
const lateEvent = 5 * time.Second

// eventTime is when an event of runner rec happened: now, or when GitHub
// says (at) if the event comes late (its webhook was missed, and a
// reconciliation found it), within the runner's time in its state.
func (p *pool) eventTime(ctx workflow.Context, rec *RunnerRecord, at *time.Time) time.Time {
	now := workflow.Now(ctx)
	if at == nil || now.Sub(*at) < lateEvent {
		return now
	}
	if at.Before(rec.Since) {
		return rec.Since
	}
	return *at
}

// price is what a runner-hour of the pool costs: its hourlyPrice, or the
// server's price list's.
func (p *pool) price() float64 {
	if p.s.Config.HourlyPrice > 0 {
		return p.s.Config.HourlyPrice
	}
	return p.s.ListPrice
}

// accrueAll counts the time of every runner up to now: before the pool's
// agent or price changes.
func (p *pool) accrueAll(now time.Time) {
	for i := range p.s.Runners {
		p.accrue(&p.s.Runners[i], now)
	}
}

// countWait counts the queue wait of a job that started on one of the
// pool's runners: from when it was queued to when it started (GitHub's
// times when the event has them).
func (p *pool) countWait(now time.Time, queuedAt time.Time, ev JobEvent) {
	if queuedAt.IsZero() && ev.CreatedAt != nil {
		queuedAt = *ev.CreatedAt
	}
	if queuedAt.IsZero() {
		return
	}
	started := now
	if ev.StartedAt != nil {
		started = *ev.StartedAt
	}
	wait := max(0, started.Sub(queuedAt).Seconds())
	p.ledger().add(now, func(b *UsageBucket) { b.Waits.Add(wait) })
	p.s.UsageTotals.addWait(wait)
}

// countEnd counts a job that ended (ev is its completed event) on one of
// the pool's runners (rec, nil when it has gone): in jobsDone always; in
// the usage as served, unless its runner was lost while it ran (counted
// then), with its queue wait and its runner's busy time if its start was
// missed.
func (p *pool) countEnd(ctx workflow.Context, rec *RunnerRecord, ev JobEvent) {
	p.s.JobsDone++
	if p.r.seen[jobKey(ev.JobID, jobLost)] {
		return
	}
	now := workflow.Now(ctx)
	p.missedStart(ctx, rec, ev)
	if !p.r.seen[jobKey(ev.JobID, JobInProgress)] && ev.StartedAt != nil {
		p.countWait(now, time.Time{}, ev)
	}
	failed := 0
	if !succeeded(ev.Conclusion) {
		failed = 1
	}
	p.ledger().add(now, func(b *UsageBucket) { b.Served++; b.Failed += failed })
	p.s.UsageTotals.Served++
	p.s.UsageTotals.Failed += failed
}

// jobLost marks, in the dedupe window, a job whose runner was lost while
// it ran: its end is not counted as served.
const jobLost = "lost"

// missedStart corrects the runner time of a job that ended on one of the
// pool's runners while its in_progress webhook was missed: the runner,
// counted idle (or booting), was busy from when GitHub says the job
// started to when it ended. rec is the runner, nil when it has gone.
func (p *pool) missedStart(ctx workflow.Context, rec *RunnerRecord, ev JobEvent) {
	if p.r.seen[jobKey(ev.JobID, JobInProgress)] || ev.StartedAt == nil {
		return
	}
	if rec != nil {
		// Idle, or not yet known to be online: it took its job at once.
		if rec.State == RunnerIdle || rec.State == RunnerProvisioning {
			at := *ev.StartedAt
			if now := workflow.Now(ctx); at.After(now) {
				at = now
			}
			p.accrue(rec, at) // not before rec.Since: accrue keeps the later
			rec.State = RunnerBusy
		}
		return
	}
	if ev.CompletedAt == nil || !ev.CompletedAt.After(*ev.StartedAt) {
		return
	}
	price := p.price()
	p.ledger().toBusy(*ev.StartedAt, *ev.CompletedAt, price)
	p.s.UsageTotals.toBusy(ev.CompletedAt.Sub(*ev.StartedAt).Milliseconds(), price)
}

// countLost counts a job whose runner was lost while it ran it.
func (p *pool) countLost(now time.Time, jobID int64) {
	if jobID == 0 || !p.r.markSeen(jobKey(jobID, jobLost)) {
		return
	}
	p.ledger().add(now, func(b *UsageBucket) { b.Lost++ })
	p.s.UsageTotals.Lost++
}

// countBootstrapFailure counts a runner that failed before it came online.
func (p *pool) countBootstrapFailure(now time.Time) {
	p.ledger().add(now, func(b *UsageBucket) { b.BootstrapFailures++ })
	p.s.UsageTotals.BootstrapFailures++
}

// succeeded: a job with this conclusion did not fail. An unknown one
// (a reconciliation that did not learn it) counts as a success.
func succeeded(conclusion string) bool {
	switch conclusion {
	case "", "success", "neutral", "skipped":
		return true
	}
	return false
}

// maxUsageBytes bounds the usage a repository carries into its next run
// (JSON): Temporal refuses a payload over 2 MiB, and the state has more.
const maxUsageBytes = 1 << 20

// boundUsage drops the ledgers idle longest while the usage is over
// maxUsageBytes: only a repository of many pools with waits spread over
// every band of every bucket comes near it.
func (r *repository) boundUsage() {
	for len(r.s.Usage) > 1 {
		b, err := json.Marshal(r.s.Usage)
		if err != nil || len(b) <= maxUsageBytes {
			return
		}
		oldest := idlestLedger(r.s.Usage)
		r.log.Warn("Usage too large to carry on; the ledger idle longest is dropped", "pool", r.s.Usage[oldest].Pool,
			"agent", r.s.Usage[oldest].Agent, "bytes", len(b), "limit", maxUsageBytes)
		r.s.Usage = slices.Delete(r.s.Usage, oldest, oldest+1)
	}
}

// idlestLedger is the index of the ledger that got something longest ago.
func idlestLedger(ls []UsageLedger) int {
	oldest := 0
	for i, l := range ls {
		if l.Last < ls[oldest].Last {
			oldest = i
		}
	}
	return oldest
}

// pruneUsage drops the usage that has left every window.
func (r *repository) pruneUsage(now time.Time) {
	r.s.Usage = slices.DeleteFunc(r.s.Usage, func(l UsageLedger) bool {
		return l.prune(now) && !r.serves(l.Pool, l.Agent)
	})
}

// serves reports whether agent serves the pool called name now.
func (r *repository) serves(name, agent string) bool {
	p := r.pool(name)
	return p != nil && p.s.Config.Agent == agent
}

// usage answers QueryUsage: every ledger's buckets over the window, with
// the time of the runners up to now counted as if it had been (on a copy:
// a query changes nothing).
func (r *repository) usage(ctx workflow.Context, req UsageRequest) (RepositoryUsage, error) {
	w := windowIndex(req.Window)
	if w < 0 {
		_, err := ParseUsageWindow(req.Window)
		return RepositoryUsage{}, err
	}
	now := workflow.Now(ctx)
	if req.Now.After(now) {
		now = req.Now
	}
	win := usageWindows[w]
	out := RepositoryUsage{Repository: r.full(), Window: win.Name, From: win.From(now), To: now,
		Pools: []LedgerUsage{}}
	ledgers := make([]UsageLedger, len(r.s.Usage))
	for i, l := range r.s.Usage {
		ledgers[i] = l.clone()
	}
	for _, p := range r.pools {
		for _, rec := range p.s.Runners {
			if !now.After(rec.Since) {
				continue
			}
			i := ledgerOf(ledgers, p.s.Name, p.s.Config.Agent)
			if i < 0 {
				ledgers = append(ledgers, UsageLedger{Pool: p.s.Name, Agent: p.s.Config.Agent})
				i = len(ledgers) - 1
			}
			ledgers[i].addTime(rec.Since, now, timeOf(rec.State), p.price())
		}
	}
	for _, l := range ledgers {
		out.Pools = append(out.Pools, LedgerUsage{Pool: l.Pool, Agent: l.Agent, Buckets: l.window(w, now)})
	}
	slices.SortFunc(out.Pools, func(a, b LedgerUsage) int {
		return cmp.Or(cmp.Compare(a.Pool, b.Pool), cmp.Compare(a.Agent, b.Agent))
	})
	return out, nil
}

// totals are the pool's usage since it was configured, its runners'
// time counted up to now: what its memo carries.
func (p *pool) totals(now time.Time) UsageTotals {
	t := p.s.UsageTotals
	t.WaitBuckets = slices.Clone(t.WaitBuckets)
	for _, rec := range p.s.Runners {
		if now.After(rec.Since) {
			t.addTime(now.Sub(rec.Since).Milliseconds(), timeOf(rec.State), p.price())
		}
	}
	t.At, t.Price = now, p.price()
	return t
}
