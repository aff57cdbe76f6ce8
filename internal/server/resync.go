package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/garo-run/garo/internal/temporalclient"
	"github.com/garo-run/garo/workflows"
)

// Warm-up of a starting server.
const (
	// warmUpFor bounds how long a starting server waits for the warm-up
	// before it says it is ready anyway (it goes on in the background).
	warmUpFor = 30 * time.Second
	// warmUpParallel is how many repositories are warmed up at once.
	warmUpParallel = 16
)

// resyncRepositories asks every running repository to reconcile with
// GitHub now (signal resync): webhooks sent while no server took them are
// not sent again by GitHub. It queries each repository's state too, so that
// the first reads after a restart are fast: a workflow last run by a worker
// that died waits a few seconds for that worker before another takes it,
// and the warm-up pays that wait once, in parallel, before the server says
// it is ready. It returns when every repository was reached, or when ctx
// ends.
func (s *server) resyncRepositories(ctx context.Context) {
	began := time.Now()
	var (
		wg          sync.WaitGroup
		mu          sync.Mutex
		done, fails int
	)
	if s.legacy != nil {
		if _, err := s.legacy.MigrateAll(ctx, s.log); err != nil {
			s.log.Warn("Repositories of the release before pools not asked to hand over; they are asked before their next change",
				"error", err)
		}
	}
	slots := make(chan struct{}, warmUpParallel)
	err := temporalclient.EachWorkflow(ctx, s.client, s.cfg.Temporal.Namespace, workflows.RunningQuery(workflows.PoolWorkflowName, ""), func(id string) {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			err := s.warmUp(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			done++
			if err != nil {
				fails++
				s.log.Warn("Pool not asked to reconcile", "workflow", id, "error", err)
			}
		}()
	})
	wg.Wait()
	if err != nil {
		s.log.Warn("Running pools not listed; they reconcile on their own within a minute", "error", err)
	}
	s.log.Info("Pools asked to reconcile with GitHub", "pools", done, "failed", fails,
		"took", time.Since(began).Round(time.Millisecond))
}

// warmUp signals resync to one pool and reads its state.
func (s *server) warmUp(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := s.client.SignalWorkflow(ctx, id, "", workflows.SignalResync,
		workflows.ResyncRequest{Reason: "a server started"}); err != nil {
		return fmt.Errorf("signal resync: %w", err)
	}
	v, err := s.client.QueryWorkflow(ctx, id, "", workflows.QueryState)
	if err != nil {
		return fmt.Errorf("query state: %w", err)
	}
	var st workflows.PoolStatus
	return v.Get(&st)
}
