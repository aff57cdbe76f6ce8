package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/garo-run/garo/tests/githubsim"
	"github.com/garo-run/garo/workflows"
)

// Quantiles of a distribution, in milliseconds.
type Quantiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func quantiles(v []float64) Quantiles {
	if len(v) == 0 {
		return Quantiles{}
	}
	slices.Sort(v)
	at := func(q float64) float64 { return v[min(len(v)-1, int(q*float64(len(v))))] }
	return Quantiles{P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: v[len(v)-1]}
}

// Process is what one process cost during the run.
type Process struct {
	CPUSeconds        float64 `json:"cpuSeconds"`
	CPUSecondsPer1000 float64 `json:"cpuSecondsPer1000Jobs"`
	PeakRSSMiB        float64 `json:"peakRssMiB"`
}

// Result is one run's figures; its JSON is compared across versions.
type Result struct {
	Scenario string `json:"scenario"`
	// Temporal is the Temporal the run was on: dev or postgres.
	Temporal          string    `json:"temporal,omitempty"`
	Version           string    `json:"version,omitempty"`
	StartedAt         time.Time `json:"startedAt"`
	SQLitePragmas     []string  `json:"sqlitePragmas"`
	JobsEnqueued      int       `json:"jobsEnqueued"`
	JobsCompleted     int       `json:"jobsCompleted"`
	RunnersLeft       int       `json:"runnersLeft"`
	Seconds           float64   `json:"seconds"`
	JobsPerSecond     float64   `json:"jobsPerSecond"`
	WebhookToCreateMs Quantiles `json:"webhookToCreateMs"`
	// WebhookToCreateBelowMaxMs is the same for the creates that did not
	// wait for a free slot (the first maxRunners of each pool).
	WebhookToCreateBelowMaxMs Quantiles `json:"webhookToCreateBelowMaxMs"`
	MaxRunners                int       `json:"maxRunners"`
	QueueWaitMs               Quantiles `json:"queueWaitMs"`
	// WebhookAcceptMs is how long the server took to answer a delivery
	// (the simulator sends several at once, as GitHub does).
	WebhookAcceptMs       Quantiles      `json:"webhookAcceptMs"`
	WebhookAcceptMeanMs   float64        `json:"webhookAcceptMeanMs"`
	GitHubRequestsPerJob  float64        `json:"githubRequestsPerJob"`
	GitHubRequestsByRoute map[string]int `json:"githubRequestsByRoute"`
	HistoryEventsPerJob   float64        `json:"historyEventsPerJob"`
	HistoryBytesPerJob    float64        `json:"historyBytesPerJob"`
	ActionsPerJob         float64        `json:"actionsPerJob"`
	ActionsByKind         map[string]int `json:"actionsByKind"`
	// MaxPayloadBytes is the largest workflow input, or input a run
	// continued as new with, of any history; MaxCommandsPerTask the most
	// commands one workflow task issued.
	MaxPayloadBytes    int `json:"maxPayloadBytes"`
	MaxCommandsPerTask int `json:"maxCommandsPerTask"`
	// RunnerPhases is where a runner slot's time goes.
	RunnerPhases Phases             `json:"runnerPhases"`
	Workflows    map[string]History `json:"workflows"`
	CPUSeconds   map[string]float64 `json:"cpuSeconds"`
	PeakRSSMiB   map[string]float64 `json:"peakRssMiB"`
	Processes    map[string]Process `json:"processes"`
	// Idle is what each process costs at rest (scenario idle).
	Idle map[string]IdleCost `json:"idle,omitempty"`
	// Usage is what GET /api/v1/usage says of the same jobs.
	Usage *UsageCheck `json:"usage,omitempty"`
	// AtRest is the stack once the jobs are done (scenario fleet).
	AtRest *Rest `json:"atRest,omitempty"`
	// Ramp is each offered rate's figures (scenario ramp) and the highest
	// rate whose p99 wait stayed within RampLimit.
	Ramp                      []RampStep `json:"ramp,omitempty"`
	MaxSustainedJobsPerSecond float64    `json:"maxSustainedJobsPerSecond,omitempty"`
}

// UsageCheck is GET /api/v1/usage?window=24h after a run, beside the
// figures measured on the simulator: the jobs served and their queue
// waits as the workflows counted them (GitHub's times, to the second),
// and how long the API took to read every repository's workflow.
type UsageCheck struct {
	Served         int     `json:"served"`
	QueueWaitP50Ms float64 `json:"queueWaitP50Ms"`
	QueueWaitP95Ms float64 `json:"queueWaitP95Ms"`
	QueueWaitMaxMs float64 `json:"queueWaitMaxMs"`
	AnswerMs       float64 `json:"answerMs"`
}

// usageFigures reads the run's usage from the API.
func usageFigures(ctx context.Context, s *stack, res *Result, logf func(string, ...any)) error {
	logf("reading the usage API (it asks every pool)")
	began := time.Now()
	stop := progress(logf, func() string { return fmt.Sprintf("usage API answering for %.0f s", time.Since(began).Seconds()) })
	defer stop()
	var u struct {
		Figures struct {
			Jobs      struct{ Served int }
			QueueWait struct{ P50Seconds, P95Seconds, MaxSeconds float64 }
		}
	}
	if _, err := s.api(ctx, "GET", "/api/v1/usage?window=24h", nil, &u); err != nil {
		return fmt.Errorf("read the usage: %w", err)
	}
	w := u.Figures.QueueWait
	res.Usage = &UsageCheck{Served: u.Figures.Jobs.Served, QueueWaitP50Ms: w.P50Seconds * 1000, QueueWaitP95Ms: w.P95Seconds * 1000,
		QueueWaitMaxMs: w.MaxSeconds * 1000, AnswerMs: float64(time.Since(began).Microseconds()) / 1000}
	return nil
}

// IdleCost is one process at rest: its share of a core and its memory.
type IdleCost struct {
	CPUPercent float64 `json:"cpuPercent"`
	RSSMiB     float64 `json:"rssMiB"`
}

func repoName(i int) string { return fmt.Sprintf("bench/p%03d", i) }

// measure runs the scenario on the stack and gathers its figures.
func measure(ctx context.Context, s *stack, sc Scenario, logf func(string, ...any)) (Result, error) {
	res := Result{Scenario: sc.Name, Version: os.Getenv("VERSION"), StartedAt: time.Now().UTC(),
		JobsEnqueued: sc.Pools * sc.JobsPerPool, MaxRunners: sc.MaxRunners}
	if err := configure(ctx, s, sc, logf); err != nil {
		return res, err
	}
	before := map[string]float64{}
	for _, p := range s.procs {
		before[p.name] = cpuSeconds(p.cmd.Process.Pid)
	}
	if sc.Intake {
		if err := measureIntake(ctx, s, sc, &res, logf); err != nil {
			return res, err
		}
		return res, historyFigures(ctx, s, &res, logf)
	}
	began := time.Now()
	if len(sc.Ramp) > 0 {
		if err := ramp(ctx, s, sc, &res, logf); err != nil {
			return res, err
		}
	} else {
		go enqueue(ctx, s, sc, logf)
	}
	jobs, err := waitJobs(ctx, s, res.JobsEnqueued, logf)
	if err != nil {
		return res, err
	}
	last := began
	var waits []float64
	for _, j := range jobs {
		if j.Conclusion == "success" {
			res.JobsCompleted++
		}
		if j.StartedAt != nil {
			waits = append(waits, float64(j.StartedAt.Sub(j.CreatedAt).Milliseconds()))
		}
		if j.CompletedAt != nil && j.CompletedAt.After(last) {
			last = *j.CompletedAt
		}
	}
	res.Seconds = last.Sub(began).Seconds()
	res.JobsPerSecond = float64(res.JobsCompleted) / res.Seconds
	res.QueueWaitMs = quantiles(waits)
	res.CPUSeconds, res.PeakRSSMiB, res.Processes = map[string]float64{}, map[string]float64{}, map[string]Process{}
	for _, p := range s.procs {
		cpu := cpuSeconds(p.cmd.Process.Pid) - before[p.name]
		res.CPUSeconds[p.name], res.PeakRSSMiB[p.name] = cpu, peakRSSMiB(p.cmd.Process.Pid)
		res.Processes[p.name] = Process{CPUSeconds: cpu, CPUSecondsPer1000: cpu * 1000 / float64(res.JobsEnqueued), PeakRSSMiB: res.PeakRSSMiB[p.name]}
	}
	logf("every job completed in %.1f s; waiting for the pools to settle", res.Seconds)
	if res.RunnersLeft, err = settle(ctx, s, sc, logf); err != nil {
		return res, err
	}
	if err := githubFigures(ctx, s, &res); err != nil {
		return res, err
	}
	if sc.Rest > 0 {
		if res.AtRest, err = settleAndRest(ctx, s, sc, logf); err != nil {
			return res, err
		}
	}
	if err := usageFigures(ctx, s, &res, logf); err != nil {
		return res, err
	}
	logf("reading every workflow history")
	if err := historyFigures(ctx, s, &res, logf); err != nil {
		return res, err
	}
	return res, nil
}

// configure creates the pools, all served by the agent's sim provider,
// eight at a time.
func configure(ctx context.Context, s *stack, sc Scenario, logf func(string, ...any)) error {
	logf("configuring %d pools", sc.Pools)
	var done atomic.Int64
	stop := progress(logf, func() string { return fmt.Sprintf("%d of %d pools configured", done.Load(), sc.Pools) })
	defer stop()
	return each(ctx, sc.Pools, func(ctx context.Context, i int) error {
		// bootstrapTimeout stays the default (10m): thousands of runners
		// created at once on this machine take minutes to come online.
		cfg := map[string]any{"agent": "bench", "labels": []string{"self-hosted", "linux"}, "maxRunners": sc.MaxRunners,
			"idleGracePeriod": "2s", "ephemeral": !sc.Reusable, "provider": map[string]string{"kind": "sim"}}
		if _, err := s.api(ctx, "PUT", "/api/v1/repositories/"+repoName(i), cfg, nil); err != nil {
			return fmt.Errorf("configure pool %s: %w", repoName(i), err)
		}
		done.Add(1)
		return nil
	})
}

// each calls f for 0..n-1, eight at a time, and returns the first error.
func each(ctx context.Context, n int, f func(context.Context, int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error { return f(ctx, i) })
	}
	return g.Wait()
}

// progress logs what every 5 seconds until stopped.
func progress(logf func(string, ...any), what func() string) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				logf("%s", what())
			}
		}
	}()
	return func() { close(done) }
}

// simMaxJobs is the most jobs the simulator enqueues in one request.
const simMaxJobs = 10000

// enqueue puts the scenario's jobs on GitHub: all at once, or at its rate.
func enqueue(ctx context.Context, s *stack, sc Scenario, logf func(string, ...any)) {
	post := func(repo string, n int) {
		// The simulator takes at most simMaxJobs jobs a request.
		for n > 0 {
			k := min(n, simMaxJobs)
			n -= k
			body := map[string]any{"repo": repo, "labels": []string{"self-hosted", "linux"}, "durationMs": sc.JobMs, "count": k}
			if _, err := s.simCall(ctx, "POST", "/_sim/jobs", body, nil); err != nil {
				logf("enqueue: %v", err)
			}
		}
	}
	if sc.Rate == 0 {
		_ = each(ctx, sc.Pools, func(_ context.Context, i int) error {
			post(repoName(i), sc.JobsPerPool)
			return nil
		})
		return
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / sc.Rate))
	defer tick.Stop()
	for n := range sc.Pools * sc.JobsPerPool {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			post(repoName(n%sc.Pools), 1)
		}
	}
}

// waitJobs waits until every job has completed, showing progress.
func waitJobs(ctx context.Context, s *stack, want int, logf func(string, ...any)) ([]githubsim.Job, error) {
	lastLog, lastDone, lastChange := time.Now(), -1, time.Now()
	for {
		var jobs []githubsim.Job
		if _, err := s.simCall(ctx, "GET", "/_sim/jobs", nil, &jobs); err != nil {
			return nil, err
		}
		done := 0
		for _, j := range jobs {
			if j.Status == githubsim.StatusCompleted && strings.HasPrefix(j.Repo, "bench/") {
				done++
			}
		}
		if done == want {
			return jobs, nil
		}
		if done != lastDone {
			lastDone, lastChange = done, time.Now()
		} else if time.Since(lastChange) > 3*time.Minute {
			return jobs, fmt.Errorf("stalled at %d of %d jobs completed", done, want)
		}
		if time.Since(lastLog) > 5*time.Second {
			logf("%d of %d jobs completed", done, want)
			lastLog = time.Now()
		}
		// Reading every job costs the simulator more as they grow.
		if err := sleep(ctx, max(250*time.Millisecond, time.Duration(want/20)*time.Millisecond)); err != nil {
			return nil, err
		}
	}
}

// settle waits until no pool has a runner and the simulator hosts none,
// and returns how many runners are left after at most a minute.
func settle(ctx context.Context, s *stack, sc Scenario, logf func(string, ...any)) (int, error) {
	// A minute at most when nothing is left to go, and longer while
	// runners keep going (thousands of idle runners take minutes to
	// delete here): 3 minutes past the last one gone, up to settleMost.
	began := time.Now()
	deadline := began.Add(time.Minute)
	least := -1
	for n := 0; ; n++ {
		var instances, runners []struct{ State string }
		if _, err := s.simCall(ctx, "GET", "/_sim/instances", nil, &instances); err != nil {
			return 0, err
		}
		if _, err := s.simCall(ctx, "GET", "/_sim/runners", nil, &runners); err != nil {
			return 0, err
		}
		left := len(runners)
		for _, in := range instances {
			if in.State == "running" {
				left++
			}
		}
		pools, err := s.pools(ctx)
		if err != nil {
			return 0, err
		}
		for _, p := range pools {
			left += p.Counts.Idle + p.Counts.Busy + p.Counts.Provisioning
		}
		if left == 0 || time.Now().After(deadline) {
			return left, nil
		}
		if least < 0 || left < least {
			least = left
			// A runner that took no job is known online by the pool's
			// look at GitHub, every 2 minutes at most: then it goes.
			deadline = time.Now().Add(3 * time.Minute)
			if most := began.Add(settleMost); deadline.After(most) {
				deadline = most
			}
		}
		if n%10 == 9 {
			logf("%d runners, instances and pool runners left", left)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// settleAndRest lets the stack settle for sc.Settle (the pools' last
// looks at GitHub after their last job, and the sweep's first look at
// the dormant pools, come first), then measures it at rest.
func settleAndRest(ctx context.Context, s *stack, sc Scenario, logf func(string, ...any)) (*Rest, error) {
	if sc.Settle > 0 {
		logf("letting the stack settle for %s", sc.Settle)
		began := time.Now()
		stop := progress(logf, func() string { return fmt.Sprintf("settling for %.0f s", time.Since(began).Seconds()) })
		err := sleep(ctx, sc.Settle)
		stop()
		if err != nil {
			return nil, err
		}
	}
	return measureRest(ctx, s, sc.Rest, logf)
}

// settleMost bounds the wait for the pools to settle.
const settleMost = 15 * time.Minute

// pools lists every pool, as the memos show them, page by page.
func (s *stack) pools(ctx context.Context) ([]workflows.PoolView, error) {
	var out []workflows.PoolView
	for cursor := ""; ; {
		var page struct {
			Repositories []workflows.PoolView `json:"repositories"`
			NextCursor   string               `json:"nextCursor"`
		}
		if code, err := s.api(ctx, "GET", "/api/v1/repositories?limit=1000&cursor="+url.QueryEscape(cursor), nil, &page); err != nil || code != http.StatusOK {
			return nil, fmt.Errorf("list pools: %d %w", code, err)
		}
		out = append(out, page.Repositories...)
		if page.NextCursor == "" || page.NextCursor == cursor {
			return out, nil
		}
		cursor = page.NextCursor
	}
}

// githubFigures counts the GitHub API requests made (the simulator's own
// control and runner routes aside) and the webhook-to-create latency.
func githubFigures(ctx context.Context, s *stack, res *Result) error {
	var stats struct {
		Requests map[string]int `json:"requests"`
	}
	if _, err := s.simCall(ctx, "GET", "/_sim/stats", nil, &stats); err != nil {
		return err
	}
	res.GitHubRequestsByRoute = map[string]int{}
	total := 0
	for _, k := range slices.Sorted(maps.Keys(stats.Requests)) {
		fields := strings.Fields(k)
		if len(fields) < 2 || strings.HasPrefix(fields[1], "/_sim") {
			continue
		}
		route := fields[0] + " " + fields[1]
		res.GitHubRequestsByRoute[route] += stats.Requests[k]
		total += stats.Requests[k]
	}
	res.GitHubRequestsPerJob = float64(total) / float64(res.JobsEnqueued)
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// cpuSeconds is the user and system CPU time of pid so far.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command (which may hold spaces) start after ")".
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// peakRSSMiB is the peak resident memory of pid.
func peakRSSMiB(pid int) float64 { return rssMiB(pid, "VmHWM:") }

// rssMiB is the field of /proc/PID/status named key (VmRSS: resident
// memory now, VmHWM: its peak), in MiB.
func rssMiB(pid int, key string) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
