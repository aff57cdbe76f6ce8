package api

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/garo-run/garo/workflows"
)

// usageDescs are the usage figures of each pool as Prometheus counters,
// from the totals its memo carries (workflows.UsageTotals): the windows of
// GET .../usage are increase() over 1h, 24h or 7d of these.
type usageDescs struct {
	served, failed, lost, bootFailures, runnerSeconds, cost, wait *prometheus.Desc
}

func newUsageDescs(labels []string) usageDescs {
	d := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(append([]string(nil), labels...), extra...), nil)
	}
	return usageDescs{
		served:        d("garo_pool_jobs_served_total", "Jobs that ran to their end on a pool's runners, whatever their conclusion."),
		failed:        d("garo_pool_jobs_failed_total", "Of the jobs served, those that did not succeed."),
		lost:          d("garo_pool_jobs_lost_total", "Jobs whose runner was lost while it ran them."),
		bootFailures:  d("garo_pool_bootstrap_failures_total", "Runners that failed before they came online."),
		runnerSeconds: d("garo_pool_runner_seconds_total", "Runner time by what the runners did: busy, idle (or being deleted) or booting.", "state"),
		cost:          d("garo_pool_cost_total", "Estimated cost of runner time at the pool's hourlyPrice: useful (busy) or waste (idle and booting).", "kind"),
		wait:          d("garo_pool_queue_wait_seconds", "How long jobs waited from queued to in progress on a pool's runners."),
	}
}

func (u usageDescs) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{u.served, u.failed, u.lost, u.bootFailures, u.runnerSeconds, u.cost, u.wait} {
		ch <- d
	}
}

// collect sends a pool's usage counters. The memo's totals are as at
// their At; the runners' time since then is added at the pool's counts
// (which the memo publishes within 5 s of a change), so that a quiet pool's
// idle time still grows between its memos.
func (u usageDescs) collect(ch chan<- prometheus.Metric, p workflows.PoolView, now time.Time, labels []string) {
	t := p.Usage
	if t == nil {
		return // a run from before usage was kept
	}
	counter := func(d *prometheus.Desc, v float64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append(append([]string(nil), labels...), extra...)...)
	}
	counter(u.served, float64(t.Served))
	counter(u.failed, float64(t.Failed))
	counter(u.lost, float64(t.Lost))
	counter(u.bootFailures, float64(t.BootstrapFailures))
	since := max(0, now.Sub(t.At).Seconds())
	c, price := p.Counts, t.Price/3600
	busy := float64(t.BusyMs)/1000 + since*float64(c.Busy)
	idle := float64(t.IdleMs)/1000 + since*float64(c.Idle+c.Deleting)
	booting := float64(t.BootingMs)/1000 + since*float64(c.Provisioning)
	counter(u.runnerSeconds, busy, "busy")
	counter(u.runnerSeconds, idle, "idle")
	counter(u.runnerSeconds, booting, "booting")
	counter(u.cost, t.UsefulCost+since*float64(c.Busy)*price, "useful")
	counter(u.cost, t.WasteCost+since*float64(c.Idle+c.Deleting+c.Provisioning)*price, "waste")
	buckets := map[float64]uint64{}
	var cum uint64
	for i, bound := range workflows.WaitBucketBounds {
		if i < len(t.WaitBuckets) {
			cum += uint64(t.WaitBuckets[i])
		}
		buckets[bound] = cum
	}
	ch <- prometheus.MustNewConstHistogram(u.wait, uint64(t.WaitCount), t.WaitSeconds, buckets, labels...)
}
