package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
)

// printTable prints the figures for a person.
func printTable(w io.Writer, r Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	q := func(v Quantiles) string {
		return fmt.Sprintf("p50 %.0f  p95 %.0f  p99 %.0f  max %.0f", v.P50, v.P95, v.P99, v.Max)
	}
	row("scenario", "%s", r.Scenario)
	row("jobs completed / enqueued", "%d / %d", r.JobsCompleted, r.JobsEnqueued)
	row("runners left", "%d", r.RunnersLeft)
	row("time", "%.1f s (%.1f jobs/s)", r.Seconds, r.JobsPerSecond)
	if r.Idle != nil {
		row("idle stack, measured over", "%.0f s", r.Seconds)
		total := IdleCost{}
		for _, k := range slices.Sorted(maps.Keys(r.Idle)) {
			c := r.Idle[k]
			row("  "+k, "%.2f %% of a core, %.0f MiB resident", c.CPUPercent, c.RSSMiB)
			total.CPUPercent += c.CPUPercent
			total.RSSMiB += c.RSSMiB
		}
		row("  all", "%.2f %% of a core, %.0f MiB resident", total.CPUPercent, total.RSSMiB)
		tw.Flush()
		return
	}
	for _, st := range r.Ramp {
		row(fmt.Sprintf("  ramp %.0f jobs/s", st.Rate), "offered %.1f/s, %d of %d started, wait %s, sustained %v",
			st.Offered, st.Started, st.Enqueued, q(st.QueueWaitMs), st.Sustained)
	}
	if r.Ramp != nil {
		row("max sustained jobs/s", "%.0f", r.MaxSustainedJobsPerSecond)
	}
	row("webhook -> create started (ms)", "%s", q(r.WebhookToCreateMs))
	row("  below maxRunners (no wait for a slot)", "%s", q(r.WebhookToCreateBelowMaxMs))
	a := r.WebhookAcceptMs
	row("webhook accepted (ms)", "mean %.1f  p50 %.1f  p95 %.1f  p99 %.1f  max %.1f", r.WebhookAcceptMeanMs, a.P50, a.P95, a.P99, a.Max)
	row("queued -> in progress (ms)", "%s", q(r.QueueWaitMs))
	if u := r.Usage; u != nil {
		row("  as the usage API counts them", "served %d, p50 %.0f  p95 %.0f  max %.0f; answered in %.0f ms", u.Served,
			u.QueueWaitP50Ms, u.QueueWaitP95Ms, u.QueueWaitMaxMs, u.AnswerMs)
	}
	row("GitHub requests per job", "%.2f", r.GitHubRequestsPerJob)
	for _, k := range slices.Sorted(maps.Keys(r.GitHubRequestsByRoute)) {
		row("  "+k, "%d", r.GitHubRequestsByRoute[k])
	}
	row("history per job", "%.1f events, %.0f bytes", r.HistoryEventsPerJob, r.HistoryBytesPerJob)
	for _, k := range slices.Sorted(maps.Keys(r.Workflows)) {
		h := r.Workflows[k]
		row("  "+k, "%d runs, %.1f events/run (max %d), %.1f events and %.0f bytes per job", h.Runs, h.EventsPer, h.MaxEvents, h.EventsJob, h.BytesPerJb)
	}
	row("actions per job", "%.1f", r.ActionsPerJob)
	row("largest workflow input", "%d bytes", r.MaxPayloadBytes)
	row("most commands in one workflow task", "%d", r.MaxCommandsPerTask)
	ph := r.RunnerPhases
	row("a runner's slot, medians (ms)", "dispatch %.0f, to its job %.0f, from its job's end %.0f, refill %.0f",
		ph.DispatchMs, ph.ToJobMs, ph.ToEndMs, ph.RefillMs)
	for _, k := range slices.Sorted(maps.Keys(r.ActionsByKind)) {
		row("  "+k, "%.2f per job", float64(r.ActionsByKind[k])/float64(r.JobsEnqueued))
	}
	for _, k := range slices.Sorted(maps.Keys(r.Processes)) {
		p := r.Processes[k]
		row("CPU, peak RSS: "+k, "%.1f s (%.2f s per 1000 jobs), %.0f MiB", p.CPUSeconds, p.CPUSecondsPer1000, p.PeakRSSMiB)
	}
	if a := r.AtRest; a != nil {
		row("at rest, measured over", "%.0f s", a.Seconds)
		for _, k := range slices.Sorted(maps.Keys(a.Processes)) {
			c := a.Processes[k]
			row("  "+k, "%.2f %% of a core, %.0f MiB resident", c.CPUPercent, c.RSSMiB)
		}
		row("  all", "%.2f %% of a core", a.CPUPercentAll)
		row("  GitHub requests per minute", "%.1f (%.1f counted against the rate limit)", a.GitHubRequestsPerMinute, a.CountedPerMinute)
		for _, k := range slices.Sorted(maps.Keys(a.RequestsByRoute)) {
			row("    "+k, "%d", a.RequestsByRoute[k])
		}
	}
	tw.Flush()
}
