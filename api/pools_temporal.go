package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"github.com/garo-run/garo/workflows"
)

// TemporalRepositories implements Repositories on PoolWorkflows: one workflow per
// pool. A repository is the set of its pools; its routes (RouteCache) are
// sent to each of them when they change. A repository still served by a
// RepositoryWorkflow of a release before pools is read from that, and
// handed over to pools before any of its pools changes.
type TemporalRepositories struct {
	Client    client.Client
	Namespace string
	// Cursors seal the page tokens of the pool listing.
	Cursors *Cursors
	// Converter decodes the memos the listing carries: the client's
	// (default: Temporal's, unencrypted).
	Converter converter.DataConverter
	Routes    *RouteCache
	Logger    *slog.Logger
	// Legacy reads and migrates the repositories of a release before pools.
	Legacy *LegacyRepositories
}

func (t *TemporalRepositories) logger() *slog.Logger {
	if t.Logger != nil {
		return t.Logger
	}
	return slog.Default()
}

// poolQueries bounds the pools of one repository read at once.
const poolQueries = 8

// ConfigurePool starts the pool's workflow if it is not running and sends
// it the validated configure update, in one call; then it tells the
// repository's other pools the new routes.
func (t *TemporalRepositories) ConfigurePool(ctx context.Context, owner, repo string, req workflows.ConfigureRequest) (workflows.PoolView, error) {
	if err := t.migrate(ctx, owner, repo); err != nil {
		return workflows.PoolView{}, err
	}
	name := req.PoolName()
	routes, err := t.Routes.Fetch(ctx, owner, repo)
	if err != nil {
		return workflows.PoolView{}, err
	}
	if cached, err := t.Routes.Get(ctx, owner, repo); err == nil {
		for _, p := range cached.Pools {
			if !routes.Has(p.Pool) {
				routes = routes.With(p)
			}
		}
	}
	if !routes.Has(name) && len(routes.Pools) >= workflows.MaxPools {
		return workflows.PoolView{}, &RejectedError{Type: workflows.ErrTypeInvalidRequest,
			Message: fmt.Sprintf("a repository has at most %d pools", workflows.MaxPools)}
	}
	routes = routes.With(workflows.RouteEntry{Pool: name, Labels: req.Config.Labels})
	routes.Version = max(routes.Version+1, time.Now().UnixMilli())
	req.Routes = &routes
	key := repoKey(owner, repo)
	opts := client.StartWorkflowOptions{
		ID:                    workflows.PoolWorkflowID(owner, repo, name),
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchAttributeRepository.ValueSet(key),
			workflows.SearchAttributePool.ValueSet(key+"/"+name),
			workflows.SearchAttributeAgent.ValueSet(req.Config.Agent),
			workflows.SearchAttributeAgents.ValueSet([]string{req.Config.Agent})),
		StaticSummary: "runner pool " + name + " of " + owner + "/" + repo,
	}
	in := workflows.PoolInput{Owner: owner, Repo: repo, Pool: name, Version: workflows.PoolVersionCurrent, Routes: &routes}
	deadline := time.Now().Add(closingRetry)
	var v workflows.PoolView
	for {
		err = runUpdateWithStart(ctx, t.Client, opts, workflows.PoolWorkflowName, in, workflows.UpdateConfigure, req, &v)
		var rej *RejectedError
		if !errors.As(err, &rej) || rej.Type != workflows.ErrTypeClosing || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil {
		return v, err
	}
	routes = routes.With(workflows.RouteEntry{Pool: name, Labels: v.Config.Labels, Draining: v.Draining})
	t.Routes.Put(owner, repo, routes)
	t.tellRoutes(ctx, owner, repo, routes, name)
	return v, nil
}

// tellRoutes sends the repository's routes to its pools but except: each
// hands on what another now fits better. A pool that misses them routes
// with its own until the next change, and reconciles with GitHub anyway.
func (t *TemporalRepositories) tellRoutes(ctx context.Context, owner, repo string, routes workflows.Routes, except string) {
	for _, p := range routes.Pools {
		if p.Pool == except {
			continue
		}
		err := t.Client.SignalWorkflow(ctx, workflows.PoolWorkflowID(owner, repo, p.Pool), "", workflows.SignalRoutes, routes)
		if err != nil && !errors.Is(mapTemporalError(err), ErrNotFound) {
			t.logger().Warn("A pool did not take its repository's new routes; it routes with its own until the next change",
				"repository", owner+"/"+repo, "pool", p.Pool, "error", err)
		}
	}
}

// pools lists the names of the repository's running pools: those the
// visibility store lists, and those this replica changed just now.
func (t *TemporalRepositories) pools(ctx context.Context, owner, repo string) ([]string, error) {
	memos, err := t.Routes.Pools(ctx, owner, repo)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range memos {
		names = append(names, m.Pool)
	}
	if cached, err := t.Routes.Get(ctx, owner, repo); err == nil {
		for _, p := range cached.Pools {
			if !slices.Contains(names, p.Pool) {
				names = append(names, p.Pool)
			}
		}
	}
	slices.Sort(names)
	return names, nil
}

// Get returns the repository's pools, each from its workflow, with the
// jobs no pool fits; ErrNotFound when it has no pool.
func (t *TemporalRepositories) Get(ctx context.Context, owner, repo string) (workflows.RepositoryView, error) {
	names, err := t.pools(ctx, owner, repo)
	if err != nil {
		return workflows.RepositoryView{}, err
	}
	if len(names) == 0 && t.Legacy != nil {
		return t.Legacy.Get(ctx, owner, repo)
	}
	statuses := make([]*workflows.PoolStatus, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(poolQueries)
	for i, name := range names {
		g.Go(func() error {
			var st workflows.PoolStatus
			err := queryRunning(gctx, t.Client, workflows.PoolWorkflowID(owner, repo, name), &st)
			switch {
			case errors.Is(err, ErrNotFound):
				return nil // it ended since the listing
			case err != nil:
				return fmt.Errorf("pool %s: %w", name, err)
			}
			statuses[i] = &st
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return workflows.RepositoryView{}, err
	}
	v := workflows.RepositoryView{Repository: owner + "/" + repo, Pools: []workflows.PoolView{}}
	for _, st := range statuses {
		if st == nil {
			continue
		}
		v.Repository = st.Repository
		v.Pools = append(v.Pools, st.PoolView)
		v.Unmatched = append(v.Unmatched, st.Unmatched...)
		v.UnmatchedTotal += st.UnmatchedTotal
	}
	if len(v.Pools) == 0 {
		return v, fmt.Errorf("%w: repository %s/%s has no pool", ErrNotFound, owner, repo)
	}
	slices.SortStableFunc(v.Unmatched, func(a, b workflows.QueuedJob) int { return a.QueuedAt.Compare(b.QueuedAt) })
	v.Unmatched = slices.CompactFunc(v.Unmatched, func(a, b workflows.QueuedJob) bool { return a.JobID == b.JobID })
	v.UnmatchedJobs = len(v.Unmatched)
	return v, nil
}

// Usage reads the usage of each of the repository's pools.
func (t *TemporalRepositories) Usage(ctx context.Context, owner, repo string, req workflows.UsageRequest) (workflows.RepositoryUsage, error) {
	names, err := t.pools(ctx, owner, repo)
	if err != nil {
		return workflows.RepositoryUsage{}, err
	}
	if len(names) == 0 && t.Legacy != nil {
		return t.Legacy.Usage(ctx, owner, repo, req)
	}
	var (
		mu  sync.Mutex
		out = workflows.RepositoryUsage{Repository: owner + "/" + repo, Window: req.Window, Pools: []workflows.LedgerUsage{}}
		any bool
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(poolQueries)
	for _, name := range names {
		g.Go(func() error {
			var u workflows.RepositoryUsage
			err := queryRunningAs(gctx, t.Client, workflows.PoolWorkflowID(owner, repo, name), workflows.QueryUsage, &u, req)
			switch {
			case errors.Is(err, ErrNotFound):
				return nil
			case err != nil:
				return fmt.Errorf("usage of pool %s: %w", name, err)
			}
			mu.Lock()
			defer mu.Unlock()
			any = true
			out.Repository, out.Window, out.From, out.To = u.Repository, u.Window, u.From, u.To
			out.Pools = append(out.Pools, u.Pools...)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return out, err
	}
	if !any {
		return out, fmt.Errorf("%w: repository %s/%s has no pool", ErrNotFound, owner, repo)
	}
	slices.SortFunc(out.Pools, func(a, b workflows.LedgerUsage) int {
		if c := strings.Compare(a.Pool, b.Pool); c != 0 {
			return c
		}
		return strings.Compare(a.Agent, b.Agent)
	})
	return out, nil
}

// DrainPool drains a pool, or every pool of req.Agent, and tells the
// repository's pools the new routes.
func (t *TemporalRepositories) DrainPool(ctx context.Context, owner, repo string, req workflows.DrainRequest) (workflows.RepositoryView, error) {
	if err := t.migrate(ctx, owner, repo); err != nil {
		return workflows.RepositoryView{}, err
	}
	names := []string{req.PoolName()}
	if req.Agent != "" {
		all, err := t.pools(ctx, owner, repo)
		if err != nil {
			return workflows.RepositoryView{}, err
		}
		names = all
	}
	routes, err := t.Routes.Get(ctx, owner, repo)
	if err != nil {
		return workflows.RepositoryView{}, err
	}
	var views []workflows.PoolView
	for _, name := range names {
		var v workflows.PoolView
		err := runUpdate(ctx, t.Client, workflows.PoolWorkflowID(owner, repo, name), workflows.UpdateDrain, req, &v)
		if errors.Is(err, ErrNotFound) && req.Agent != "" {
			continue
		}
		if err != nil {
			return workflows.RepositoryView{}, err
		}
		if v.Draining {
			routes = routes.With(workflows.RouteEntry{Pool: name, Labels: v.Config.Labels, Draining: true})
			views = append(views, v)
		}
	}
	if len(views) > 0 {
		routes.Version = max(routes.Version+1, time.Now().UnixMilli())
		t.Routes.Put(owner, repo, routes)
		t.tellRoutes(ctx, owner, repo, routes, "")
	}
	// A pool with no runner ends as it drains: the view has it as the
	// drain left it.
	v, err := t.Get(ctx, owner, repo)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return v, err
	}
	for _, d := range views {
		if i := slices.IndexFunc(v.Pools, func(p workflows.PoolView) bool { return p.Pool == d.Pool }); i >= 0 {
			v.Pools[i] = d
		} else {
			v.Pools = append(v.Pools, d)
		}
	}
	if len(v.Pools) == 0 {
		return v, err
	}
	v.Repository = owner + "/" + repo
	slices.SortFunc(v.Pools, func(a, b workflows.PoolView) int { return strings.Compare(a.Pool, b.Pool) })
	return v, nil
}

// List returns a page of pools from the visibility store's memos, a
// RepositoryView for each repository of the page (a repository whose
// pools fall on two pages is on both).
func (t *TemporalRepositories) List(ctx context.Context, limit int, cursor, agent string) ([]workflows.RepositoryView, string, error) {
	execs, next, err := listRunning(ctx, t.Client, t.Cursors, t.Namespace, workflows.PoolWorkflowName, agent, limit, cursor)
	if err != nil {
		return nil, "", err
	}
	var out []workflows.RepositoryView
	for _, e := range execs {
		ref, ok := workflows.ParsePoolWorkflowID(e.GetExecution().GetWorkflowId())
		if !ok {
			continue
		}
		var m workflows.PoolMemo
		found, err := memoSummary(t.Converter, e, &m)
		if err != nil {
			return nil, "", err
		}
		if !found || m.Config.Agent == "" {
			continue // not configured yet
		}
		m.Pool = ref.Pool
		if m.Repository == "" {
			m.Repository = ref.Repository()
		}
		i := slices.IndexFunc(out, func(v workflows.RepositoryView) bool { return strings.EqualFold(v.Repository, m.Repository) })
		if i < 0 {
			out = append(out, workflows.RepositoryView{Repository: m.Repository})
			i = len(out) - 1
		}
		out[i].Pools = append(out[i].Pools, m.PoolView)
	}
	for i := range out {
		slices.SortFunc(out[i].Pools, func(a, b workflows.PoolView) int { return strings.Compare(a.Pool, b.Pool) })
	}
	if t.Legacy != nil && cursor == "" {
		// Repositories not yet handed over to pools.
		legacy, _, err := t.Legacy.List(ctx, limit, "", agent)
		if err != nil {
			return nil, "", err
		}
		out = append(out, legacy...)
	}
	return out, next, nil
}

// migrate hands a repository of a release before pools over to pools, if
// its RepositoryWorkflow is still running, and waits until it has.
func (t *TemporalRepositories) migrate(ctx context.Context, owner, repo string) error {
	if t.Legacy == nil {
		return nil
	}
	return t.Legacy.Migrate(ctx, owner, repo)
}
