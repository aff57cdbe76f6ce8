package api

import (
	"cmp"
	"context"
	"errors"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/garo-run/garo/workflows"
)

// Usage is read from each repository's workflow (QueryUsage); a listing
// of many repositories asks at most usageQueries of them at once.
const (
	usageQueries = 8
	// topUsage is how many repositories GET /api/v1/usage ranks.
	topUsage = 10
	// maxUnavailable bounds the repositories a usage answer names as
	// unreadable.
	maxUnavailable = 20
	// DefaultUsageWindow is the window of a usage request that names none.
	DefaultUsageWindow = "24h"
	// usageFresh is how long a repository's usage is reused: a portal
	// reads everyone's, each agent's and each repository's usage at once,
	// and each costs its repositories' workflows a query.
	usageFresh = 10 * time.Second
	// usageCached bounds the entries of the cache before the stale go.
	usageCached = 10000
)

// usageCache keeps each repository's usage over each window for
// usageFresh.
type usageCache struct {
	mu      sync.Mutex
	entries map[string]usageEntry
}

type usageEntry struct {
	at time.Time
	u  workflows.RepositoryUsage
}

// usageOf is owner/repo's usage over req's window: a reading at most
// usageFresh old, or a new one.
func (h *handlers) usageOf(ctx context.Context, owner, repo string, req workflows.UsageRequest) (workflows.RepositoryUsage, error) {
	key := req.Window + "\x00" + strings.ToLower(owner+"/"+repo)
	c := h.usages
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && req.Now.Sub(e.at) < usageFresh && !req.Now.Before(e.at) {
		return e.u, nil
	}
	u, err := h.cfg.Repositories.Usage(ctx, owner, repo, req)
	if err != nil {
		return u, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= usageCached {
		for k, old := range c.entries {
			if req.Now.Sub(old.at) >= usageFresh {
				delete(c.entries, k)
			}
		}
	}
	if len(c.entries) < usageCached {
		c.entries[key] = usageEntry{at: req.Now, u: u}
	}
	return u, nil
}

// UsageFigures are the usage of a span of time, as the API shows them.
type UsageFigures struct {
	Jobs              JobFigures    `json:"jobs"`
	QueueWait         QueueWait     `json:"queueWait"`
	RunnerMinutes     RunnerMinutes `json:"runnerMinutes"`
	BootstrapFailures int           `json:"bootstrapFailures"`
	Cost              CostFigures   `json:"cost"`
}

// JobFigures count jobs by how they ended: Served ran to their end on a
// runner (Failed of them did not succeed); Lost lost their runner mid-job.
type JobFigures struct {
	Served int `json:"served"`
	Failed int `json:"failed"`
	Lost   int `json:"lost"`
}

// QueueWait is how long jobs waited from queued to in progress: p50 and
// p95 within 5 %, the maximum exact.
type QueueWait struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50Seconds"`
	P95   float64 `json:"p95Seconds"`
	Max   float64 `json:"maxSeconds"`
}

// RunnerMinutes is runner time by what the runners did.
type RunnerMinutes struct {
	Busy    float64 `json:"busy"`
	Idle    float64 `json:"idle"`
	Booting float64 `json:"booting"`
}

// CostFigures is the estimated cost, at each pool's hourlyPrice: Useful
// for busy time, Waste for idle and booting time.
type CostFigures struct {
	Useful float64 `json:"useful"`
	Waste  float64 `json:"waste"`
	Total  float64 `json:"total"`
}

// UsagePoint is the figures of one bucket of a window.
type UsagePoint struct {
	Start   time.Time    `json:"start"`
	Figures UsageFigures `json:"figures"`
}

// UsageSpan says which window a usage answer covers: From (the start of
// its first bucket) to To, in buckets of Step.
type UsageSpan struct {
	Window string    `json:"window"`
	Step   string    `json:"step"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
}

// PoolUsage is one pool's usage while one agent served it.
type PoolUsage struct {
	Pool    string       `json:"pool"`
	Agent   string       `json:"agent"`
	Figures UsageFigures `json:"figures"`
}

// RepositoryUsage is one repository's figures.
type RepositoryUsage struct {
	Repository string       `json:"repository"`
	Figures    UsageFigures `json:"figures"`
}

// RepositoryUsageReport answers GET .../repositories/{owner}/{repo}/usage.
type RepositoryUsageReport struct {
	Repository string `json:"repository"`
	UsageSpan
	Figures UsageFigures `json:"figures"`
	Pools   []PoolUsage  `json:"pools"`
	Series  []UsagePoint `json:"series"`
}

// AgentUsageReport answers GET /api/v1/agents/{name}/usage: the pools the
// agent serves now, over the window.
type AgentUsageReport struct {
	Agent string `json:"agent"`
	UsageSpan
	Figures      UsageFigures      `json:"figures"`
	Repositories []RepositoryUsage `json:"repositories"`
	Series       []UsagePoint      `json:"series"`
	// Unavailable names repositories whose usage could not be read.
	Unavailable []string `json:"unavailable,omitempty"`
}

// UsageReport answers GET /api/v1/usage: every repository's usage summed,
// and the repositories that cost most and waited longest (p95).
type UsageReport struct {
	UsageSpan
	Figures      UsageFigures      `json:"figures"`
	Repositories int               `json:"repositories"`
	TopByCost    []RepositoryUsage `json:"topByCost"`
	TopByWait    []RepositoryUsage `json:"topByWait"`
	Series       []UsagePoint      `json:"series"`
	Unavailable  []string          `json:"unavailable,omitempty"`
}

// figures shows a bucket's figures: minutes to the millisecond, seconds of
// wait to the tenth (the maximum to the millisecond), costs to 1/10000.
func figures(b workflows.UsageBucket) UsageFigures {
	minutes := func(ms int64) float64 { return round(float64(ms)/60000, 1000) }
	q := b.Waits.Quantiles(0.5, 0.95)
	return UsageFigures{
		Jobs: JobFigures{Served: b.Served, Failed: b.Failed, Lost: b.Lost},
		QueueWait: QueueWait{Count: b.Waits.Count, P50: round(q[0], 10),
			P95: round(q[1], 10), Max: round(b.Waits.Max, 1000)},
		RunnerMinutes:     RunnerMinutes{Busy: minutes(b.BusyMs), Idle: minutes(b.IdleMs), Booting: minutes(b.BootingMs)},
		BootstrapFailures: b.BootstrapFailures,
		Cost: CostFigures{Useful: round(b.UsefulCost, 1e4), Waste: round(b.WasteCost, 1e4),
			Total: round(b.UsefulCost+b.WasteCost, 1e4)},
	}
}

func round(f float64, per float64) float64 { return math.Round(f*per) / per }

// usageSum adds up buckets: a total, and a series by bucket start.
type usageSum struct {
	total  workflows.UsageBucket
	series []workflows.UsageBucket
}

func (s *usageSum) add(buckets []workflows.UsageBucket) {
	for _, b := range buckets {
		s.total.Add(b)
		i, found := slices.BinarySearchFunc(s.series, b.Start, func(x workflows.UsageBucket, t int64) int { return cmp.Compare(x.Start, t) })
		if !found {
			s.series = slices.Insert(s.series, i, workflows.UsageBucket{Start: b.Start})
		}
		s.series[i].Add(b)
	}
}

func (s *usageSum) points() []UsagePoint {
	out := make([]UsagePoint, 0, len(s.series))
	for _, b := range s.series {
		out = append(out, UsagePoint{Start: time.Unix(b.Start, 0).UTC(), Figures: figures(b)})
	}
	return out
}

// usageWindow reads ?window= (DefaultUsageWindow when absent); on failure
// it has answered 400.
func usageWindow(w http.ResponseWriter, r *http.Request) (workflows.UsageWindow, bool) {
	name := r.URL.Query().Get("window")
	if name == "" {
		name = DefaultUsageWindow
	}
	win, err := workflows.ParseUsageWindow(name)
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, err.Error())
		return workflows.UsageWindow{}, false
	}
	return win, true
}

func (h *handlers) usageSpan(win workflows.UsageWindow) (UsageSpan, workflows.UsageRequest) {
	now := h.now().UTC()
	return UsageSpan{Window: win.Name, Step: win.Step.String(), From: win.From(now), To: now},
		workflows.UsageRequest{Window: win.Name, Now: now}
}

// repositoryUsage answers GET /api/v1/repositories/{owner}/{repo}/usage.
func (h *handlers) repositoryUsage(w http.ResponseWriter, r *http.Request) {
	owner, repo, ok := h.repoParams(w, r)
	if !ok {
		return
	}
	win, ok := usageWindow(w, r)
	if !ok {
		return
	}
	span, req := h.usageSpan(win)
	u, err := h.usageOf(r.Context(), owner, repo, req)
	if errors.Is(err, ErrNotFound) {
		writeProblem(w, r, http.StatusNotFound, ProblemNotFound, "repository "+owner+"/"+repo+" has no pools")
		return
	}
	if err != nil {
		h.backendError(w, r, "usage of "+owner+"/"+repo, err)
		return
	}
	out := RepositoryUsageReport{Repository: u.Repository, UsageSpan: span, Pools: []PoolUsage{}}
	var sum usageSum
	for _, l := range u.Pools {
		var pool usageSum
		pool.add(l.Buckets)
		sum.add(l.Buckets)
		out.Pools = append(out.Pools, PoolUsage{Pool: l.Pool, Agent: l.Agent, Figures: figures(pool.total)})
	}
	out.Figures, out.Series = figures(sum.total), sum.points()
	writeJSON(w, http.StatusOK, out)
}

// agentUsage answers GET /api/v1/agents/{name}/usage: the usage of the
// pools the agent serves or served within the window, in every
// repository that has one.
func (h *handlers) agentUsage(w http.ResponseWriter, r *http.Request) {
	name, ok := h.agentName(w, r)
	if !ok {
		return
	}
	win, ok := usageWindow(w, r)
	if !ok {
		return
	}
	if _, err := h.cfg.Agents.Get(r.Context(), name); err != nil {
		h.backendError(w, r, "get agent "+name, err)
		return
	}
	span, req := h.usageSpan(win)
	all, unavailable, err := h.collectUsage(r.Context(), req)
	if err != nil {
		h.backendError(w, r, "usage of agent "+name, err)
		return
	}
	out := AgentUsageReport{Agent: name, UsageSpan: span, Repositories: []RepositoryUsage{}, Unavailable: unavailable}
	var sum usageSum
	for _, u := range all {
		var repo usageSum
		served := slices.ContainsFunc(u.view.Pools, func(p workflows.PoolView) bool { return p.Config.Agent == name })
		for _, l := range u.usage.Pools {
			if l.Agent == name {
				served = true
				repo.add(l.Buckets)
				sum.add(l.Buckets)
			}
		}
		if served {
			out.Repositories = append(out.Repositories, RepositoryUsage{Repository: u.usage.Repository, Figures: figures(repo.total)})
		}
	}
	out.Figures, out.Series = figures(sum.total), sum.points()
	writeJSON(w, http.StatusOK, out)
}

// usage answers GET /api/v1/usage.
func (h *handlers) usage(w http.ResponseWriter, r *http.Request) {
	win, ok := usageWindow(w, r)
	if !ok {
		return
	}
	span, req := h.usageSpan(win)
	all, unavailable, err := h.collectUsage(r.Context(), req)
	if err != nil {
		h.backendError(w, r, "usage", err)
		return
	}
	out := UsageReport{UsageSpan: span, Repositories: len(all), Unavailable: unavailable}
	var sum usageSum
	type ranked struct {
		RepositoryUsage
		total workflows.UsageBucket
	}
	repos := make([]ranked, 0, len(all))
	for _, u := range all {
		var repo usageSum
		for _, l := range u.usage.Pools {
			repo.add(l.Buckets)
			sum.add(l.Buckets)
		}
		repos = append(repos, ranked{RepositoryUsage{Repository: u.usage.Repository, Figures: figures(repo.total)}, repo.total})
	}
	out.Figures, out.Series = figures(sum.total), sum.points()
	top := func(less func(a, b ranked) int, keep func(ranked) bool) []RepositoryUsage {
		s := slices.Clone(repos)
		slices.SortStableFunc(s, func(a, b ranked) int { return cmp.Or(less(a, b), cmp.Compare(a.Repository, b.Repository)) })
		out := []RepositoryUsage{}
		for _, x := range s {
			if len(out) < topUsage && keep(x) {
				out = append(out, x.RepositoryUsage)
			}
		}
		return out
	}
	// By cost, then (with no prices set) by runner time.
	out.TopByCost = top(func(a, b ranked) int {
		return cmp.Or(cmp.Compare(b.Figures.Cost.Total, a.Figures.Cost.Total),
			cmp.Compare(b.total.BusyMs+b.total.IdleMs+b.total.BootingMs, a.total.BusyMs+a.total.IdleMs+a.total.BootingMs))
	}, func(x ranked) bool { return x.total.BusyMs+x.total.IdleMs+x.total.BootingMs > 0 })
	out.TopByWait = top(func(a, b ranked) int {
		return cmp.Or(cmp.Compare(b.Figures.QueueWait.P95, a.Figures.QueueWait.P95), cmp.Compare(b.Figures.QueueWait.Max, a.Figures.QueueWait.Max))
	}, func(x ranked) bool { return x.total.Waits.Count > 0 })
	writeJSON(w, http.StatusOK, out)
}

// usageReading is a repository, as its memo shows it, and its usage.
type usageReading struct {
	view  workflows.RepositoryView
	usage workflows.RepositoryUsage
}

// collectUsage reads the usage of every repository with a pool,
// usageQueries at a time. A repository whose usage cannot be read is
// named in unavailable (at most maxUnavailable) and left out.
func (h *handlers) collectUsage(ctx context.Context, req workflows.UsageRequest) (out []usageReading, unavailable []string, err error) {
	repos, err := listAllRepositories(ctx, h.cfg.Repositories)
	if err != nil {
		return nil, nil, err
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(usageQueries)
	for _, v := range repos {
		g.Go(func() error {
			owner, repo, err := workflows.ParseRepository(v.Repository)
			var u workflows.RepositoryUsage
			if err == nil {
				u, err = h.usageOf(gctx, owner, repo, req)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrNotFound):
				// It ended since the listing.
			case err != nil:
				h.log.Warn("Usage of a repository could not be read", "repository", v.Repository, "error", err)
				unavailable = append(unavailable, v.Repository)
			default:
				out = append(out, usageReading{view: v, usage: u})
			}
			return nil
		})
	}
	_ = g.Wait() // each error is kept above
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	slices.SortFunc(out, func(a, b usageReading) int { return cmp.Compare(a.usage.Repository, b.usage.Repository) })
	slices.Sort(unavailable)
	return out, unavailable[:min(len(unavailable), maxUnavailable)], nil
}

// listAllRepositories lists every running repository, page by page.
func listAllRepositories(ctx context.Context, repos Repositories) ([]workflows.RepositoryView, error) {
	var all []workflows.RepositoryView
	for cursor := ""; ; {
		page, next, err := repos.List(ctx, configPageSize, cursor, "")
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" || next == cursor {
			return all, nil
		}
		cursor = next
	}
}
