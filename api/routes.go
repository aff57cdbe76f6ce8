package api

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/garo-run/garo/workflows"
)

// RouteCache knows each repository's pools as routing sees them
// (workflows.Routes), from the memos of their workflows in the visibility
// store. The server routes webhooks with it, so it answers from memory:
// a repository's routes are read once, then again in the background when
// they are older than TTL; a replica's own changes (a pool configured or
// drained) are in it at once. Another replica's are there within TTL, and
// meanwhile the pools themselves route what it sent with older routes.
type RouteCache struct {
	Client    client.Client
	Namespace string
	// Converter decodes the memos: the client's (default: Temporal's).
	Converter converter.DataConverter
	// TTL is how long routes are used before they are read again
	// (default 5s).
	TTL time.Duration

	mu      sync.Mutex
	entries map[string]*routesEntry
}

type routesEntry struct {
	routes     workflows.Routes
	at         time.Time
	refreshing bool
}

// maxCachedRepositories bounds the repositories the cache holds; the
// least recently read go first.
const maxCachedRepositories = 100000

func repoKey(owner, repo string) string { return strings.ToLower(owner + "/" + repo) }

func (c *RouteCache) ttl() time.Duration {
	if c.TTL > 0 {
		return c.TTL
	}
	return 5 * time.Second
}

// Get returns the routes of owner/repo: from memory while fresh; stale
// ones are returned while fresh ones are read in the background.
func (c *RouteCache) Get(ctx context.Context, owner, repo string) (workflows.Routes, error) {
	key := repoKey(owner, repo)
	c.mu.Lock()
	e, ok := c.entries[key]
	if ok {
		r := e.routes
		if time.Since(e.at) > c.ttl() && !e.refreshing {
			e.refreshing = true
			go c.refresh(owner, repo)
		}
		c.mu.Unlock()
		return r, nil
	}
	c.mu.Unlock()
	r, err := c.Fetch(ctx, owner, repo)
	if err != nil {
		return r, err
	}
	c.store(key, r, false)
	return r, nil
}

func (c *RouteCache) refresh(owner, repo string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Fetch(ctx, owner, repo)
	key := repoKey(owner, repo)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return
	}
	e.refreshing = false
	if err == nil {
		c.merge(e, r)
	}
}

// merge takes fetched routes into an entry: they stand unless the entry
// holds a newer version (a change of this replica not yet in the
// visibility store), whose pools are added to them.
func (c *RouteCache) merge(e *routesEntry, fetched workflows.Routes) {
	e.at = time.Now()
	if e.routes.Version <= fetched.Version {
		e.routes = fetched
		return
	}
	for _, p := range fetched.Pools {
		if !e.routes.Has(p.Pool) {
			e.routes = e.routes.With(p)
		}
	}
}

// Put records routes this replica just made (a pool configured or
// drained).
func (c *RouteCache) Put(owner, repo string, r workflows.Routes) {
	c.store(repoKey(owner, repo), r, true)
}

// Forget drops what the cache knows of a repository.
func (c *RouteCache) Forget(owner, repo string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, repoKey(owner, repo))
}

func (c *RouteCache) store(key string, r workflows.Routes, own bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]*routesEntry{}
	}
	e, ok := c.entries[key]
	if !ok {
		if len(c.entries) >= maxCachedRepositories {
			c.evictOldest()
		}
		c.entries[key] = &routesEntry{routes: r, at: time.Now()}
		return
	}
	if own {
		e.routes, e.at = r, time.Now()
		return
	}
	c.merge(e, r)
}

func (c *RouteCache) evictOldest() {
	var oldest string
	var at time.Time
	for k, e := range c.entries {
		if oldest == "" || e.at.Before(at) {
			oldest, at = k, e.at
		}
	}
	delete(c.entries, oldest)
}

// Fetch reads the routes of owner/repo from the memos of its running
// pools; its version is the newest any pool carries.
func (c *RouteCache) Fetch(ctx context.Context, owner, repo string) (workflows.Routes, error) {
	memos, err := c.Pools(ctx, owner, repo)
	if err != nil {
		return workflows.Routes{}, err
	}
	var r workflows.Routes
	for _, m := range memos {
		r = r.With(workflows.RouteEntry{Pool: m.Pool, Labels: m.Config.Labels, Draining: m.Draining})
		r.Version = max(r.Version, m.RoutesVersion)
	}
	return r, nil
}

// maxRepositoryPools bounds the pools read of one repository.
const maxRepositoryPools = 1000

// Pools reads the memos of owner/repo's running pools, by name. A pool
// whose run has not published its memo yet is left out.
func (c *RouteCache) Pools(ctx context.Context, owner, repo string) ([]workflows.PoolMemo, error) {
	query := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND %s = '%s'", workflows.PoolWorkflowName,
		workflows.SearchAttributeRepository.GetName(), repoKey(owner, repo))
	var out []workflows.PoolMemo
	var token []byte
	for len(out) < maxRepositoryPools {
		resp, err := c.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: c.Namespace, Query: query, PageSize: 100, NextPageToken: token})
		if err != nil {
			return nil, mapTemporalError(err)
		}
		for _, e := range resp.GetExecutions() {
			var m workflows.PoolMemo
			found, err := memoSummary(c.Converter, e, &m)
			if err != nil {
				return nil, err
			}
			ref, ok := workflows.ParsePoolWorkflowID(e.GetExecution().GetWorkflowId())
			if !found || !ok || m.Config.Agent == "" {
				continue
			}
			m.Pool = ref.Pool
			out = append(out, m)
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	slices.SortFunc(out, func(a, b workflows.PoolMemo) int { return strings.Compare(a.Pool, b.Pool) })
	return slices.CompactFunc(out, func(a, b workflows.PoolMemo) bool { return a.Pool == b.Pool }), nil
}
