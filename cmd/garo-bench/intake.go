package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/garo-run/garo/tests/githubsim"
)

// intakeLabels fit no pool: the intake scenario's jobs wait unmatched,
// recorded by the repository's keeper pool, and no runner starts.
var intakeLabels = []string{"self-hosted", "bench-intake-fits-no-pool"}

// measureIntake measures the webhook intake alone: the scenario's jobs are
// enqueued at once, fit no pool, and the simulator delivers their queued
// webhooks 64 at a time; each is answered once its pool has it durably.
// Every one must be recorded (the keeper's unmatched total).
func measureIntake(ctx context.Context, s *stack, sc Scenario, res *Result, logf func(string, ...any)) error {
	want := sc.Pools * sc.JobsPerPool
	began := time.Now()
	if err := each(ctx, sc.Pools, func(ctx context.Context, i int) error {
		body := map[string]any{"repo": repoName(i), "labels": intakeLabels, "durationMs": sc.JobMs, "count": sc.JobsPerPool}
		_, err := s.simCall(ctx, "POST", "/_sim/jobs", body, nil)
		return err
	}); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	var accept []float64
	for {
		var deliveries []githubsim.Delivery
		if _, err := s.simCall(ctx, "GET", "/_sim/deliveries", nil, &deliveries); err != nil {
			return err
		}
		accept = accept[:0]
		sum := 0.0
		for _, d := range deliveries {
			if d.Event == "workflow_job" && d.Action == "queued" && strings.HasPrefix(d.Repo, "bench/") && d.StatusCode != 0 {
				accept = append(accept, d.Duration*1000)
				sum += d.Duration * 1000
			}
		}
		if len(accept) >= want {
			res.WebhookAcceptMeanMs = sum / float64(len(accept))
			break
		}
		if time.Since(began) > 10*time.Minute {
			return fmt.Errorf("%d of %d deliveries answered after 10 minutes", len(accept), want)
		}
		logf("%d of %d deliveries answered", len(accept), want)
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
	res.Seconds = time.Since(began).Seconds()
	res.JobsPerSecond = float64(want) / res.Seconds
	res.WebhookAcceptMs = quantiles(accept)
	for i := range sc.Pools {
		var u struct {
			Total int `json:"total"`
		}
		if _, err := s.api(ctx, "GET", "/api/v1/repositories/"+repoName(i)+"/unmatched", nil, &u); err != nil {
			return fmt.Errorf("read the unmatched jobs: %w", err)
		}
		res.JobsCompleted += u.Total
	}
	logf("%d deliveries answered in %.1f s; %d jobs recorded", want, res.Seconds, res.JobsCompleted)
	return nil
}
