package workflows

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Limits of a repository's bookkeeping.
const (
	dedupeWindow = 10000
	// unmatchedMaxAge: GitHub cancels a job that waited this long for a
	// runner, so it leaves the unmatched list.
	unmatchedMaxAge = 24 * time.Hour
)

// The workflow.GetVersion changes of the repository engine, each recorded
// at version 1 by every run of the support window (supported):
//   - severalPoolsVersion: several pools a repository;
//   - leanLoopVersion: one timer across the loop's turns (alarm), a memo
//     whose counts alone changed published at most every memoEvery, and
//     continue-as-new only once the controls to runners are delivered;
//   - agentActivityIDsVersion: every activity on an agent's task queue
//     has an id that starts with "agent/NAME/" (AgentActivityID), what
//     Temporal's authorizer checks an agent's task token against.
const (
	severalPoolsVersion     = "several-pools"
	leanLoopVersion         = "lean-loop"
	agentActivityIDsVersion = "agent-activity-ids"
)

// memoEvery is how often, at most, the memo is upserted for counts alone;
// a change of configuration, state or error, and a pool's first runner or
// queued job (or its last), is published at once.
const memoEvery = 5 * time.Second

// RepositoryWorkflow owns the runner pools of one repository: each pool's
// config, runners and FIFO queue of jobs waiting for a runner, and the
// jobs no pool fits. It routes each job to one pool.
func RepositoryWorkflow(ctx workflow.Context, in RepositoryInput) (RepositoryView, error) {
	if _, _, err := ParseRepository(in.Owner + "/" + in.Repo); err != nil {
		return RepositoryView{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidRequest, nil)
	}
	r := &repository{owner: in.Owner, repo: in.Repo, seen: map[string]bool{}, tracked: map[string]bool{}}
	// Every run inside the support window has each change of the
	// repository engine (release v6); the pool engine's is the first one
	// it may lack.
	for _, change := range []string{severalPoolsVersion, boundedHistory, runnerEndsVersion, poolTargetsVersion,
		reconcileVersion, vanishedJobsVersion, lateJobEventsVersion, leanLoopVersion, agentActivityIDsVersion} {
		supported(ctx, change)
	}
	r.migrating = workflow.GetVersion(ctx, poolEngineVersion, workflow.DefaultVersion, 1) >= 1
	r.log = log.With(workflow.GetLogger(ctx), "repository", r.full())
	if in.Repository != nil {
		r.s = *in.Repository
	}
	start := workflow.Now(ctx)
	for _, ps := range r.s.Pools {
		for i := range ps.Runners {
			if ps.Runners[i].Since.IsZero() {
				ps.Runners[i].Since = start // from before usage was kept: counted from now
			}
		}
		r.pools = append(r.pools, newPool(r, ps))
	}
	r.s.Pools = nil // live in r.pools
	for _, k := range r.s.Seen {
		r.seen[k] = true
	}
	if r.s.Prefix == "" {
		h := fnv.New32a()
		h.Write([]byte(workflow.GetInfo(ctx).FirstRunID))
		r.s.Prefix = fmt.Sprintf("%06x", h.Sum32()&0xffffff)
	}
	if err := r.setHandlers(ctx); err != nil {
		return RepositoryView{}, err
	}
	if err := ensureSearchAttribute(ctx, SearchAttributeRepository, r.full()); err != nil {
		return RepositoryView{}, err
	}
	return r.run(ctx)
}

type repository struct {
	owner, repo string
	// tracked are the runners this run started: their futures tell when
	// they end. awaitingEnds is set while AwaitRunnerEnds watches the
	// others.
	tracked          map[string]bool
	awaitingEnds     bool
	stopAwaitingEnds func()
	awaitAfter       time.Time
	// pollNow asks GitHub for the queued jobs at the next turn;
	// redeliverSince has the next reconciliation ask GitHub to redeliver
	// the webhooks that failed since then.
	pollNow        bool
	redeliverSince *time.Time
	s              RepositoryState
	// pools, by name; r.s.Pools is filled only to continue as new.
	pools     []*pool
	seen      map[string]bool
	dirty     bool
	published *RepositoryView
	agentsSA  []string
	// alarm is the loop's timer; memoAt is when the memo was last
	// published, memoDue when counts held back are.
	alarm alarm
	// agentCalls counts the activities scheduled on agents' queues, named
	// after the agent (AgentActivityID).
	agentCalls      int
	memoAt, memoDue time.Time
	polling         bool
	// starting counts the runner workflows started whose start is not
	// confirmed yet: a run that continues as new waits for them, or the
	// server might not start them once the run has closed.
	starting int
	// signaling counts the controls sent to runners and not yet
	// delivered: a lean run that continues as new waits for them too, or
	// the server drops a signal whose sender has closed (a drain's delete
	// was lost so, and the drain waited for a runner that never heard).
	signaling int
	// closing: every pool has ended and the run is finishing.
	closing bool
	// migrating: the run hands its pools over to PoolWorkflows
	// (repository_migrate.go).
	migrating bool
	// now is the time of the loop's turn: the memo's usage is as at then.
	now time.Time
	log log.Logger
}

func (r *repository) full() string { return r.owner + "/" + r.repo }

func (r *repository) pool(name string) *pool {
	for _, p := range r.pools {
		if p.s.Name == name {
			return p
		}
	}
	return nil
}

// addPool adds a pool, keeping the pools sorted by name.
func (r *repository) addPool(name string) *pool {
	p := newPool(r, PoolState{Name: name})
	i, _ := slices.BinarySearchFunc(r.pools, name, func(p *pool, n string) int { return strings.Compare(p.s.Name, n) })
	r.pools = slices.Insert(r.pools, i, p)
	return p
}

// runner finds a runner of any pool, with its pool.
func (r *repository) runner(name string) (*pool, *RunnerRecord) {
	for _, p := range r.pools {
		if rec := p.runner(name); rec != nil {
			return p, rec
		}
	}
	return nil, nil
}

func (r *repository) setHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (RepositoryView, error) { return r.view(), nil }); err != nil {
		return fmt.Errorf("set state query handler: %w", err)
	}
	if err := workflow.SetQueryHandler(ctx, QueryUsage, func(req UsageRequest) (RepositoryUsage, error) {
		return r.usage(ctx, req)
	}); err != nil {
		return fmt.Errorf("set usage query handler: %w", err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateConfigure, r.configure,
		workflow.UpdateHandlerOptions{Validator: r.validateConfigure}); err != nil {
		return fmt.Errorf("set configure handler: %w", err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateDrain, r.drain,
		workflow.UpdateHandlerOptions{Validator: r.validateDrain}); err != nil {
		return fmt.Errorf("set drain handler: %w", err)
	}
	return nil
}

func (r *repository) validateConfigure(req ConfigureRequest) error {
	name := req.PoolName()
	if err := ValidatePoolName(name); err != nil {
		return invalidRequest(err)
	}
	if r.closing {
		return reject(ErrTypeClosing, "the repository's last pool has ended and its workflow is finishing; retry")
	}
	p := r.pool(name)
	if p != nil && p.s.Draining {
		return reject(ErrTypeDraining, "pool "+name+" is draining")
	}
	if p == nil && len(r.pools) >= MaxPools {
		return invalidRequest(fmt.Errorf("a repository has at most %d pools", MaxPools))
	}
	cfg, err := r.configOf(req)
	if err != nil {
		return invalidRequest(err)
	}
	return invalidRequest(cfg.Validate())
}

// configOf is the config a configure request sets: its Config, or its
// Patch applied to the pool's config (the defaults for a new pool).
func (r *repository) configOf(req ConfigureRequest) (PoolConfig, error) {
	if len(req.Patch) == 0 {
		return req.Config, nil
	}
	base := DefaultPoolConfig()
	if p := r.pool(req.PoolName()); p != nil {
		base = p.s.Config
	}
	return PatchPoolConfig(base, req.Patch)
}

func (r *repository) configure(ctx workflow.Context, req ConfigureRequest) (PoolView, error) {
	cfg, err := r.configOf(req)
	if err != nil {
		return PoolView{}, invalidRequest(err) // the validator let it through: it cannot fail here
	}
	name := req.PoolName()
	p := r.pool(name)
	if p == nil {
		p = r.addPool(name)
	}
	p.accrueAll(workflow.Now(ctx)) // at the old agent's and price's account
	if cfg.Agent != p.s.Config.Agent {
		p.s.AgentOffline = false
		p.s.AgentUnchecked = true
	}
	p.retarget = true
	p.s.Config, p.s.ConfiguredBy, r.s.Configured = cfg, req.Actor, true
	p.s.ListPrice = PriceOf(req.Prices, cfg.Provider)
	p.log.Info("Pool configured", "actor", req.Actor, "agent", cfg.Agent, "labels", cfg.Labels,
		"minIdle", cfg.MinIdle, "maxRunners", cfg.MaxRunners)
	r.reroute()
	r.dirty = true
	return p.view(), nil
}

func (r *repository) validateDrain(req DrainRequest) error {
	if req.Agent != "" {
		return invalidRequest(ValidateAgentName(req.Agent))
	}
	if r.pool(req.PoolName()) == nil {
		return reject(ErrTypeNotFound, "no pool "+req.PoolName())
	}
	return nil
}

// drain drains the pool named, or every pool of the agent named: no new
// runners, idle ones deleted, busy ones finish; each pool ends when it has
// no runner left, and the repository when it has no pool.
func (r *repository) drain(ctx workflow.Context, req DrainRequest) (RepositoryView, error) {
	for _, p := range r.pools {
		if (req.Agent != "" && p.s.Config.Agent != req.Agent) || (req.Agent == "" && p.s.Name != req.PoolName()) {
			continue
		}
		if !p.s.Draining {
			p.log.Info("Pool draining", "actor", req.Actor)
		}
		p.s.Draining = true
	}
	r.reroute()
	r.dirty = true
	return r.view(), nil
}

// view is the whole RepositoryView: the state query.
func (r *repository) view() RepositoryView {
	v := r.summary()
	v.Unmatched = append([]QueuedJob{}, r.s.Unmatched...)
	for i, p := range r.pools {
		v.Pools[i] = p.view()
	}
	r.withUsage(v)
	return v
}

// withUsage gives each pool of v its usage totals as at the loop's last
// turn: only what is shown (a query, a memo upserted), as the summary a
// turn compares with the memo leaves them out.
func (r *repository) withUsage(v RepositoryView) {
	if r.now.IsZero() {
		return
	}
	for i, p := range r.pools {
		t := p.totals(r.now)
		v.Pools[i].Usage = &t
	}
}

// summary is what the memo carries: the pools without runners and queue.
func (r *repository) summary() RepositoryView {
	v := RepositoryView{Repository: r.full(), Pools: make([]PoolView, 0, len(r.pools)),
		UnmatchedJobs: len(r.s.Unmatched), UnmatchedTotal: r.s.UnmatchedTotal}
	for _, p := range r.pools {
		v.Pools = append(v.Pools, p.summary())
	}
	return v
}

// agents lists the agents of the pools, sorted, without repeats.
func (r *repository) agents() []string {
	var out []string
	for _, p := range r.pools {
		if !slices.Contains(out, p.s.Config.Agent) {
			out = append(out, p.s.Config.Agent)
		}
	}
	slices.Sort(out)
	return out
}

// publish upserts the memo (the summary) and the agents' search
// attributes when they changed.
func (r *repository) publish(ctx workflow.Context) {
	if agents := r.agents(); len(agents) > 0 && !slices.Equal(agents, r.agentsSA) {
		one := agents[0]
		if p := r.pool(DefaultPool); p != nil {
			one = p.s.Config.Agent
		}
		if err := workflow.UpsertTypedSearchAttributes(ctx, SearchAttributeAgent.ValueSet(one),
			SearchAttributeAgents.ValueSet(agents)); err == nil {
			r.agentsSA = agents
		}
	}
	v := r.summary()
	if r.published != nil && r.samePublished(*r.published, v) {
		r.memoDue = time.Time{}
		return
	}
	now := workflow.Now(ctx)
	if r.published != nil && r.onlyCounts(*r.published, v) && now.Before(r.memoAt.Add(memoEvery)) {
		r.memoDue = r.memoAt.Add(memoEvery)
		return
	}
	r.withUsage(v)
	_ = workflow.UpsertMemo(ctx, map[string]any{MemoSummary: v})
	workflow.SetCurrentDetails(ctx, details(v))
	r.published, r.memoAt, r.memoDue = &v, now, time.Time{}
}

// onlyCounts reports whether a and b differ in their pools' counts alone,
// and no pool went from having runners (or queued jobs) to none or back.
func (r *repository) onlyCounts(a, b RepositoryView) bool {
	if len(a.Pools) != len(b.Pools) || a.UnmatchedJobs != b.UnmatchedJobs || a.UnmatchedTotal != b.UnmatchedTotal {
		return false
	}
	for i := range a.Pools {
		pa, pb := a.Pools[i], b.Pools[i]
		if (runners(pa.Counts) == 0) != (runners(pb.Counts) == 0) || (pa.Counts.Queued == 0) != (pb.Counts.Queued == 0) {
			return false
		}
		pb.Counts = pa.Counts
		if !samePublished(pa, pb) {
			return false
		}
	}
	return true
}

func runners(c PoolCounts) int { return c.Provisioning + c.Idle + c.Busy + c.Deleting }

func (r *repository) samePublished(a, b RepositoryView) bool {
	if len(a.Pools) != len(b.Pools) {
		return false
	}
	for i := range a.Pools {
		if !samePublished(a.Pools[i], b.Pools[i]) {
			return false
		}
	}
	return a.UnmatchedJobs == b.UnmatchedJobs && a.UnmatchedTotal == b.UnmatchedTotal
}

// details is what the Web UI shows of the repository.
func details(v RepositoryView) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Repository **%s**: %d pools; %d queued jobs fit no pool.", v.Repository, len(v.Pools), v.UnmatchedJobs)
	for _, p := range v.Pools {
		c := p.Counts
		fmt.Fprintf(&b, "\n\nPool **%s** on agent %s: %d provisioning, %d idle, %d busy, %d deleting; %d queued; %d jobs done.",
			p.Pool, p.Config.Agent, c.Provisioning, c.Idle, c.Busy, c.Deleting, c.Queued, c.JobsDone)
		if p.Draining {
			b.WriteString(" Draining.")
		}
		if p.Degraded {
			b.WriteString(" Degraded: " + p.LastError)
		}
	}
	return b.String()
}

func (r *repository) run(ctx workflow.Context) (RepositoryView, error) {
	for {
		r.now = workflow.Now(ctx)
		r.pruneUsage(r.now)
		r.takeSignals(ctx)
		if r.migrateAsked(ctx) {
			return r.migrate(ctx)
		}
		r.removeEnded()
		r.askAgents(ctx)
		next := r.reconcile(ctx)
		if poll := r.pollQueue(ctx); !poll.IsZero() && (next.IsZero() || poll.Before(next)) {
			next = poll
		}
		if t := r.awaitRunnerEnds(ctx); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
		r.publish(ctx)
		if !r.memoDue.IsZero() && (next.IsZero() || r.memoDue.Before(next)) {
			next = r.memoDue
		}
		if r.s.Configured && len(r.pools) == 0 {
			break
		}
		if continueAsNewDue(ctx) {
			return r.continueAsNew(ctx)
		}
		r.dirty = false
		cond := func() bool {
			return r.dirty || r.signalsWaiting(ctx) || continueAsNewDue(ctx)
		}
		if err := r.alarm.await(ctx, next, cond); err != nil {
			return r.view(), err
		}
	}
	if !r.memoDue.IsZero() {
		// Counts held back: the last memo is the final one.
		r.memoAt = time.Time{}
		r.publish(ctx)
	}
	r.closing = true
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return r.view(), err
	}
	r.log.Info("Every pool drained; repository done")
	return r.view(), nil
}

// reconcile reconciles every pool and returns when one of them next needs
// to look again.
func (r *repository) reconcile(ctx workflow.Context) time.Time {
	var next time.Time
	for _, p := range r.pools {
		if t := p.reconcile(ctx); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}

// removeEnded removes the draining pools that have no runner left. Jobs
// still in their queues (a run from before several pools routes jobs to a
// draining pool) find another pool, or wait unmatched.
func (r *repository) removeEnded() {
	var orphans []QueuedJob
	kept := r.pools[:0]
	for _, p := range r.pools {
		if p.s.Draining && len(p.s.Runners) == 0 {
			p.log.Info("Pool drained")
			orphans = append(orphans, p.s.Queue...)
			continue
		}
		kept = append(kept, p)
	}
	clear(r.pools[len(kept):])
	r.pools = kept
	for _, j := range orphans {
		r.enqueue(j, false)
	}
}

// continueAsNew carries the state into a new run, after the handlers have
// finished and every signal still buffered has been applied.
func (r *repository) continueAsNew(ctx workflow.Context) (RepositoryView, error) {
	if err := workflow.Await(ctx, func() bool {
		return workflow.AllHandlersFinished(ctx) && r.starting == 0 && r.signaling == 0
	}); err != nil {
		return r.view(), err
	}
	r.takeSignals(ctx)
	if r.stopAwaitingEnds != nil {
		r.stopAwaitingEnds()
	}
	r.boundUsage()
	st := r.s
	st.Pools = make([]PoolState, 0, len(r.pools))
	for _, p := range r.pools {
		st.Pools = append(st.Pools, p.s)
	}
	return r.view(), workflow.NewContinueAsNewError(ctx, RepositoryWorkflowName,
		RepositoryInput{Owner: r.owner, Repo: r.repo, Repository: &st})
}
