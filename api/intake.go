package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/workflows"
)

// Intake delivers what the server takes in for the pools, webhooks and
// agents' runner reports, as signals to the pools' workflows. It routes
// each job event (RouteCache), and group-commits per pool: while one
// signal to a pool is on its way, what comes for that pool waits, and
// goes in the next signal, all together (a second signal on its way made
// more, smaller signals and no faster answers on a busy Temporal: the
// intake scenario in docs/benchmarks.md). A delivery is
// answered once its signal is durable: at low load one signal per event,
// at high load one per batch.
type Intake struct {
	Client client.Client
	Routes *RouteCache
	// Converter decodes the memo of a pool whose workflow ended, to start
	// it again: the client's (default: Temporal's).
	Converter converter.DataConverter
	Logger    *slog.Logger
	// Linger is how long what need not hurry waits for company (default
	// linger).
	Linger time.Duration
	// Legacy delivers job events to the RepositoryWorkflow of a
	// repository not yet handed over to pools.
	Legacy *TemporalJobs

	mu    sync.Mutex
	pools map[string]*poolIntake
	// The pools whose signal Temporal refused: ResyncRefused asks each to
	// reconcile once Temporal takes signals again.
	refusals
}

type poolIntake struct {
	inflight bool
	// linger holds back what need not hurry while nothing else goes to
	// the pool.
	linger  *time.Timer
	pending []intakeItem
}

// linger is how long what need not hurry (a runner's report, a job's
// start or end) waits for company when nothing else is on its way to its
// pool: the end of a job and of its runner, and the starts and ends of
// jobs that run together, go in one signal, one workflow task. An agent
// or GitHub, not a person, waits for it; a queued job, which a person
// waits on, goes at once.
const linger = 50 * time.Millisecond

type intakeItem struct {
	job    *workflows.JobEvent
	report *activities.RunnerReport
	// version is the routes' version the job was routed with.
	version int64
	done    chan error
}

// urgent tells whether the item is a job that waits for a runner.
func (it intakeItem) urgent() bool {
	return it.job != nil && (it.job.Action == workflows.JobQueued || it.job.Action == workflows.JobWaiting)
}

// maxBatch bounds the events one signal carries.
const maxBatch = 500

func (in *Intake) logger() *slog.Logger {
	if in.Logger != nil {
		return in.Logger
	}
	return slog.Default()
}

// SignalJob routes a job event to its pools and returns once they have
// it: the pool its labels fit (or the repository's keeper of the jobs no
// pool fits), and the pool of the runner it names. ErrNotFound when the
// repository has no pool.
func (in *Intake) SignalJob(ctx context.Context, owner, repo string, ev workflows.JobEvent) error {
	routes, err := in.Routes.Get(ctx, owner, repo)
	if err != nil {
		return fmt.Errorf("routes of %s/%s: %w", owner, repo, err)
	}
	if len(routes.Pools) == 0 {
		if in.Legacy != nil {
			return in.Legacy.SignalJob(ctx, owner, repo, ev)
		}
		return fmt.Errorf("%w: repository %s/%s has no pool", ErrNotFound, owner, repo)
	}
	targets := routeJob(routes, ev)
	errs := make(chan error, len(targets))
	for _, pool := range slices.Sorted(maps.Keys(targets)) {
		e := targets[pool]
		go func() {
			errs <- in.deliver(ctx, workflows.PoolWorkflowID(owner, repo, pool), intakeItem{job: &e, version: routes.Version})
		}()
	}
	var first error
	for range targets {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return fmt.Errorf("deliver job %d to the pools of %s/%s: %w", ev.JobID, owner, repo, first)
	}
	return nil
}

// routeJob decides which pools get a job event, and how: a queued job
// goes to the pool its labels fit best (Routed), or to the pool that
// keeps the jobs no pool fits (Unmatched); a started or ended job to that
// pool too, and to the pool of the runner it names.
func routeJob(routes workflows.Routes, ev workflows.JobEvent) map[string]workflows.JobEvent {
	targets := map[string]workflows.JobEvent{}
	if dest, ok := routes.Route(ev.Labels); ok {
		e := ev
		e.Routed = true
		targets[dest] = e
	} else if k := routes.Keeper(); k != "" {
		e := ev
		e.Unmatched = ev.Action == workflows.JobQueued || ev.Action == workflows.JobWaiting
		targets[k] = e
	}
	if ev.Action == workflows.JobInProgress || ev.Action == workflows.JobCompleted {
		if pool, ok := workflows.PoolOfRunner(ev.RunnerName); ok && routes.Has(pool) {
			if _, dup := targets[pool]; !dup {
				targets[pool] = ev
			}
		}
	}
	return targets
}

// ReportRunners delivers an agent's reports of its runners to their
// pools (by workflow id), and returns once they have them. A pool that
// has ended takes nothing, and is no error.
func (in *Intake) ReportRunners(ctx context.Context, agent string, reports map[string][]activities.RunnerReport) error {
	errs := make(chan error, len(reports))
	n := 0
	for _, pool := range slices.Sorted(maps.Keys(reports)) {
		for _, r := range reports[pool] {
			r.Agent = agent
			n++
			go func() {
				err := in.deliver(ctx, pool, intakeItem{report: &r})
				if errors.Is(err, ErrNotFound) {
					err = nil
				}
				errs <- err
			}()
		}
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// deliver queues an item for a pool and waits until the signal that
// carries it is durable (or ctx ends).
func (in *Intake) deliver(ctx context.Context, pool string, it intakeItem) error {
	it.done = make(chan error, 1)
	in.mu.Lock()
	if in.pools == nil {
		in.pools = map[string]*poolIntake{}
	}
	q, ok := in.pools[pool]
	if !ok {
		q = &poolIntake{}
		in.pools[pool] = q
	}
	q.pending = append(q.pending, it)
	switch {
	case q.inflight:
		// The next signal takes it.
	case !it.urgent():
		if q.linger == nil {
			d := in.Linger
			if d == 0 {
				d = linger
			}
			q.linger = time.AfterFunc(d, func() { in.kick(pool, q) })
		}
	default:
		if q.linger != nil {
			q.linger.Stop()
			q.linger = nil
		}
		q.inflight = true
		go in.flush(pool, q)
	}
	in.mu.Unlock()
	select {
	case err := <-it.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// kick flushes what lingered for a pool, unless a flush is on its way.
func (in *Intake) kick(pool string, q *poolIntake) {
	in.mu.Lock()
	defer in.mu.Unlock()
	q.linger = nil
	if !q.inflight && len(q.pending) > 0 && in.pools[pool] == q {
		q.inflight = true
		go in.flush(pool, q)
	}
}

// flush sends what waits for a pool, batch after batch, until nothing
// does.
func (in *Intake) flush(pool string, q *poolIntake) {
	for {
		in.mu.Lock()
		n := min(len(q.pending), maxBatch)
		if n == 0 {
			q.inflight = false
			delete(in.pools, pool)
			in.mu.Unlock()
			return
		}
		items := slices.Clone(q.pending[:n])
		q.pending = slices.Delete(q.pending, 0, n)
		in.mu.Unlock()
		b := workflows.IntakeBatch{}
		for _, it := range items {
			if it.job != nil {
				b.Jobs = append(b.Jobs, *it.job)
				b.RoutesVersion = max(b.RoutesVersion, it.version)
			}
			if it.report != nil {
				b.Runners = append(b.Runners, *it.report)
			}
		}
		err := in.signal(pool, b)
		for _, it := range items {
			it.done <- err
		}
	}
}

// signal sends one batch. A pool whose workflow is not running: one that
// ended by a drain is gone (ErrNotFound); one terminated, failed or timed
// out is started again from its last memo, to learn what it missed from
// GitHub, and the delivery refused (GitHub's redelivery or the
// reconciliation brings it).
func (in *Intake) signal(pool string, b workflows.IntakeBatch) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := mapTemporalError(in.Client.SignalWorkflow(ctx, pool, "", workflows.SignalIntake, b))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return in.ended(ctx, pool)
	}
	in.remember(pool)
	return err
}

// ended deals with a pool whose workflow is not running.
func (in *Intake) ended(ctx context.Context, pool string) error {
	ref, ok := workflows.ParsePoolWorkflowID(pool)
	if !ok {
		return fmt.Errorf("%w: no pool %s", ErrNotFound, pool)
	}
	in.Routes.Forget(ref.Owner, ref.Repo)
	desc, err := in.Client.DescribeWorkflow(ctx, pool, "")
	if err != nil {
		return mapTemporalError(err)
	}
	info := desc.RawResponse.GetWorkflowExecutionInfo()
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		return fmt.Errorf("%w: pool %s has ended", ErrNotFound, pool)
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return fmt.Errorf("%w: pool %s is between two runs", ErrUnavailable, pool)
	}
	var m workflows.PoolMemo
	if found, err := memoSummary(in.Converter, info, &m); err != nil || !found || m.Config.Validate() != nil {
		return fmt.Errorf("%w: pool %s %s and cannot be started again: its config is unknown", ErrUnavailable, pool,
			strings.ToLower(info.GetStatus().String()))
	}
	in.logger().Warn("Pool's workflow ended unexpectedly; starting it again from its last config, to learn what it missed from GitHub",
		"pool", pool, "status", info.GetStatus().String())
	key := repoKey(ref.Owner, ref.Repo)
	// Its routes: the other pools', and its own as its memo has it.
	routes, err := in.Routes.Fetch(ctx, ref.Owner, ref.Repo)
	if err != nil {
		return fmt.Errorf("%w: read the routes of %s to start pool %s again: %v", ErrUnavailable, ref.Repository(), pool, err)
	}
	routes = routes.With(workflows.RouteEntry{Pool: ref.Pool, Labels: m.Config.Labels, Draining: m.Draining})
	routes.Version = max(routes.Version, m.RoutesVersion) + 1
	carried := &workflows.PoolCarried{Configured: true, Config: m.Config, ConfiguredBy: m.ConfiguredBy, Draining: m.Draining,
		ReconcileNow: true, AgentUnchecked: true, Routes: routes}
	_, err = in.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       pool,
		TaskQueue:                workflows.ServerTaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchAttributeRepository.ValueSet(key),
			workflows.SearchAttributePool.ValueSet(key+"/"+ref.Pool),
			workflows.SearchAttributeAgent.ValueSet(m.Config.Agent),
			workflows.SearchAttributeAgents.ValueSet([]string{m.Config.Agent})),
		StaticSummary: "runner pool " + ref.Pool + " of " + ref.Repository(),
	}, workflows.PoolWorkflowName, workflows.PoolInput{Owner: ref.Owner, Repo: ref.Repo, Pool: ref.Pool,
		Version: workflows.PoolVersionCurrent, Carried: carried})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &started) {
		return fmt.Errorf("%w: start pool %s again: %v", ErrUnavailable, pool, err)
	}
	return fmt.Errorf("%w: pool %s was not running; started again", ErrUnavailable, pool)
}

// ResyncRefused asks, every interval until ctx ends, each pool whose
// signal was refused to reconcile (refusals.resync).
func (in *Intake) ResyncRefused(ctx context.Context, interval time.Duration, log *slog.Logger) {
	in.resync(ctx, in.Client, interval, log)
}

// refusals remembers the workflows whose signal Temporal refused, with
// when it first did.
type refusals struct {
	refusedMu sync.Mutex
	refused   map[string]time.Time
}

// maxRefused bounds the workflows remembered for a resync.
const maxRefused = 10000

// remember records a refusal of id.
func (r *refusals) remember(id string) {
	r.refusedMu.Lock()
	defer r.refusedMu.Unlock()
	if r.refused == nil {
		r.refused = map[string]time.Time{}
	}
	if _, ok := r.refused[id]; !ok && len(r.refused) < maxRefused {
		r.refused[id] = time.Now()
	}
}

// resync signals resync, every interval until ctx ends, to each workflow
// whose signal was refused, until it takes it (or is gone): it reconciles
// with GitHub, and has GitHub redeliver what failed since a minute before
// the first refusal. One that refuses again is tried at the next tick,
// and the others are tried meanwhile.
func (r *refusals) resync(ctx context.Context, c client.Client, interval time.Duration, log *slog.Logger) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.refusedMu.Lock()
		firsts := maps.Clone(r.refused)
		r.refusedMu.Unlock()
		resyncAll(ctx, c, firsts, func(id string) {
			r.refusedMu.Lock()
			delete(r.refused, id)
			r.refusedMu.Unlock()
		}, log)
	}
}

// resyncAll signals resync to each workflow of firsts (with when its first
// webhook was refused), and calls done for those that took it or are
// gone. It goes on past a workflow that refuses.
func resyncAll(ctx context.Context, c client.Client, firsts map[string]time.Time, done func(id string), log *slog.Logger) {
	for _, id := range slices.Sorted(maps.Keys(firsts)) {
		since := firsts[id].Add(-time.Minute).UTC()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := mapTemporalError(c.SignalWorkflow(sctx, id, "", workflows.SignalResync,
			workflows.ResyncRequest{Reason: "a webhook was refused while Temporal was unavailable", FailedSince: &since}))
		cancel()
		switch {
		case err == nil:
			done(id)
			log.Info("Asked to reconcile with GitHub: a webhook for it was refused while Temporal was unavailable", "workflow", id)
		case errors.Is(err, ErrNotFound):
			done(id)
		default:
			log.Warn("Not yet asked to reconcile with GitHub; trying again", "workflow", id, "error", err)
		}
		if ctx.Err() != nil {
			return
		}
	}
}
