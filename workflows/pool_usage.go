package workflows

import (
	"cmp"
	"encoding/json"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"
)

// The usage of a pool (usage.go) is counted as things happen: a runner's
// time when it changes state (PoolRunner.Since), a queue wait when GitHub
// reports its job in progress on a runner of the pool, a job's end when
// its completed event (or a reconciliation) says so. It is state, not
// commands.

// ledger is the usage ledger of the pool under its agent now.
func (p *poolWorkflow) ledger() *UsageLedger {
	agent := p.s.Config.Agent
	if i := ledgerOf(p.s.Usage, p.ref.Pool, agent); i >= 0 {
		return &p.s.Usage[i]
	}
	if len(p.s.Usage) >= maxPoolLedgers {
		i := idlestLedger(p.s.Usage)
		p.s.Usage = slices.Delete(p.s.Usage, i, i+1)
	}
	p.s.Usage = append(p.s.Usage, UsageLedger{Pool: p.ref.Pool, Agent: agent})
	return &p.s.Usage[len(p.s.Usage)-1]
}

// price is what a runner-hour of the pool costs: its hourlyPrice, or the
// server's price list's.
func (p *poolWorkflow) price() float64 {
	if p.s.Config.HourlyPrice > 0 {
		return p.s.Config.HourlyPrice
	}
	return p.s.ListPrice
}

// runnerTimeOf is what a runner's time counts as: a runner the pool wants
// gone is idle time (waste), one not yet online booting.
func runnerTimeOf(r *PoolRunner) runnerTime {
	if r.DeleteWanted || r.GaveUp {
		return timeIdle
	}
	return timeOf(r.State)
}

// accrue counts a runner's time in its state up to now: call it before
// the state changes. A time before the runner's Since counts nothing.
func (p *poolWorkflow) accrue(r *PoolRunner, now time.Time) {
	if !now.After(r.Since) {
		return
	}
	k, price := runnerTimeOf(r), p.price()
	p.ledger().addTime(r.Since, now, k, price)
	p.s.UsageTotals.addTime(now.Sub(r.Since).Milliseconds(), k, price)
	r.Since = now
}

// accrueAll counts the time of every runner up to now: before the pool's
// agent or price changes.
func (p *poolWorkflow) accrueAll(now time.Time) {
	for i := range p.s.Runners {
		p.accrue(&p.s.Runners[i], now)
	}
}

// eventTime is when an event of runner r happened: now, or when GitHub
// says (at) if the event comes late (its webhook was missed, and a
// reconciliation found it), within the runner's time in its state.
func (p *poolWorkflow) eventTime(r *PoolRunner, at *time.Time) time.Time {
	if at == nil || p.now.Sub(*at) < lateEvent {
		return p.now
	}
	if at.Before(r.Since) {
		return r.Since
	}
	return *at
}

// countWait counts the queue wait of a job that started on one of the
// pool's runners: from when it was queued to when it started (GitHub's
// times when the event has them).
func (p *poolWorkflow) countWait(queuedAt time.Time, ev JobEvent) {
	if queuedAt.IsZero() && ev.CreatedAt != nil {
		queuedAt = *ev.CreatedAt
	}
	if queuedAt.IsZero() {
		return
	}
	started := p.now
	if ev.StartedAt != nil {
		started = *ev.StartedAt
	}
	wait := max(0, started.Sub(queuedAt).Seconds())
	p.ledger().add(p.now, func(b *UsageBucket) { b.Waits.Add(wait) })
	p.s.UsageTotals.addWait(wait)
}

// countEnd counts a job that ended (ev is its completed event, m its
// marks before it) on one of the pool's runners (r, nil when it has
// gone): in jobsDone always; in the usage as served unless its runner was
// lost while it ran, with its queue wait and its runner's busy time if its
// start was missed.
func (p *poolWorkflow) countEnd(r *PoolRunner, ev JobEvent, m uint8) {
	p.s.JobsDone++
	if m&markLost != 0 {
		return
	}
	started := m&markStarted != 0
	p.missedStart(r, ev, started)
	if !started && ev.StartedAt != nil {
		p.countWait(time.Time{}, ev)
	}
	failed := 0
	if !succeeded(ev.Conclusion) {
		failed = 1
	}
	p.ledger().add(p.now, func(b *UsageBucket) { b.Served++; b.Failed += failed })
	p.s.UsageTotals.Served++
	p.s.UsageTotals.Failed += failed
}

// missedStart corrects the runner time of a job that ended on one of the
// pool's runners while its in_progress webhook was missed: the runner,
// counted idle (or booting), was busy from when GitHub says the job
// started to when it ended. r is nil when the runner has gone.
func (p *poolWorkflow) missedStart(r *PoolRunner, ev JobEvent, started bool) {
	if started || ev.StartedAt == nil {
		return
	}
	if r != nil {
		if r.State == RunnerIdle || r.State == RunnerProvisioning {
			at := *ev.StartedAt
			if at.After(p.now) {
				at = p.now
			}
			p.accrue(r, at) // not before r.Since: accrue keeps the later
			r.State = RunnerBusy
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
func (p *poolWorkflow) countLost(id int64) {
	if id == 0 || p.s.Marks.has(id, markLost) {
		return
	}
	p.s.Marks.set(id, markLost)
	p.ledger().add(p.now, func(b *UsageBucket) { b.Lost++ })
	p.s.UsageTotals.Lost++
}

// countBootstrapFailure counts a runner that failed before it came online.
func (p *poolWorkflow) countBootstrapFailure() {
	p.ledger().add(p.now, func(b *UsageBucket) { b.BootstrapFailures++ })
	p.s.UsageTotals.BootstrapFailures++
}

// pruneUsage drops the usage that has left every window, but the ledger
// of the pool's agent of now.
func (p *poolWorkflow) pruneUsage(now time.Time) {
	p.s.Usage = slices.DeleteFunc(p.s.Usage, func(l UsageLedger) bool {
		return l.prune(now) && l.Agent != p.s.Config.Agent
	})
}

// usage answers QueryUsage: every ledger's buckets over the window, with
// the time of the runners up to now counted as if it had been (on a copy:
// a query changes nothing).
func (p *poolWorkflow) usage(ctx workflow.Context, req UsageRequest) (RepositoryUsage, error) {
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
	out := RepositoryUsage{Repository: p.ref.Repository(), Window: win.Name, From: win.From(now), To: now, Pools: []LedgerUsage{}}
	ledgers := make([]UsageLedger, len(p.s.Usage))
	for i, l := range p.s.Usage {
		ledgers[i] = l.clone()
	}
	for i := range p.s.Runners {
		r := &p.s.Runners[i]
		if !now.After(r.Since) {
			continue
		}
		j := ledgerOf(ledgers, p.ref.Pool, p.s.Config.Agent)
		if j < 0 {
			ledgers = append(ledgers, UsageLedger{Pool: p.ref.Pool, Agent: p.s.Config.Agent})
			j = len(ledgers) - 1
		}
		ledgers[j].addTime(r.Since, now, runnerTimeOf(r), p.price())
	}
	for _, l := range ledgers {
		out.Pools = append(out.Pools, LedgerUsage{Pool: l.Pool, Agent: l.Agent, Buckets: l.window(w, now)})
	}
	slices.SortFunc(out.Pools, func(a, b LedgerUsage) int { return cmp.Compare(a.Agent, b.Agent) })
	return out, nil
}

// totals are the pool's usage since it was configured, its runners'
// time counted up to now: what its memo carries.
func (p *poolWorkflow) totals(now time.Time) UsageTotals {
	t := p.s.UsageTotals
	t.WaitBuckets = slices.Clone(t.WaitBuckets)
	for i := range p.s.Runners {
		r := &p.s.Runners[i]
		if now.After(r.Since) {
			t.addTime(now.Sub(r.Since).Milliseconds(), runnerTimeOf(r), p.price())
		}
	}
	t.At, t.Price = now, p.price()
	return t
}

// carriedSize is the size of the state a run would carry on, as JSON.
func (p *poolWorkflow) carriedSize() int {
	b, err := json.Marshal(p.s)
	if err != nil {
		return 0
	}
	return len(b)
}

// boundCarried keeps the carried state under maxCarriedBytes, shedding,
// in order, and each with a warning: the usage ledgers of agents before
// the pool's own, the oldest job marks, the oldest unmatched jobs, and
// the page of the queue into its count (the jobs stay counted; the
// reconciliation learns them again). Runners and the counts are never
// shed: they are bounded by maxRunners.
func (p *poolWorkflow) boundCarried() {
	size := p.carriedSize()
	if size <= maxCarriedBytes {
		return
	}
	for size > maxCarriedBytes && len(p.s.Usage) > 1 {
		i := idlestLedger(p.s.Usage)
		if p.s.Usage[i].Agent == p.s.Config.Agent {
			break
		}
		p.log.Warn("State too large to carry on; the usage of a former agent is dropped", "agent", p.s.Usage[i].Agent, "bytes", size)
		p.s.Usage = slices.Delete(p.s.Usage, i, i+1)
		size = p.carriedSize()
	}
	for size > maxCarriedBytes && p.s.Marks.len() > 1024 {
		p.log.Warn("State too large to carry on; the oldest job marks are forgotten", "marks", p.s.Marks.len(), "bytes", size)
		p.s.Marks.forgetOldest(p.s.Marks.len() / 2)
		size = p.carriedSize()
	}
	for size > maxCarriedBytes && len(p.s.Unmatched) > 0 {
		n := (len(p.s.Unmatched) + 1) / 2
		p.log.Warn("State too large to carry on; the oldest unmatched jobs are forgotten", "jobs", n, "bytes", size)
		p.s.Unmatched = p.s.Unmatched[n:]
		size = p.carriedSize()
	}
	for size > maxCarriedBytes && len(p.s.Queue) > 0 {
		n := (len(p.s.Queue) + 1) / 2
		p.log.Warn("State too large to carry on; the newest queued jobs of the page are counted by number only", "jobs", n, "bytes", size)
		p.s.Queue = p.s.Queue[:len(p.s.Queue)-n]
		p.s.QueueRest += n
		size = p.carriedSize()
	}
	if size > maxCarriedBytes && len(p.s.Usage) > 0 {
		p.log.Warn("State too large to carry on; the queue-wait histograms of the pool's usage are dropped", "bytes", size)
		for i := range p.s.Usage[0].Series {
			for j := range p.s.Usage[0].Series[i] {
				p.s.Usage[0].Series[i][j].Waits = WaitHistogram{}
			}
		}
	}
}
