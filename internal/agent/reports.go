package agent

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/api/apiclient"
	"github.com/garo-run/garo/internal/backoff"
)

// reporter carries the agent's reports of its runners to the server,
// which hands them to the runners' pools. It group-commits: while one
// request is on its way, later reports wait and go together in the next.
// A report is retried until the server takes it (or its activity ends),
// so that a pool learns of every end the agent saw.
type reporter struct {
	api  *apiclient.Client
	name string
	log  *slog.Logger

	mu       sync.Mutex
	pending  []pendingReport
	inflight bool
}

type pendingReport struct {
	r    activities.PoolRunnerReport
	done chan error
}

// maxReportBatch bounds the reports of one request (the server takes at
// most 1,000).
const maxReportBatch = 500

// Report delivers one report, retrying with backoff while the server is
// unreachable or unavailable.
func (p *reporter) Report(ctx context.Context, pool string, r activities.RunnerReport) error {
	return backoff.Retry(ctx, backoff.Policy{First: 500 * time.Millisecond, Max: 30 * time.Second}, func() error {
		err := p.send(ctx, activities.PoolRunnerReport{Pool: pool, RunnerReport: r})
		var apiErr *apiclient.Error
		if errors.As(err, &apiErr) && apiErr.StatusCode < 500 && apiErr.StatusCode != http.StatusTooManyRequests {
			return backoff.Permanent(err)
		}
		return err
	}, func(err error, wait time.Duration) {
		p.log.Warn("Runner report not delivered; retrying", "runner", r.Runner, "retryIn", wait, "error", err)
	})
}

// send queues a report and waits for the request that carries it.
func (p *reporter) send(ctx context.Context, r activities.PoolRunnerReport) error {
	it := pendingReport{r: r, done: make(chan error, 1)}
	p.mu.Lock()
	p.pending = append(p.pending, it)
	if !p.inflight {
		p.inflight = true
		go p.flush()
	}
	p.mu.Unlock()
	select {
	case err := <-it.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush sends what waits, request after request, until nothing does.
func (p *reporter) flush() {
	for {
		p.mu.Lock()
		n := min(len(p.pending), maxReportBatch)
		if n == 0 {
			p.inflight = false
			p.mu.Unlock()
			return
		}
		batch := slices.Clone(p.pending[:n])
		p.pending = slices.Delete(p.pending, 0, n)
		p.mu.Unlock()
		reports := make([]activities.PoolRunnerReport, len(batch))
		for i, it := range batch {
			reports[i] = it.r
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := p.api.ReportRunners(ctx, p.name, reports)
		cancel()
		for _, it := range batch {
			it.done <- err
		}
	}
}
