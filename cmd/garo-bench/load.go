package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/garo-run/garo/tests/githubsim"
)

// RampStep is one offered rate of the ramp scenario.
type RampStep struct {
	// Rate is the rate asked for; Offered the rate the jobs were enqueued
	// at (jobs per second over every pool).
	Rate     float64 `json:"rate"`
	Offered  float64 `json:"offered"`
	Enqueued int     `json:"enqueued"`
	// Started is how many of the step's jobs had started when the step
	// was judged, RampLimit after its end; QueueWaitMs their waits, a
	// job not started counting as waiting until then.
	Started     int       `json:"started"`
	QueueWaitMs Quantiles `json:"queueWaitMs"`
	Sustained   bool      `json:"sustained"`
}

// ramp offers jobs at each of the scenario's rates in turn, judging each
// step once the next one has run RampLimit (or, for the last, after
// RampLimit at rest), and stops at the first step whose p99 wait passed
// RampLimit. It sets the jobs enqueued, the steps and the highest rate
// sustained.
func ramp(ctx context.Context, s *stack, sc Scenario, res *Result, logf func(string, ...any)) error {
	type window struct {
		step         RampStep
		began, ended time.Time
		judged       bool
	}
	var steps []*window
	judge := func(w *window) error {
		var jobs []githubsim.Job
		if _, err := s.simCall(ctx, "GET", "/_sim/jobs", nil, &jobs); err != nil {
			return err
		}
		now := time.Now()
		var waits []float64
		for _, j := range jobs {
			if !strings.HasPrefix(j.Repo, "bench/") || j.CreatedAt.Before(w.began) || !j.CreatedAt.Before(w.ended) {
				continue
			}
			end := now
			if j.StartedAt != nil {
				end = *j.StartedAt
				w.step.Started++
			}
			waits = append(waits, float64(end.Sub(j.CreatedAt).Milliseconds()))
		}
		w.step.QueueWaitMs = quantiles(waits)
		w.step.Sustained = len(waits) > 0 && w.step.QueueWaitMs.P99 <= float64(RampLimit.Milliseconds())
		w.judged = true
		logf("ramp: %.0f jobs/s offered (%.1f measured): %d of %d started, p99 wait %.0f ms: sustained %v",
			w.step.Rate, w.step.Offered, w.step.Started, w.step.Enqueued, w.step.QueueWaitMs.P99, w.step.Sustained)
		return nil
	}
	for _, rate := range sc.Ramp {
		w := &window{step: RampStep{Rate: rate}, began: time.Now()}
		steps = append(steps, w)
		n, err := offer(ctx, s, sc, rate, sc.Step, func(at time.Duration) bool {
			// Judge the step before once this one has run RampLimit.
			if len(steps) > 1 && at >= RampLimit && !steps[len(steps)-2].judged {
				if err := judge(steps[len(steps)-2]); err != nil {
					logf("ramp: %v", err)
				}
				return steps[len(steps)-2].step.Sustained
			}
			return true
		})
		w.ended = time.Now()
		w.step.Enqueued, w.step.Offered = n, float64(n)/w.ended.Sub(w.began).Seconds()
		res.JobsEnqueued += n
		if err != nil {
			return err
		}
		if len(steps) > 1 && !steps[len(steps)-2].step.Sustained {
			break
		}
	}
	if last := steps[len(steps)-1]; !last.judged {
		if err := sleep(ctx, time.Until(last.ended.Add(RampLimit))); err != nil {
			return err
		}
		if err := judge(last); err != nil {
			return err
		}
	}
	sustained := true
	for _, w := range steps {
		res.Ramp = append(res.Ramp, w.step)
		if sustained = sustained && w.judged && w.step.Sustained; sustained {
			res.MaxSustainedJobsPerSecond = w.step.Rate
		}
	}
	return nil
}

// offer enqueues jobs at rate per second for d, spread over the pools,
// sixteen requests at most in flight; check is called every second with
// the time spent and stops the offer when it returns false. It returns
// how many jobs it enqueued.
func offer(ctx context.Context, s *stack, sc Scenario, rate float64, d time.Duration, check func(time.Duration) bool) (int, error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	var n atomic.Int64
	began := time.Now()
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	lastCheck := began
	for i := 0; time.Since(began) < d; i++ {
		select {
		case <-gctx.Done():
			return int(n.Load()), g.Wait()
		case <-tick.C:
		}
		repo := repoName(i % sc.Pools)
		g.Go(func() error {
			body := map[string]any{"repo": repo, "labels": []string{"self-hosted", "linux"}, "durationMs": sc.JobMs, "count": 1}
			if _, err := s.simCall(gctx, "POST", "/_sim/jobs", body, nil); err != nil {
				return fmt.Errorf("enqueue: %w", err)
			}
			n.Add(1)
			return nil
		})
		if time.Since(lastCheck) >= time.Second {
			lastCheck = time.Now()
			if !check(time.Since(began)) {
				break
			}
		}
	}
	err := g.Wait()
	return int(n.Load()), err
}

// Rest is the stack at rest, with its pools configured and no job.
type Rest struct {
	Seconds float64 `json:"seconds"`
	// Processes is each process's share of a core (percent) and memory;
	// CPUPercentAll their sum.
	Processes     map[string]IdleCost `json:"processes"`
	CPUPercentAll float64             `json:"cpuPercentAll"`
	// GitHubRequestsPerMinute counts every GitHub API request;
	// CountedPerMinute those that count against the rate limit (not a
	// 304 to a conditional request, not GET /rate_limit).
	GitHubRequestsPerMinute float64        `json:"githubRequestsPerMinute"`
	CountedPerMinute        float64        `json:"countedRequestsPerMinute"`
	RequestsByRoute         map[string]int `json:"requestsByRoute"`
}

// measureRest measures every process and the GitHub requests over d.
func measureRest(ctx context.Context, s *stack, d time.Duration, logf func(string, ...any)) (*Rest, error) {
	requests := func() (map[string]int, error) {
		var stats struct {
			Requests map[string]int `json:"requests"`
		}
		_, err := s.simCall(ctx, "GET", "/_sim/stats", nil, &stats)
		return stats.Requests, err
	}
	before, err := requests()
	if err != nil {
		return nil, err
	}
	cpu := map[string]float64{}
	for _, p := range s.procs {
		cpu[p.name] = cpuSeconds(p.cmd.Process.Pid)
	}
	logf("measuring the stack at rest for %s", d)
	began := time.Now()
	stop := progress(logf, func() string { return fmt.Sprintf("at rest for %.0f s", time.Since(began).Seconds()) })
	err = sleep(ctx, d)
	stop()
	if err != nil {
		return nil, err
	}
	took := time.Since(began)
	after, err := requests()
	if err != nil {
		return nil, err
	}
	r := &Rest{Seconds: took.Seconds(), Processes: map[string]IdleCost{}, RequestsByRoute: map[string]int{}}
	for _, p := range s.procs {
		c := IdleCost{CPUPercent: (cpuSeconds(p.cmd.Process.Pid) - cpu[p.name]) / took.Seconds() * 100, RSSMiB: rssMiB(p.cmd.Process.Pid, "VmRSS:")}
		r.Processes[p.name] = c
		r.CPUPercentAll += c.CPUPercent
	}
	var all, counted int
	for _, k := range slices.Sorted(maps.Keys(after)) {
		n := after[k] - before[k]
		f := strings.Fields(k)
		if n == 0 || len(f) < 3 || strings.HasPrefix(f[1], "/_sim") {
			continue
		}
		r.RequestsByRoute[k] += n
		all += n
		if f[2] != "304" && f[1] != "/rate_limit" {
			counted += n
		}
	}
	r.GitHubRequestsPerMinute = float64(all) / took.Minutes()
	r.CountedPerMinute = float64(counted) / took.Minutes()
	return r, nil
}
