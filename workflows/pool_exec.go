package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
)

// The pool's loop carries out what its rule decides (plan) and what its
// state asks for (intents: runners to start or delete, jobs to hand on,
// jobs to run again). Each is idempotent and confirmed by its result, so
// that an intent a run could not confirm before it continued as new is
// carried out again by the next. No task issues more than
// maxCommandsPerTask commands.

// StartRunnersInput asks the server to start runner workflows (local
// activity StartRunners, run by the server that runs the pool's task): a
// pool starts its runners in batches, not as children, so that it holds
// no pending child and one task starts thousands.
type StartRunnersInput struct {
	// Pool is the pool's key (GaroPool).
	Pool    string        `json:"pool"`
	Runners []RunnerInput `json:"runners"`
}

// StartRunnersResult tells which runners could not be started (a runner
// whose workflow exists, or has run, is started).
type StartRunnersResult struct {
	Failed []RunnerStartError `json:"failed,omitempty"`
}

// RunnerStartError is a runner whose workflow could not be started.
type RunnerStartError struct {
	Name  string `json:"name"`
	Error string `json:"error"`
}

// RunnerLookInput asks the server to watch a pool's runner workflows
// for those that end without their agent's report (activity
// WatchRunnerEnds): any of the pool's (GaroPool) that closes, since
// Since, otherwise than completed, and those of Names (runners from
// before pools) that close at all.
type RunnerLookInput struct {
	Owner string    `json:"owner"`
	Repo  string    `json:"repo"`
	Pool  string    `json:"pool"`
	Names []string  `json:"names,omitempty"`
	Since time.Time `json:"since"`
}

// RunnerLookResult is what a watch found, and up to when it looked.
type RunnerLookResult struct {
	Ends  []activities.RunnerEnd `json:"ends,omitempty"`
	Until time.Time              `json:"until"`
}

// Timing of a pool's looks at GitHub for its new runners.
const (
	// onlineLookFirst is how old a runner not known online (it took no
	// job) must be before the pool asks GitHub whether it is;
	// onlineLookMax the longest the pool waits between such looks. A
	// runner that takes a job is known online by its webhook.
	onlineLookFirst = 30 * time.Second
	onlineLookMax   = 2 * time.Minute
)

// step decides and acts; it returns when the pool next needs to look
// again (zero: on the next event only).
func (p *poolWorkflow) step(ctx workflow.Context) time.Time {
	var next time.Time
	wake := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	p.askAgent(ctx)
	if p.s.Configured {
		queued, expires := p.planQueued()
		wake(expires)
		pl := plan(planInput{Config: p.s.Config, Runners: p.s.Runners, Queued: queued, Draining: p.s.Draining,
			AgentOffline: p.s.AgentOffline, AgentUnchecked: p.s.AgentUnchecked, BackoffUntil: p.s.BackoffUntil,
			Retarget: p.retarget, Now: p.now})
		p.retarget = false
		for _, d := range pl.Delete {
			p.wantDelete(d)
		}
		p.addRunners(pl.Start)
		wake(pl.Wake)
	}
	p.dropUnstarted()
	p.startRunners(ctx)
	p.sendDeletes(ctx)
	p.sendForwards(ctx)
	p.sendReruns(ctx)
	wake(p.reconcileGitHub(ctx))
	p.watchEnds(ctx)
	return next
}

// wantDelete marks a runner for deletion; a runner given up counts as a
// bootstrap failure, and the pool backs off.
func (p *poolWorkflow) wantDelete(d deletion) {
	r := &p.s.Runners[d.Index]
	p.accrue(r, p.now)
	r.DeleteWanted = true
	name := p.runnerName(*r)
	if d.GiveUp {
		r.GaveUp = true
		p.countBootstrapFailure()
		p.fail(fmt.Sprintf("runner %s did not come online within %s", name, p.s.Config.BootstrapTimeout), name)
		return
	}
	p.log.Info("Runner to be deleted", "runner", name, "reason", d.Reason)
}

// addRunners records n new runners, to be started.
func (p *poolWorkflow) addRunners(n int) {
	for range n {
		p.s.Seq++
		p.s.Runners = append(p.s.Runners, PoolRunner{Seq: p.s.Seq, Agent: p.s.Config.Agent, State: RunnerProvisioning,
			CreatedAt: p.now, Since: p.now})
	}
	if n > 0 {
		p.dirty = true
	}
}

// dropUnstarted forgets runners the pool wants gone before their workflow
// was started: there is nothing to delete.
func (p *poolWorkflow) dropUnstarted() {
	p.s.Runners = slices.DeleteFunc(p.s.Runners, func(r PoolRunner) bool {
		return r.DeleteWanted && !r.Started && !r.Legacy && !p.startingRunners[r.Seq]
	})
}

// runnerInput is what a runner of the pool starts with.
func (p *poolWorkflow) runnerInput(r PoolRunner) RunnerInput {
	cfg := p.s.Config
	group, _ := RunnerGroupID(cfg.RunnerGroup)
	return RunnerInput{RepositoryID: p.ref.WorkflowID(), Pool: p.ref.Pool, Owner: p.ref.Owner, Repo: p.ref.Repo,
		Name: p.runnerName(r), Agent: r.Agent, Labels: cfg.Labels, GroupID: group, Ephemeral: cfg.Ephemeral,
		BootstrapTimeout: cfg.BootstrapTimeout, Provider: cfg.Provider, Version: runnerVersionCurrent}
}

// startRunners starts, through the server's StartRunners, the workflows
// of the runners recorded and not started, startBatch a call.
func (p *poolWorkflow) startRunners(ctx workflow.Context) {
	var batch []int
	flush := func() bool {
		if len(batch) == 0 {
			return true
		}
		if !p.command() {
			return false
		}
		in := StartRunnersInput{Pool: p.ref.Key()}
		seqs := make([]int, 0, len(batch))
		for _, i := range batch {
			r := p.s.Runners[i]
			in.Runners = append(in.Runners, p.runnerInput(r))
			seqs = append(seqs, r.Seq)
			p.startingRunners[r.Seq] = true
		}
		batch = batch[:0]
		p.starting++
		// A local activity: the server that runs the pool's task starts
		// the workflows, with no task of its own (one event a batch).
		actx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
			Summary:             fmt.Sprintf("start %d runners of pool %s of %s", len(in.Runners), p.ref.Pool, p.ref.Repository()),
		})
		f := workflow.ExecuteLocalActivity(actx, activities.StartRunnersName, in)
		workflow.Go(ctx, func(ctx workflow.Context) {
			var res StartRunnersResult
			err := f.Get(ctx, &res)
			p.starting--
			p.dirty = true
			failed := map[string]string{}
			for _, e := range res.Failed {
				failed[e.Name] = e.Error
			}
			for _, seq := range seqs {
				delete(p.startingRunners, seq)
				i := slices.IndexFunc(p.s.Runners, func(r PoolRunner) bool { return r.Seq == seq })
				if i < 0 {
					continue
				}
				name := p.runnerName(p.s.Runners[i])
				switch {
				case err != nil:
					p.runnerEnded(i, activities.OutcomeFailed, 0, "start runner workflow: "+rootMessage(err))
				case failed[name] != "":
					p.runnerEnded(i, activities.OutcomeFailed, 0, "start runner workflow: "+failed[name])
				default:
					p.s.Runners[i].Started = true
				}
			}
		})
		return true
	}
	for i, r := range p.s.Runners {
		if r.Started || r.Legacy || r.DeleteWanted || p.startingRunners[r.Seq] {
			continue
		}
		batch = append(batch, i)
		if len(batch) == startBatch && !flush() {
			return
		}
	}
	flush()
}

// sendDeletes tells the runners the pool wants gone, once their workflow
// is started. A runner whose workflow has ended is gone.
func (p *poolWorkflow) sendDeletes(ctx workflow.Context) {
	for _, r := range p.s.Runners {
		name := p.runnerName(r)
		if !r.DeleteWanted || r.DeleteSent || (!r.Started && !r.Legacy) || p.sendingDelete[name] {
			continue
		}
		if !p.command() {
			return
		}
		p.sendingDelete[name] = true
		f := workflow.SignalExternalWorkflow(ctx, RunnerWorkflowID(p.ref.Owner, p.ref.Repo, name), "", SignalControl,
			RunnerControl{Action: ControlDelete})
		workflow.Go(ctx, func(ctx workflow.Context) {
			err := f.Get(ctx, nil)
			delete(p.sendingDelete, name)
			p.dirty = true
			i := p.runnerIndex(name)
			if i < 0 {
				return
			}
			var unknown *temporal.UnknownExternalWorkflowExecutionError
			switch {
			case err == nil:
				p.s.Runners[i].DeleteSent = true
			case errors.As(err, &unknown):
				// Its workflow has ended: it is gone.
				p.runnerEnded(i, activities.OutcomeDeleted, 0, "")
			default:
				p.log.Warn("Runner did not take its delete; trying again", "runner", name, "error", err)
			}
		})
	}
}

// sendForwards hands jobs on to the pools they now belong to, one signal
// per pool. A pool that has ended is taken out of the routes, and its
// jobs routed again.
func (p *poolWorkflow) sendForwards(ctx workflow.Context) {
	var pools []string
	for _, f := range p.s.Forwards {
		if !slices.Contains(pools, f.Pool) && !p.forwarding[f.Pool] {
			pools = append(pools, f.Pool)
		}
	}
	for _, pool := range pools {
		if !p.command() {
			return
		}
		b := IntakeBatch{RoutesVersion: p.s.Routes.Version}
		var ids []int64
		for _, f := range p.s.Forwards {
			if f.Pool != pool || len(b.Jobs) >= startBatch {
				continue
			}
			j := f.Job
			created := j.QueuedAt
			b.Jobs = append(b.Jobs, JobEvent{Action: JobQueued, Repository: p.ref.Repository(), JobID: j.JobID, RunID: j.RunID,
				Name: j.Name, Labels: j.Labels, CreatedAt: &created, Routed: !f.Unmatched, Unmatched: f.Unmatched})
			ids = append(ids, j.JobID)
		}
		p.forwarding[pool] = true
		fut := workflow.SignalExternalWorkflow(ctx, PoolWorkflowID(p.ref.Owner, p.ref.Repo, pool), "", SignalIntake, b)
		workflow.Go(ctx, func(ctx workflow.Context) {
			err := fut.Get(ctx, nil)
			delete(p.forwarding, pool)
			p.dirty = true
			var unknown *temporal.UnknownExternalWorkflowExecutionError
			if err != nil && !errors.As(err, &unknown) {
				p.log.Warn("Jobs not handed on; trying again", "pool", pool, "error", err)
				return
			}
			var sent []Forward
			p.s.Forwards = slices.DeleteFunc(p.s.Forwards, func(f Forward) bool {
				if f.Pool == pool && slices.Contains(ids, f.Job.JobID) {
					sent = append(sent, f)
					return true
				}
				return false
			})
			if err != nil {
				// The pool has ended: route its jobs again without it.
				p.log.Info("Pool to hand jobs on to has ended; routing them again", "pool", pool, "jobs", len(sent))
				p.s.Routes = p.s.Routes.Without(pool)
				p.s.Routes.Version++
				for _, f := range sent {
					p.place(f.Job, f.Unmatched, 0, false)
				}
			}
		})
	}
}

// sendReruns asks GitHub, through the pool's agent, to run again the
// lost jobs it decided to: each once (the activity starts no second
// attempt of a run that is at a later attempt already).
func (p *poolWorkflow) sendReruns(ctx workflow.Context) {
	for _, id := range p.s.Reruns {
		if p.rerunning[id] {
			continue
		}
		if !p.command() {
			return
		}
		p.rerunning[id] = true
		agent := p.s.Config.Agent
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:              AgentTaskQueue(agent),
			ActivityID:             p.agentActivityID(agent, "rerun"),
			ScheduleToStartTimeout: 10 * time.Minute,
			StartToCloseTimeout:    time.Minute,
			Summary:                "run job again after its runner was lost, in " + p.ref.Repository(),
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 10,
				NonRetryableErrorTypes: []string{activities.ErrTypeInvalid, activities.ErrTypeNotFound}},
		})
		f := workflow.ExecuteActivity(actx, activities.GitHubRerunJobName, activities.RerunInput{
			Repo: activities.Repo{Owner: p.ref.Owner, Name: p.ref.Repo}, JobID: id})
		workflow.Go(ctx, func(ctx workflow.Context) {
			err := f.Get(ctx, nil)
			delete(p.rerunning, id)
			p.s.Reruns = slices.DeleteFunc(p.s.Reruns, func(j int64) bool { return j == id })
			if err != nil {
				p.log.Warn("Lost job not run again", "job", id, "error", err)
			}
		})
	}
}

// agentActivityID names the next activity on agent's queue: Temporal's
// authorizer checks an agent's task tokens against the "agent/NAME/"
// prefix.
func (p *poolWorkflow) agentActivityID(agent, what string) string {
	p.s.Calls++
	return AgentActivityID(agent, what+"/"+p.ref.Pool, p.s.Calls)
}

// askAgent asks, when the pool has not learnt it yet, whether its agent
// is online (local activity AgentOnline). The pool starts
// no runner until it knows. If the question fails, the pool takes its
// agent for online and learns of the next change from the agent's
// workflow.
func (p *poolWorkflow) askAgent(ctx workflow.Context) {
	if !p.s.Configured || !p.s.AgentUnchecked || p.asking || p.s.Draining || !p.command() {
		return
	}
	p.asking = true
	agent := p.s.Config.Agent
	// A local activity: the server that runs the pool's task asks.
	actx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		Summary:             "is agent " + agent + " online?",
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 5},
	})
	f := workflow.ExecuteLocalActivity(actx, activities.AgentOnlineName, agent)
	workflow.Go(ctx, func(ctx workflow.Context) {
		online := true // what the pool takes if it cannot learn
		if err := f.Get(ctx, &online); err != nil {
			p.log.Warn("Could not learn whether the pool's agent is online; taking it for online", "agent", agent, "error", err)
		}
		p.asking, p.dirty = false, true
		if p.s.AgentUnchecked && p.s.Config.Agent == agent {
			p.s.AgentOffline, p.s.AgentUnchecked = !online, false
			if !online {
				p.log.Info("The pool's agent is offline; runners start when it is back", "agent", agent)
			}
		}
	})
}

// watchEnds keeps, while the pool has runners, a watch of their
// workflows on the server (WatchRunnerEnds): it returns those that ended
// without their agent's report (terminated by an operator, say), and the
// pool's runners from before pools as they end. The watch costs the pool
// nothing while it waits.
func (p *poolWorkflow) watchEnds(ctx workflow.Context) {
	if len(p.s.Runners) == 0 && p.watching && p.stopWatch != nil && p.version >= poolV2 {
		// No runner left to watch: a dormant pool holds no activity open.
		if p.command() {
			p.stopWatch()
			p.stopWatch = nil
		}
		return
	}
	if len(p.s.Runners) == 0 || p.watching || !p.command() {
		return
	}
	var names []string
	for _, r := range p.s.Runners {
		if r.Legacy && len(names) < 200 {
			names = append(names, p.runnerName(r))
		}
	}
	since := p.s.LastLook
	if since.IsZero() {
		since = p.now.Add(-time.Minute)
	}
	in := RunnerLookInput{Owner: p.ref.Owner, Repo: p.ref.Repo, Pool: p.ref.Key(), Names: names, Since: since}
	p.watching = true
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           ServerTaskQueue,
		StartToCloseTimeout: 70 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		Summary:             "watch for runners of pool " + p.ref.Pool + " of " + p.ref.Repository() + " that end unseen",
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
	if p.version >= poolV2 {
		actx, p.stopWatch = workflow.WithCancel(actx)
	}
	f := workflow.ExecuteActivity(actx, activities.WatchRunnerEndsName, in)
	workflow.Go(ctx, func(ctx workflow.Context) {
		var res RunnerLookResult
		err := f.Get(ctx, &res)
		p.watching, p.dirty, p.stopWatch = false, true, nil
		if temporal.IsCanceledError(err) {
			return
		}
		if err != nil {
			p.log.Warn("Watching for runners that end unseen failed; watching again", "error", err)
			return
		}
		if res.Until.After(p.s.LastLook) {
			p.s.LastLook = res.Until
		}
		// A runner's report comes before its workflow ends: take the
		// reports that came first.
		p.now = workflow.Now(ctx)
		p.takeSignals(ctx)
		for _, end := range res.Ends {
			name := end.WorkflowID[strings.LastIndex(end.WorkflowID, "/")+1:]
			i := p.runnerIndex(name)
			if i < 0 {
				continue
			}
			r := p.s.Runners[i]
			if end.Status == "completed" || r.DeleteWanted || r.GaveUp {
				p.runnerEnded(i, activities.OutcomeDeleted, 0, "")
				continue
			}
			p.log.Warn("Runner workflow ended without its agent's report", "runner", name, "status", end.Status)
			p.runnerEnded(i, activities.OutcomeExited, -1, "runner workflow "+end.Status)
		}
	})
}
