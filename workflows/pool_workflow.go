package workflows

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Versions of PoolWorkflow's rules. A run follows the version its input
// names, from its start to its end, so that its history replays as it
// ran; the next run (continue-as-new) takes the current one. A change
// that gives a running workflow other commands adds a version here and
// tests p.version against it where the commands differ;
// docs/architecture.md says which versions are still supported.
const (
	// poolV1: the pool engine (one workflow per pool, demand as counts).
	poolV1 = 1
	// poolV2: a task's commands are counted from the task's start to its
	// end, across the loop's turns within it (the results of the task's
	// local activities come within the task), and reservedCommands of its
	// 500 are kept for its wake timer, memo and continue-as-new; the
	// watch for runners that end unseen is cancelled once the pool has no
	// runner; an ephemeral runner that ends as after a job before its
	// job's webhook came counts as a job taken (ranUnseen); a queue that
	// empties or fills while runners run is published with the counts, at
	// most every memoEvery (onlyCountsChangedV2).
	poolV2 = 2
	// poolVersionCurrent is what new runs follow.
	poolVersionCurrent = poolV2
)

// PoolVersionCurrent is the version of the pool's rules a new pool starts
// with (PoolInput.Version).
const PoolVersionCurrent = poolVersionCurrent

// unseenFor is how long an ephemeral runner that ended before its job's
// webhook counts as a queued job taken; a webhook later than that (or
// lost) is the reconciliation's to mend.
const unseenFor = 2 * time.Minute

// planQueued is the queue as the pool's rule sees it: the jobs queued,
// less those that runners ran and ended before their webhooks came.
func (p *poolWorkflow) planQueued() (int, time.Time) {
	var next time.Time
	taken := 0
	for _, name := range slices.Sorted(maps.Keys(p.ranUnseen)) {
		at := p.ranUnseen[name]
		if !p.now.Before(at.Add(unseenFor)) {
			delete(p.ranUnseen, name)
			continue
		}
		taken++
		if next.IsZero() || at.Add(unseenFor).Before(next) {
			next = at.Add(unseenFor)
		}
	}
	return max(0, p.queued()-taken), next
}

// Limits of one run of a pool.
const (
	// poolHistoryLimit is the history length at which a run continues
	// as new.
	poolHistoryLimit = 2000
	// poolSignalBudget is how many signals a run takes before it
	// continues as new, far below Temporal's 10,000.
	poolSignalBudget = 1000
	// maxCommandsPerTask bounds the commands (activities, signals,
	// timers) one workflow task issues; what is left waits for the next.
	maxCommandsPerTask = 500
	// reservedCommands of them are kept for the commands a task issues
	// besides its work (poolV2).
	reservedCommands = 4
	// startBatch bounds the runners one StartRunners activity starts.
	startBatch = 500
	// maxEventsPerTask bounds the job events and runner reports one
	// workflow task applies; the rest wait for the next.
	maxEventsPerTask = 5000
)

// PoolWorkflow owns one runner pool (pool_contract.go).
func PoolWorkflow(ctx workflow.Context, in PoolInput) (PoolView, error) {
	ref := in.Ref()
	if _, _, err := ParseRepository(ref.Repository()); err != nil {
		return PoolView{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidRequest, nil)
	}
	if err := ValidatePoolName(ref.Pool); err != nil {
		return PoolView{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidRequest, nil)
	}
	p := newPoolWorkflow(ctx, in)
	if err := p.setHandlers(ctx); err != nil {
		return PoolView{}, err
	}
	return p.run(ctx)
}

type poolWorkflow struct {
	ref     PoolRef
	version int
	s       PoolCarried
	log     log.Logger

	// What a run keeps and does not carry.
	dirty     bool
	now       time.Time
	signals   int
	retarget  bool
	closing   bool
	published *PoolView
	memoAt    time.Time
	memoDue   time.Time
	agentSA   string
	alarm     alarm
	// In flight: the agent asked about, a look at GitHub, a look for
	// ended runners, the StartRunners activities, the deletes, forwards
	// and re-runs being sent (by runner, pool and job).
	asking, reconciling, watching bool
	// stopWatch cancels the watch for runners that end unseen (poolV2).
	stopWatch workflow.CancelFunc
	// ranUnseen are the ephemeral runners that ended as they do after a
	// job, before their job's webhook came, and when (poolV2): each
	// counts as a queued job taken, for unseenFor or until the webhook.
	ranUnseen       map[string]time.Time
	starting        int
	startingRunners map[int]bool
	sendingDelete   map[string]bool
	forwarding      map[string]bool
	rerunning       map[int64]bool
	// commands counts the commands of the current workflow task, whose
	// history length is taskAt; more: commands were held back.
	commands int
	taskAt   int
	more     bool
	waited   bool
	// taken counts the intake's events applied in this task; held: some
	// were left for the next task (maxEventsPerTask).
	taken int
	held  bool
	// onlineAt is when the runners not known online may next be looked
	// up on GitHub; onlineEvery the wait after that.
	onlineAt    time.Time
	onlineEvery time.Duration
	// lastJobAt is when the pool last took job events from the server (or
	// another pool): a look at GitHub taken before it does not set the
	// pool's counts, and while they come the pool looks less often.
	lastJobAt time.Time
}

func newPoolWorkflow(ctx workflow.Context, in PoolInput) *poolWorkflow {
	p := &poolWorkflow{ref: in.Ref(), version: in.Version, startingRunners: map[int]bool{}, ranUnseen: map[string]time.Time{}, sendingDelete: map[string]bool{},
		forwarding: map[string]bool{}, rerunning: map[int64]bool{}}
	if p.version == 0 {
		p.version = poolVersionCurrent
	}
	p.log = log.With(workflow.GetLogger(ctx), "repository", p.ref.Repository(), "pool", p.ref.Pool)
	if in.Carried != nil {
		p.s = *in.Carried
	}
	if p.s.Prefix == "" {
		h := fnv.New32a()
		h.Write([]byte(workflow.GetInfo(ctx).FirstRunID))
		p.s.Prefix = fmt.Sprintf("%06x", h.Sum32()&0xffffff)
	}
	if in.Routes != nil && in.Routes.Version > p.s.Routes.Version {
		p.s.Routes = in.Routes.Sorted()
	}
	if p.s.Configured && !p.s.Routes.Has(p.ref.Pool) {
		// A pool started again without its routes (its workflow was
		// terminated) routes to itself at least, as configured.
		p.s.Routes = p.s.Routes.With(RouteEntry{Pool: p.ref.Pool, Labels: p.s.Config.Labels, Draining: p.s.Draining})
	}
	if a, ok := workflow.GetTypedSearchAttributes(ctx).GetKeyword(SearchAttributeAgent); ok {
		p.agentSA = a
	}
	return p
}

func (p *poolWorkflow) setHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (PoolStatus, error) { return p.status(), nil }); err != nil {
		return fmt.Errorf("set state query handler: %w", err)
	}
	if err := workflow.SetQueryHandler(ctx, QueryUsage, func(req UsageRequest) (RepositoryUsage, error) {
		return p.usage(ctx, req)
	}); err != nil {
		return fmt.Errorf("set usage query handler: %w", err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateConfigure, p.configure,
		workflow.UpdateHandlerOptions{Validator: p.validateConfigure}); err != nil {
		return fmt.Errorf("set configure handler: %w", err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateDrain, p.drain,
		workflow.UpdateHandlerOptions{Validator: p.validateDrain}); err != nil {
		return fmt.Errorf("set drain handler: %w", err)
	}
	return nil
}

func (p *poolWorkflow) validateConfigure(req ConfigureRequest) error {
	if name := req.PoolName(); name != p.ref.Pool {
		return invalidRequest(fmt.Errorf("this is pool %s, not %s", p.ref.Pool, name))
	}
	if p.closing {
		return reject(ErrTypeClosing, "the pool has ended and its workflow is finishing; retry")
	}
	if p.s.Draining {
		return reject(ErrTypeDraining, "pool "+p.ref.Pool+" is draining")
	}
	cfg, err := p.configOf(req)
	if err != nil {
		return invalidRequest(err)
	}
	return invalidRequest(cfg.Validate())
}

// configOf is the config a configure request sets: its Config, or its
// Patch applied to the pool's config (the defaults for a new pool).
func (p *poolWorkflow) configOf(req ConfigureRequest) (PoolConfig, error) {
	if len(req.Patch) == 0 {
		return req.Config, nil
	}
	base := DefaultPoolConfig()
	if p.s.Configured {
		base = p.s.Config
	}
	return PatchPoolConfig(base, req.Patch)
}

func (p *poolWorkflow) configure(ctx workflow.Context, req ConfigureRequest) (PoolView, error) {
	cfg, err := p.configOf(req)
	if err != nil {
		return PoolView{}, invalidRequest(err) // the validator let it through: it cannot fail here
	}
	now := workflow.Now(ctx)
	p.accrueAll(now) // at the old agent's and price's account
	if !p.s.Configured || cfg.Agent != p.s.Config.Agent {
		p.s.AgentOffline, p.s.AgentUnchecked = false, true
	}
	p.retarget = true
	p.s.Config, p.s.ConfiguredBy, p.s.Configured = cfg, req.Actor, true
	p.s.ListPrice = PriceOf(req.Prices, cfg.Provider)
	p.log.Info("Pool configured", "actor", req.Actor, "agent", cfg.Agent, "labels", cfg.Labels,
		"minIdle", cfg.MinIdle, "maxRunners", cfg.MaxRunners)
	routes := p.s.Routes
	if req.Routes != nil && req.Routes.Version > routes.Version {
		routes = req.Routes.Sorted()
	}
	p.takeRoutes(routes, true)
	p.s.ReconcileNow = true // what is queued for the pool now is learnt from GitHub
	p.dirty = true
	return p.view(), nil
}

func (p *poolWorkflow) validateDrain(req DrainRequest) error {
	if req.Agent != "" {
		if err := ValidateAgentName(req.Agent); err != nil {
			return invalidRequest(err)
		}
		return nil
	}
	if req.PoolName() != p.ref.Pool {
		return reject(ErrTypeNotFound, "no pool "+req.PoolName())
	}
	return nil
}

// drain drains the pool: no new runners, idle and provisioning ones
// deleted, busy ones finish; the pool ends when it has no runner left.
// A drain that names an agent drains the pool only if it is that agent's.
func (p *poolWorkflow) drain(ctx workflow.Context, req DrainRequest) (PoolView, error) {
	if req.Agent != "" && req.Agent != p.s.Config.Agent {
		return p.view(), nil
	}
	if !p.s.Draining {
		p.log.Info("Pool draining", "actor", req.Actor)
	}
	p.s.Draining = true
	p.takeRoutes(p.s.Routes, true)
	p.dirty = true
	return p.view(), nil
}

// continueAsNewDue: the history is long, the server suggests it, or the
// run has taken its budget of signals.
func (p *poolWorkflow) continueAsNewDue(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= poolHistoryLimit || p.signals >= poolSignalBudget
}

func (p *poolWorkflow) run(ctx workflow.Context) (PoolView, error) {
	for {
		p.now = workflow.Now(ctx)
		p.newTask(ctx)
		p.takeSignalsUpTo(ctx, maxEventsPerTask)
		p.pruneUsage(p.now)
		next := p.step(ctx)
		if t := p.publish(ctx); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
		if p.s.Draining && len(p.s.Runners) == 0 && len(p.s.Forwards) == 0 {
			break
		}
		if p.continueAsNewDue(ctx) {
			return p.continueAsNew(ctx)
		}
		if p.more {
			// Commands held back for the next task: wake at once.
			next = p.now.Add(time.Millisecond)
		}
		p.dirty = false
		wake := func() bool { return p.dirty || (!p.held && p.signalsWaiting(ctx)) || p.continueAsNewDue(ctx) }
		p.waited = !wake()
		if err := p.alarm.await(ctx, next, wake); err != nil {
			return p.view(), err
		}
	}
	p.closing = true
	p.memoAt = time.Time{}
	p.publish(ctx)
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return p.view(), err
	}
	p.log.Info("Pool drained; its workflow ends")
	return p.view(), nil
}

// newTask resets the count of commands when a new workflow task began.
func (p *poolWorkflow) newTask(ctx workflow.Context) {
	n := workflow.GetInfo(ctx).GetCurrentHistoryLength()
	if newWorkflowTask(p.version, p.taskAt, n, p.waited) {
		p.taskAt, p.commands, p.more, p.waited, p.taken, p.held = n, 0, false, false, 0, false
	}
}

// newWorkflowTask tells whether the loop turns in a new workflow task:
// the history grew since the last turn (a task starts with events of its
// own). A turn after a wait is not one by itself: a task's local
// activities end, and wake the loop, within the task (poolV2). Where no
// history length is known (0: Temporal's test environment), a wait is.
func newWorkflowTask(version, lastLen, length int, waited bool) bool {
	if version < poolV2 || length == 0 {
		return length != lastLen || waited
	}
	return length != lastLen
}

// command reports whether one more command fits in this task, and counts
// it; when none does, the rest waits for the next task.
func (p *poolWorkflow) command() bool {
	limit := maxCommandsPerTask
	if p.version >= poolV2 {
		// Room for what a task issues besides: the timer that wakes the
		// next task, the memo, a continue-as-new.
		limit -= reservedCommands
	}
	if p.commands >= limit {
		p.more = true
		return false
	}
	p.commands++
	return true
}

// continueAsNew carries the state into a new run once the handlers have
// finished and the runner starts in flight are confirmed (a start that
// is not confirmed is not known to have happened). Every signal still
// buffered is applied to the state first; what it asks for (a delete, a
// forward, a re-run) is carried as an intent, which the next run carries
// out.
func (p *poolWorkflow) continueAsNew(ctx workflow.Context) (PoolView, error) {
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) && p.starting == 0 }); err != nil {
		return p.view(), err
	}
	p.takeSignals(ctx)
	p.boundCarried()
	st := p.s
	return p.view(), workflow.NewContinueAsNewError(ctx, PoolWorkflowName, PoolInput{Owner: p.ref.Owner, Repo: p.ref.Repo,
		Pool: p.ref.Pool, Version: poolVersionCurrent, Carried: &st})
}

// runnerName names the runner numbered seq: unique on GitHub (the pool's
// prefix and sequence), telling its pool unless that is the default pool.
func (p *poolWorkflow) runnerName(r PoolRunner) string {
	if r.Seq == 0 {
		return r.Name
	}
	name := fmt.Sprintf("garo-%s-%d", p.s.Prefix, r.Seq)
	if p.ref.Pool != DefaultPool {
		name = fmt.Sprintf("garo-%s-%s-%d", p.s.Prefix, p.ref.Pool, r.Seq)
	}
	if len(name) > maxRunnerName {
		name = name[:maxRunnerName]
	}
	return name
}

// runnerIndex finds a runner of the pool by name; -1 when it has none.
func (p *poolWorkflow) runnerIndex(name string) int {
	if name == "" {
		return -1
	}
	if seq, ok := p.seqOf(name); ok {
		for i, r := range p.s.Runners {
			if r.Seq == seq {
				return i
			}
		}
		return -1
	}
	return slices.IndexFunc(p.s.Runners, func(r PoolRunner) bool { return r.Seq == 0 && r.Name == name })
}

// seqOf reads the number of a runner the pool named.
func (p *poolWorkflow) seqOf(name string) (int, bool) {
	prefix := "garo-" + p.s.Prefix + "-"
	if p.ref.Pool != DefaultPool {
		prefix += p.ref.Pool + "-"
	}
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	seq := 0
	for _, c := range rest {
		if c < '0' || c > '9' || seq > 1e9 {
			return 0, false
		}
		seq = seq*10 + int(c-'0')
	}
	return seq, seq > 0
}

// ownsName reports whether the pool named a runner so (it may have gone).
func (p *poolWorkflow) ownsName(name string) bool {
	if _, ok := p.seqOf(name); ok {
		return true
	}
	return false
}

func (p *poolWorkflow) queued() int { return len(p.s.Queue) + p.s.QueueRest }

// summary is the pool's view without its runners and queue: what the memo
// carries.
func (p *poolWorkflow) summary() PoolView {
	c := countRunners(p.s.Runners)
	c.Queued, c.JobsDone = p.queued(), p.s.JobsDone
	v := PoolView{Repository: p.ref.Repository(), Pool: p.ref.Pool, Config: p.s.Config, Draining: p.s.Draining,
		Degraded: p.s.Degraded, AgentOffline: p.s.AgentOffline, LastError: p.s.LastError, Counts: c,
		ConfiguredBy: p.s.ConfiguredBy}
	if len(p.s.Queue) > 0 {
		v.OldestQueuedAt = p.s.Queue[0].QueuedAt
	}
	return v
}

// view is the pool's whole view, with its runners and the page of its
// queue, and its usage totals as at the loop's last turn.
func (p *poolWorkflow) view() PoolView {
	v := p.summary()
	v.Runners, v.Queue = []RunnerView{}, slices.Clone(p.s.Queue)
	if v.Queue == nil {
		v.Queue = []QueuedJob{}
	}
	for _, r := range p.s.Runners {
		rv := RunnerView{Name: p.runnerName(r), State: r.State, RunnerID: r.RunnerID, JobID: r.JobID, CreatedAt: r.CreatedAt}
		if r.DeleteWanted || r.GaveUp {
			rv.State = RunnerDeleting
		}
		if !r.IdleSince.IsZero() && r.State == RunnerIdle {
			t := r.IdleSince
			rv.IdleSince = &t
		}
		v.Runners = append(v.Runners, rv)
	}
	if !p.now.IsZero() {
		t := p.totals(p.now)
		v.Usage = &t
	}
	return v
}

// status answers QueryState.
func (p *poolWorkflow) status() PoolStatus {
	return PoolStatus{PoolView: p.view(), Unmatched: slices.Clone(p.s.Unmatched), UnmatchedTotal: p.s.UnmatchedTotal,
		Routes: p.s.Routes}
}

// PoolMemo is what a pool's memo summary carries: its view without
// runners and queue, and when its routing last changed, so that the
// server's routes are as new as the pools'.
type PoolMemo struct {
	PoolView
	RoutesVersion int64 `json:"routesVersion,omitempty"`
}

// publish upserts the memo (and the agent's search attributes) when they
// changed; a change of the counts alone at most every memoEvery. It
// returns when counts held back are due.
func (p *poolWorkflow) publish(ctx workflow.Context) time.Time {
	if p.s.Configured && p.s.Config.Agent != p.agentSA && p.command() {
		if err := workflow.UpsertTypedSearchAttributes(ctx, SearchAttributeAgent.ValueSet(p.s.Config.Agent),
			SearchAttributeAgents.ValueSet([]string{p.s.Config.Agent})); err == nil {
			p.agentSA = p.s.Config.Agent
		}
	}
	v := p.summary()
	if p.published != nil && samePublished(*p.published, v) {
		p.memoDue = time.Time{}
		return time.Time{}
	}
	now := workflow.Now(ctx)
	countsOnly := p.published != nil && onlyCountsChanged(*p.published, v)
	if p.version >= poolV2 {
		countsOnly = p.published != nil && onlyCountsChangedV2(*p.published, v)
	}
	if countsOnly && now.Before(p.memoAt.Add(memoEvery)) {
		p.memoDue = p.memoAt.Add(memoEvery)
		return p.memoDue
	}
	if !p.command() {
		return time.Time{}
	}
	t := p.totals(p.now)
	v.Usage = &t
	_ = workflow.UpsertMemo(ctx, map[string]any{MemoSummary: PoolMemo{PoolView: v, RoutesVersion: p.s.Routes.Version}})
	workflow.SetCurrentDetails(ctx, poolDetails(v))
	p.published, p.memoAt, p.memoDue = &v, now, time.Time{}
	return time.Time{}
}

// onlyCountsChanged reports whether a and b differ in their counts alone,
// and the pool did not go from having runners (or queued jobs) to none or
// back.
// onlyCountsChangedV2 (poolV2) is onlyCountsChanged but for a queue that
// empties or fills while runners run, which a pool serving jobs one
// after the other does at each job: only a change to or from dormant (no
// runner, no job: what its agent's sweep reads) is published at once.
func onlyCountsChangedV2(a, b PoolView) bool {
	if (runners(a.Counts)+a.Counts.Queued == 0) != (runners(b.Counts)+b.Counts.Queued == 0) {
		return false
	}
	b.Counts = a.Counts
	return samePublished(a, b)
}

func onlyCountsChanged(a, b PoolView) bool {
	if (runners(a.Counts) == 0) != (runners(b.Counts) == 0) || (a.Counts.Queued == 0) != (b.Counts.Queued == 0) {
		return false
	}
	b.Counts = a.Counts
	return samePublished(a, b)
}

// poolDetails is what the Web UI shows of the pool.
func poolDetails(v PoolView) string {
	c := v.Counts
	s := fmt.Sprintf("Pool **%s** of %s on agent %s: %d provisioning, %d idle, %d busy, %d deleting; %d queued; %d jobs done.",
		v.Pool, v.Repository, v.Config.Agent, c.Provisioning, c.Idle, c.Busy, c.Deleting, c.Queued, c.JobsDone)
	if v.Draining {
		s += " Draining."
	}
	if v.Degraded {
		s += " Degraded: " + v.LastError
	}
	return s
}
