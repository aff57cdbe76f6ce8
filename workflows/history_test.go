package workflows

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/garo-run/garo/activities"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// The tests of this file keep workflows alive for 30 simulated days, each
// run in a test environment of its own, and check that every run's
// history stays bounded.

// serverSuggestsAt is the history length at which Temporal's server
// suggests continue-as-new by default; a run must stay below it.
const serverSuggestsAt = 4096

// historyMeter estimates a run's history from what the test environment
// reports, and feeds the estimate back as the run's history length (what a
// real server tells a workflow), so that the workflow's own bound acts as
// it would on a server.
type historyMeter struct {
	env                       *testsuite.TestWorkflowEnvironment
	events                    int
	started, fired, cancelled int
}

// Each thing the workflow waits for costs its own event and, here
// counted with it, the workflow task it wakes (scheduled, started,
// completed) and a command or two it likely answers with; each command the
// workflow gives costs one event.
const (
	wakeEvents    = 5
	commandEvents = 1
)

func newHistoryMeter(env *testsuite.TestWorkflowEnvironment) *historyMeter {
	m := &historyMeter{env: env, events: 3}
	env.SetOnTimerScheduledListener(func(string, time.Duration) { m.started++; m.add(commandEvents) })
	env.SetOnTimerFiredListener(func(string) { m.fired++; m.add(wakeEvents) })
	env.SetOnTimerCanceledListener(func(string) { m.cancelled++; m.add(commandEvents) })
	env.SetOnActivityStartedListener(func(*activity.Info, context.Context, converter.EncodedValues) { m.add(2 * commandEvents) })
	env.SetOnActivityCompletedListener(func(*activity.Info, converter.EncodedValue, error) { m.add(wakeEvents) })
	return m
}

// wake counts something else that woke the workflow: a signal, an update.
func (m *historyMeter) wake() { m.add(wakeEvents) }

// command counts a command the environment does not report, such as a
// signal to another workflow.
func (m *historyMeter) command() { m.add(2*commandEvents + wakeEvents) }

// stats is what the run cost so far.
func (m *historyMeter) stats(from, to time.Time) runStats {
	return runStats{events: m.events, timers: m.started, fired: m.fired, cancelled: m.cancelled, from: from, to: to}
}

func (m *historyMeter) add(n int) {
	m.events += n
	m.env.SetCurrentHistoryLength(m.events)
}

// runStats is what one run cost.
type runStats struct {
	events, timers, fired, cancelled int
	from, to                         time.Time
}

// checkRuns asserts that every run stayed below the server's suggestion
// and left no timer running, and that the workflow lived until the end.
func checkRuns(t *testing.T, runs []runStats, until time.Time) {
	t.Helper()
	require.NotEmpty(t, runs)
	for i, r := range runs {
		require.Less(t, r.events, serverSuggestsAt, "run %d (%s to %s) grew past the server's suggestion", i, r.from, r.to)
		// The timer a run cancels in the very task that continues it as
		// new is not reported by the test environment: one may be unseen.
		require.LessOrEqual(t, r.timers-r.fired-r.cancelled, 1, "run %d left %d timers running", i, r.timers-r.fired-r.cancelled)
	}
	require.False(t, runs[len(runs)-1].to.Before(until), "the workflow ended early, at %s", runs[len(runs)-1].to)
	t.Logf("%d runs over %s; the longest run had about %d events", len(runs), until.Sub(runs[0].from), maxEvents(runs))
}

func maxEvents(runs []runStats) int {
	n := 0
	for _, r := range runs {
		n = max(n, r.events)
	}
	return n
}

// continued returns the input of the next run when the run continued as
// new, and false when it ended.
func continued[T any](t *testing.T, env *testsuite.TestWorkflowEnvironment) (T, bool) {
	t.Helper()
	var next T
	require.True(t, env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		require.NoError(t, err)
		return next, false
	}
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	return next, true
}

// agenda holds what the test does at given times, across the runs of a
// workflow: each run's environment is handed what is still to come, a day
// at a time (an environment's clock slows down with many timers).
type agenda struct {
	env   *testsuite.TestWorkflowEnvironment
	start time.Time
	items []*agendaItem
	// until is how far the current environment has been handed items.
	until time.Time
}

type agendaItem struct {
	at         time.Time
	do         func()
	done, sent bool
}

const agendaWindow = 24 * time.Hour

// run makes env the environment of the next run, which starts at start.
func (a *agenda) run(env *testsuite.TestWorkflowEnvironment, start time.Time) {
	a.env, a.start, a.until = env, start, start
	env.SetStartTime(start)
	kept := a.items[:0]
	for _, it := range a.items {
		if !it.done {
			it.sent = false
			kept = append(kept, it)
		}
	}
	a.items = kept
	sort.SliceStable(a.items, func(i, j int) bool { return a.items[i].at.Before(a.items[j].at) })
	a.handOn()
}

// handOn hands the environment the items of the next window, and itself
// at the window's end.
func (a *agenda) handOn() {
	a.until = a.until.Add(agendaWindow)
	for _, it := range a.items {
		if !it.sent && it.at.Before(a.until) {
			a.register(it)
		}
	}
	a.env.RegisterDelayedCallback(a.handOn, max(0, a.until.Sub(a.now())))
}

// at does do at time t (at once when t has passed).
func (a *agenda) at(t time.Time, do func()) {
	it := &agendaItem{at: t, do: do}
	a.items = append(a.items, it)
	if t.Before(a.until) {
		a.register(it)
	}
}

func (a *agenda) register(it *agendaItem) {
	it.sent = true
	env := a.env
	env.RegisterDelayedCallback(func() {
		// A workflow that has continued as new takes nothing more: the
		// next run gets it (a server would have refused the
		// continue-as-new and handed the run the signal).
		if !it.done && !env.IsWorkflowCompleted() {
			it.done = true
			it.do()
		}
	}, max(0, it.at.Sub(a.now())))
}

func (a *agenda) now() time.Time {
	if n := a.env.Now(); !n.IsZero() && n.After(a.start) {
		return n
	}
	return a.start
}

// quietSuite is a test suite whose environments log warnings only: the
// long tests run hundreds of thousands of activities.
func quietSuite() *testsuite.WorkflowTestSuite {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	return &s
}

// liveRunner runs a RunnerWorkflow from in until until, each run in an
// environment of its own, with jobs from jobs (start times; each takes
// jobTime), and then deletes it. It returns what each run cost and what
// the runner told its pool.
func liveRunner(t *testing.T, in RunnerInput, from, until time.Time, jobs []time.Time, jobTime time.Duration) (runs []runStats, told []RunnerState) {
	a := &agenda{}
	var e *runnerEnv
	var m *historyMeter
	signal := func(action string) func() {
		return func() {
			m.wake()
			e.env.SignalWorkflow(SignalControl, RunnerControl{Action: action, JobID: 5})
		}
	}
	start := from
	for first := true; ; first = false {
		e = newRunnerEnv(t)
		m = newHistoryMeter(e.env)
		e.onTell = func(ev RunnerEvent) {
			m.command()
			told = append(told, ev.State)
		}
		a.run(e.env, start)
		if first {
			for _, j := range jobs {
				a.at(j, signal(ControlBusy))
				a.at(j.Add(jobTime), signal(ControlJobDone))
			}
			a.at(until, signal(ControlDelete))
		}
		e.env.ExecuteWorkflow(RunnerWorkflow, in)
		runs = append(runs, m.stats(start, e.env.Now()))
		next, ok := continued[RunnerInput](t, e.env)
		if !ok {
			return runs, told
		}
		in, start = next, e.env.Now()
	}
}

func TestAnIdleRunnerLivesThirtyDaysInBoundedRuns(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	until := from.Add(30 * 24 * time.Hour)
	in := runnerInput(true)
	in.BootstrapTimeout = Duration(10 * time.Minute)
	runs, told := liveRunner(t, in, from, until, nil, 0)
	checkRuns(t, runs, until)
	require.Equal(t, []RunnerState{RunnerIdle, RunnerDeleted}, told, "the pool heard of it once online, and once deleted")
}

func TestAReusableRunnerServesAMonthOfJobsInBoundedRuns(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	until := from.Add(30 * 24 * time.Hour)
	var jobs []time.Time
	for at := from.Add(10 * time.Minute); at.Before(until.Add(-time.Hour)); at = at.Add(10 * time.Minute) {
		jobs = append(jobs, at)
	}
	runs, told := liveRunner(t, runnerInput(false), from, until, jobs, 4*time.Minute)
	checkRuns(t, runs, until)
	require.Greater(t, len(runs), 5, "%d jobs take several runs", len(jobs))
	require.Equal(t, []RunnerState{RunnerIdle, RunnerDeleted}, told)
}

// livePool is a RepositoryWorkflow whose runners and GitHub the test plays:
// a runner comes online a little after its workflow starts, GitHub gives a
// queued job to an idle runner, the job takes jobTime, and an ephemeral
// runner goes once its job is done. Every run of the pool gets an
// environment of its own; the runners carry on across them.
type livePool struct {
	t       *testing.T
	a       *agenda
	env     *testsuite.TestWorkflowEnvironment
	m       *historyMeter
	jobTime time.Duration
	idle    []string // runners online without a job, oldest first
	queued  []int64  // jobs waiting on GitHub, oldest first
	done    int
	// gone and finished are the runners reported deleted and the jobs
	// reported completed (by runner).
	gone     map[string]bool
	finished map[int64]string
}

func (p *livePool) newRun(start time.Time) {
	p.env = quietSuite().NewTestWorkflowEnvironment()
	p.env.SetTestTimeout(time.Minute)
	// A run that continues as new leaves its runners running.
	p.env.SetDetachedChildWait(false)
	p.m = newHistoryMeter(p.env)
	p.env.RegisterWorkflowWithOptions(RepositoryWorkflow, workflow.RegisterOptions{Name: RepositoryWorkflowName})
	p.env.RegisterWorkflowWithOptions(p.runner, workflow.RegisterOptions{Name: RunnerWorkflowName})
	// The runners the test plays end when it says so: their workflows
	// never end on their own.
	p.env.RegisterActivityWithOptions(func(context.Context, []string) ([]activities.RunnerEnd, error) { return nil, nil },
		activity.RegisterOptions{Name: activities.AwaitRunnerEndsName})
	p.env.RegisterActivityWithOptions(func(context.Context, string) (bool, error) { return true, nil },
		activity.RegisterOptions{Name: activities.AgentOnlineName})
	p.env.RegisterActivityWithOptions(func(context.Context, activities.ReconcileInput) (activities.Reconciliation, error) {
		return activities.Reconciliation{}, nil
	}, activity.RegisterOptions{Name: activities.GitHubReconcileName})
	p.env.OnActivity(activities.AwaitRunnerEndsName, mock.Anything, mock.Anything).After(59*time.Minute).Return(nil, nil)
	p.env.OnGetVersion(poolEngineVersion, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	p.env.SetOnChildWorkflowStartedListener(func(_ *workflow.Info, _ workflow.Context, args converter.EncodedValues) {
		p.m.add(3 * commandEvents)
		var in RunnerInput
		require.NoError(p.t, args.Get(&in))
		p.started(in.Name)
	})
	// Runners of the runs before this one are not children here: their
	// controls reach this mock, and the test answers for them.
	p.env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, "", SignalControl, mock.Anything).Return(
		func(_, id, _, _ string, arg any) error {
			// The mock runs on a goroutine of its own: the test's state
			// changes on the environment's main loop.
			p.env.RegisterDelayedCallback(func() { p.control(id[strings.LastIndex(id, "/")+1:], arg.(RunnerControl)) }, 0)
			return nil
		})
	p.a.run(p.env, start)
}

// started plays a runner whose workflow started: it comes online 20s
// later. What a runner does is on the agenda, which outlives the run's
// environment, as a runner outlives the run of its pool that started it.
func (p *livePool) started(name string) {
	p.a.at(p.a.now().Add(20*time.Second), func() {
		p.toPool(SignalRunner, RunnerEvent{Name: name, State: RunnerIdle, RunnerID: 1})
		p.idle = append(p.idle, name)
		p.assign()
	})
}

// runner is a runner's workflow while the run that started it lasts: it
// takes its controls.
func (p *livePool) runner(ctx workflow.Context, in RunnerInput) (RunnerResult, error) {
	ch := workflow.GetSignalChannel(ctx, SignalControl)
	for {
		var c RunnerControl
		ch.Receive(ctx, &c)
		p.env.RegisterDelayedCallback(func() { p.control(in.Name, c) }, 0)
		if c.Action == ControlDelete || c.Action == ControlJobDone {
			return RunnerResult{State: RunnerDeleted}, nil
		}
	}
}

// control plays a runner taking a control: one asked to go, or whose
// job is done, goes.
func (p *livePool) control(name string, c RunnerControl) {
	p.m.command()
	if c.Action != ControlDelete && c.Action != ControlJobDone {
		return
	}
	p.idle = slices.DeleteFunc(p.idle, func(n string) bool { return n == name })
	p.a.at(p.a.now().Add(2*time.Second), func() {
		p.toPool(SignalRunner, RunnerEvent{Name: name, State: RunnerDeleted})
		p.gone[name] = true
	})
}

// redeliver sends again what the last run took no notice of: the test
// environment drops a signal that arrives as a run continues as new,
// where a server would have refused the continue-as-new and handed the
// run the signal.
func (p *livePool) redeliver(st RepositoryState, at time.Time) {
	for _, ps := range st.Pools {
		for _, r := range ps.Runners {
			switch name := r.Name; {
			case p.gone[name]:
				p.a.at(at, func() { p.toPool(SignalRunner, RunnerEvent{Name: name, State: RunnerDeleted}) })
			case r.State == RunnerBusy && p.finished[r.JobID] == name:
				job := r.JobID
				p.a.at(at, func() { p.toPool(SignalJob, JobEvent{Action: JobCompleted, JobID: job, RunnerName: name}) })
			}
		}
	}
}

func (p *livePool) toPool(signal string, arg any) {
	p.m.wake()
	p.env.SignalWorkflow(signal, arg)
}

// queue queues job id on GitHub.
func (p *livePool) queue(id int64) {
	p.toPool(SignalJob, JobEvent{Action: JobQueued, JobID: id, Labels: []string{"self-hosted", "linux"}})
	p.queued = append(p.queued, id)
	p.assign()
}

// assign gives the oldest queued job to the runner idle longest, as GitHub
// does.
func (p *livePool) assign() {
	for len(p.idle) > 0 && len(p.queued) > 0 {
		runner, job := p.idle[0], p.queued[0]
		p.idle, p.queued = p.idle[1:], p.queued[1:]
		p.toPool(SignalJob, JobEvent{Action: JobInProgress, JobID: job, RunnerName: runner})
		p.a.at(p.a.now().Add(p.jobTime), func() {
			p.toPool(SignalJob, JobEvent{Action: JobCompleted, JobID: job, RunnerName: runner})
			p.finished[job] = runner
			p.done++
		})
	}
}

func TestABusyPoolServesAMonthOfJobsInBoundedRuns(t *testing.T) {
	t.Parallel()
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	until := from.Add(30 * 24 * time.Hour)
	p := &livePool{t: t, a: &agenda{}, jobTime: 3 * time.Minute, gone: map[string]bool{}, finished: map[int64]string{}}
	in := RepositoryInput{Owner: "octo", Repo: "app"}
	var runs []runStats
	jobs := 0
	p.newRun(from)
	for start, first := from, true; ; first = false {
		if first {
			p.a.at(from, func() {
				p.m.wake()
				p.env.UpdateWorkflow(UpdateConfigure, "", &testsuite.TestUpdateCallback{
					OnReject: func(err error) { t.Error(err) }, OnAccept: func() {}, OnComplete: func(any, error) {},
				}, ConfigureRequest{Config: poolConfig(func(c *PoolConfig) { c.MinIdle, c.MaxRunners = 1, 4 }), Actor: "admin"})
			})
			// Bursts of four jobs every hour.
			for at := from.Add(time.Minute); at.Before(until.Add(-time.Hour)); at = at.Add(time.Hour) {
				for i := range 4 {
					jobs++
					id := int64(jobs)
					p.a.at(at.Add(time.Duration(i)*time.Second), func() { p.queue(id) })
				}
			}
			p.a.at(until, func() {
				p.m.wake()
				p.env.UpdateWorkflow(UpdateDrain, "", &testsuite.TestUpdateCallback{
					OnReject: func(err error) { t.Error(err) }, OnAccept: func() {}, OnComplete: func(any, error) {},
				}, DrainRequest{Actor: "admin"})
			})
		}
		p.env.ExecuteWorkflow(RepositoryWorkflowName, in)
		runs = append(runs, p.m.stats(start, p.env.Now()))
		next, ok := continued[RepositoryInput](t, p.env)
		if !ok {
			break
		}
		in, start = next, p.env.Now()
		p.newRun(start)
		p.redeliver(*next.Repository, start)
	}
	checkRuns(t, runs, until)
	require.Greater(t, len(runs), 10, "%d jobs take many runs", jobs)
	require.Equal(t, jobs, p.done, "every job was served")
}
