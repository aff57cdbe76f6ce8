package workflows

import (
	"slices"
	"strconv"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// A RepositoryWorkflow is the engine of the releases before pools: one
// workflow for all the pools of a repository. It hands its pools over to
// PoolWorkflows by itself: a run of it that a release with pools starts
// (its next run after continue-as-new) does so at once, and a run still
// going is told to by the signal SignalMigrate (the server sends it to
// every one when it starts, and before it changes one). The handover
// carries everything: configs, runners (which go on; the pool follows
// them by their webhooks and finds their end by a look), the queues and
// their dedupe marks, jobs running, lost and retried, the jobs no pool
// fits, and the usage. Then the RepositoryWorkflow ends.

// SignalMigrate asks a RepositoryWorkflow to hand its pools over to
// PoolWorkflows and end.
const SignalMigrate = "migrate"

// poolEngineVersion is the workflow.GetVersion change of the release with
// pools: a run that takes it hands over at once.
const poolEngineVersion = "pool-engine"

// migrating reports whether the run is to hand over now: asked to, or a
// run the release with pools started.
func (r *repository) migrateAsked(ctx workflow.Context) bool {
	if r.migrating {
		return true
	}
	if workflow.GetSignalChannel(ctx, SignalMigrate).ReceiveAsync(nil) {
		r.migrating = true
	}
	return r.migrating
}

// migrate hands the pools over to PoolWorkflows (children left to run
// when this one ends), once the handlers have finished and the runners
// and controls in flight are confirmed, and ends the run.
func (r *repository) migrate(ctx workflow.Context) (RepositoryView, error) {
	if err := workflow.Await(ctx, func() bool {
		return workflow.AllHandlersFinished(ctx) && r.starting == 0 && r.signaling == 0
	}); err != nil {
		return r.view(), err
	}
	r.takeSignals(ctx)
	if r.stopAwaitingEnds != nil {
		r.stopAwaitingEnds()
	}
	r.closing = true
	routes := Routes{Version: workflow.Now(ctx).UnixMilli()}
	for _, p := range r.pools {
		routes = routes.With(RouteEntry{Pool: p.s.Name, Labels: p.s.Config.Labels, Draining: p.s.Draining})
	}
	var started []workflow.ChildWorkflowFuture
	var names []string
	for _, p := range r.pools {
		c := r.handOver(p, routes)
		key := strings.ToLower(r.owner + "/" + r.repo)
		opts := workflow.ChildWorkflowOptions{
			WorkflowID:            PoolWorkflowID(r.owner, r.repo, p.s.Name),
			TaskQueue:             ServerTaskQueue,
			ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			StaticSummary:         "runner pool " + p.s.Name + " of " + r.full(),
			TypedSearchAttributes: temporal.NewSearchAttributes(
				SearchAttributeRepository.ValueSet(key),
				SearchAttributePool.ValueSet(key+"/"+p.s.Name),
				SearchAttributeAgent.ValueSet(p.s.Config.Agent),
				SearchAttributeAgents.ValueSet([]string{p.s.Config.Agent})),
		}
		f := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), PoolWorkflowName,
			PoolInput{Owner: r.owner, Repo: r.repo, Pool: p.s.Name, Version: poolVersionCurrent, Routes: &routes, Carried: &c})
		started = append(started, f)
		names = append(names, p.s.Name)
	}
	for i, f := range started {
		if err := f.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
			r.log.Error("Pool not handed over: its workflow did not start", "pool", names[i], "error", err)
		}
	}
	r.log.Info("Repository handed over to one workflow per pool", "pools", names)
	v := r.view()
	return v, nil
}

// handOver is what pool p of the repository carries into its own
// workflow.
func (r *repository) handOver(p *pool, routes Routes) PoolCarried {
	s := p.s
	c := PoolCarried{Configured: true, Config: s.Config, ConfiguredBy: s.ConfiguredBy, ListPrice: s.ListPrice,
		Draining: s.Draining, Failures: s.Failures, BackoffUntil: s.BackoffUntil, Degraded: s.Degraded, LastError: s.LastError,
		AgentOffline: s.AgentOffline, AgentUnchecked: s.AgentUnchecked, Prefix: r.s.Prefix, Seq: r.s.Seq,
		Routes: routes, LastReconcile: r.s.LastPoll, ReconcileNow: true, JobsDone: s.JobsDone, UsageTotals: s.UsageTotals}
	probe := &poolWorkflow{ref: PoolRef{Owner: r.owner, Repo: r.repo, Pool: s.Name}, s: PoolCarried{Prefix: r.s.Prefix}}
	for _, rec := range s.Runners {
		pr := PoolRunner{Name: rec.Name, Agent: s.Config.Agent, State: rec.State, CreatedAt: rec.CreatedAt, Since: rec.Since,
			RunnerID: rec.RunnerID, JobID: rec.JobID, Started: true, Legacy: true, Online: rec.State != RunnerProvisioning,
			DeleteWanted: rec.DeleteSent, DeleteSent: rec.DeleteSent}
		if seq, ok := probe.seqOf(rec.Name); ok {
			pr.Seq, pr.Name = seq, ""
		}
		if rec.IdleSince != nil {
			pr.IdleSince = *rec.IdleSince
		}
		if pr.Since.IsZero() {
			pr.Since = rec.CreatedAt
		}
		c.Runners = append(c.Runners, pr)
	}
	for _, key := range r.s.Seen {
		id, action, ok := strings.Cut(key, "/")
		n, err := strconv.ParseInt(id, 10, 64)
		if !ok || err != nil {
			continue
		}
		switch action {
		case JobQueued:
			c.Marks.set(n, markQueued)
		case JobInProgress:
			c.Marks.set(n, markStarted)
		case JobCompleted:
			c.Marks.set(n, markEnded)
		case jobLost:
			c.Marks.set(n, markLost)
		}
	}
	for i, j := range s.Queue {
		c.Marks.set(j.JobID, markQueued|markCounted)
		if i < queuePage {
			c.Queue = append(c.Queue, j)
		} else {
			c.QueueRest++
		}
	}
	for _, j := range r.s.Running {
		if j.Pool == s.Name && !slices.ContainsFunc(s.Runners, func(rec RunnerRecord) bool { return rec.JobID == j.JobID }) {
			c.Orphans = append(c.Orphans, j)
		}
	}
	for _, j := range r.s.Lost {
		if j.Pool == s.Name {
			c.Lost = append(c.Lost, j)
		}
	}
	c.Retried = slices.Clone(r.s.Retried)
	for _, l := range r.s.Usage {
		if l.Pool == s.Name {
			c.Usage = append(c.Usage, l.clone())
		}
	}
	if routes.Keeper() == s.Name {
		c.Unmatched, c.UnmatchedTotal = slices.Clone(r.s.Unmatched), r.s.UnmatchedTotal
		c.Recheck = slices.Clone(r.s.Recheck)
	}
	return c
}
