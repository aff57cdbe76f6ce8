package workflows

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
)

// poolSim runs a PoolWorkflow on the time-skipping test environment
// against a small model of GitHub and of the pool's agent: runners come
// online bootTime after they are started; GitHub gives each queued job to
// an idle runner, oldest job first; a job runs jobTime; an ephemeral
// runner ends after its job; a runner told to go ends at once, unless
// busy (then after its job). Every tick the model sends the pool the
// webhooks and the agent's reports, as the server would. A run that
// continues as new goes on in a new environment, with the model and the
// test's agenda (actions at times from the start) carried over.
type poolSim struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	ref PoolRef

	mu sync.Mutex
	// Settings.
	bootTime, jobTime, tick time.Duration
	// failNext makes the next runners fail (their instance exits with 1
	// before they come online); neverOnline makes them never come online.
	failNext    int
	neverOnline bool
	// offline are the agents AgentOnline reports offline.
	offline map[string]bool
	// silent: the model sends no webhook (they are lost); the pool learns
	// from reconciliations only.
	silent bool
	// webhookLag delays the job events (not the runners' reports) by this
	// much, as GitHub's deliveries run behind under load.
	webhookLag time.Duration
	// reusable: runners stay after their job.
	reusable bool
	// sweep: the agent's sweep asks the pool to reconcile every
	// SweepEvery while GitHub has jobs queued or running.
	sweep     bool
	lastSweep time.Time
	// jobTimes, when set, gives a job's time by its number (from 0);
	// jobTime otherwise.
	jobTimes map[int]time.Duration
	// manual: the model does nothing by itself; the test sends every
	// event, and answers reconciliations with github.
	manual       bool
	github       func(activities.ReconcileInput) activities.Reconciliation
	reconcileErr func() error
	// rerunTakes is how long GitHubRerunJob takes.
	rerunTakes time.Duration
	// GitHub.
	runners map[string]*simRunner
	live    []string
	started []simStart
	jobs    map[int64]*simJob
	pending []int64
	nextJob int64
	// What the pool did.
	deletes, reconciles, looks, starts int
	// watchesStopped are when the pool cancelled its watch for runners
	// that end unseen.
	watchesStopped []time.Time
	maxActive      int
	reruns         []int64
	forwards       []IntakeBatch
	startBatches   []int
	// Runs: the agenda, when the first began, the inputs each run
	// continued as new with.
	epoch     time.Time
	agenda    []*simAction
	continued []PoolInput
}

type simAction struct {
	at   time.Duration
	f    func()
	done bool
}

type simStart struct {
	name string
	at   time.Time
}

type simRunner struct {
	name      string
	created   time.Time
	online    bool
	job       int64
	deleteReq bool
	ended     bool
	fail      bool
	never     bool
}

type simJob struct {
	id       int64
	num      int
	labels   []string
	queued   time.Time
	started  time.Time
	runner   string
	done     bool
	canceled bool
}

func newPoolSim(t *testing.T) *poolSim {
	return &poolSim{t: t, ref: PoolRef{Owner: "octo", Repo: "app", Pool: DefaultPool},
		bootTime: time.Second, jobTime: 5 * time.Second, tick: 500 * time.Millisecond,
		offline: map[string]bool{}, runners: map[string]*simRunner{}, jobs: map[int64]*simJob{}, nextJob: 100}
}

// newEnv makes the environment of one run, from start.
func (s *poolSim) newEnv(start time.Time) {
	s.env = quietSuite().NewTestWorkflowEnvironment()
	s.env.SetStartTime(start)
	s.env.RegisterWorkflowWithOptions(PoolWorkflow, workflow.RegisterOptions{Name: PoolWorkflowName})
	s.env.RegisterActivityWithOptions(s.startRunners, activity.RegisterOptions{Name: activities.StartRunnersName})
	s.env.RegisterActivityWithOptions(func(context.Context, RunnerLookInput) (RunnerLookResult, error) {
		return RunnerLookResult{}, nil
	}, activity.RegisterOptions{Name: activities.WatchRunnerEndsName})
	s.env.RegisterActivityWithOptions(s.reconcile, activity.RegisterOptions{Name: activities.GitHubReconcileName})
	s.env.RegisterActivityWithOptions(func(_ context.Context, agent string) (bool, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return !s.offline[agent], nil
	}, activity.RegisterOptions{Name: activities.AgentOnlineName})
	s.env.RegisterActivityWithOptions(func(_ context.Context, in activities.RerunInput) (activities.RerunResult, error) {
		return activities.RerunResult{}, nil
	}, activity.RegisterOptions{Name: activities.GitHubRerunJobName})
	s.env.OnActivity(activities.GitHubRerunJobName, mock.Anything, mock.Anything).After(s.rerunTakes).Return(
		func(_ context.Context, in activities.RerunInput) (activities.RerunResult, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.reruns = append(s.reruns, in.JobID)
			return activities.RerunResult{Rerun: true}, nil
		})
	s.env.OnActivity(activities.WatchRunnerEndsName, mock.Anything, mock.Anything).After(time.Hour).Return(
		func(context.Context, RunnerLookInput) (RunnerLookResult, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.looks++
			return RunnerLookResult{Until: s.env.Now().Add(-time.Minute)}, nil
		})
	s.env.SetOnActivityCanceledListener(func(info *activity.Info) {
		if info.ActivityType.Name == activities.WatchRunnerEndsName {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.watchesStopped = append(s.watchesStopped, s.env.Now())
		}
	})
	s.env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, "", SignalControl, mock.Anything).Return(
		func(_, id, _, _ string, arg any) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			if c, ok := arg.(RunnerControl); ok && c.Action == ControlDelete {
				s.deletes++
				if r := s.runners[id[len("garo/runner/octo/app/"):]]; r != nil {
					r.deleteReq = true
				}
			}
			return nil
		})
	s.env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, "", SignalIntake, mock.Anything).Return(
		func(_, _, _, _ string, arg any) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.forwards = append(s.forwards, arg.(IntakeBatch))
			return nil
		})
}

// startRunners fakes StartRunners: each runner's instance starts now.
func (s *poolSim) startRunners(_ context.Context, in StartRunnersInput) (StartRunnersResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.env.Now()
	s.starts++
	s.startBatches = append(s.startBatches, len(in.Runners))
	for _, r := range in.Runners {
		if _, ok := s.runners[r.Name]; ok {
			continue // a retry
		}
		sr := &simRunner{name: r.Name, created: now, never: s.neverOnline}
		if s.failNext > 0 {
			s.failNext--
			sr.fail = true
		}
		s.runners[r.Name] = sr
		s.live = append(s.live, r.Name)
		s.started = append(s.started, simStart{r.Name, now})
	}
	return StartRunnersResult{}, nil
}

// reconcile fakes GitHubReconcile from the model.
func (s *poolSim) reconcile(_ context.Context, in activities.ReconcileInput) (activities.Reconciliation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reconciles++
	if s.reconcileErr != nil {
		if err := s.reconcileErr(); err != nil {
			return activities.Reconciliation{}, err
		}
	}
	if s.github != nil {
		return s.github(in), nil
	}
	out := activities.Reconciliation{QueuedComplete: true}
	for _, name := range in.Runners {
		if r := s.runners[name]; r != nil && !r.ended && r.online {
			out.Runners = append(out.Runners, activities.RunnerState{Name: name, ID: 7, Status: "online", Busy: r.job != 0})
		}
	}
	if in.RunnersOnly {
		return out, nil
	}
	for _, id := range s.pending {
		j := s.jobs[id]
		out.Queued = append(out.Queued, activities.QueuedJob{ID: id, Labels: j.labels, CreatedAt: j.queued})
	}
	for _, name := range s.live {
		if r := s.runners[name]; r.job != 0 && !r.ended {
			j := s.jobs[r.job]
			st := j.started
			out.Started = append(out.Started, activities.JobState{QueuedJob: activities.QueuedJob{ID: j.id, Labels: j.labels},
				Status: "in_progress", RunnerName: j.runner, StartedAt: &st})
		}
	}
	for _, id := range in.Running {
		if j, ok := s.jobs[id]; ok && (j.done || j.canceled) {
			st := activities.JobState{QueuedJob: activities.QueuedJob{ID: id, Labels: j.labels, CreatedAt: j.queued},
				Status: "completed", Conclusion: "success", RunnerName: j.runner}
			if j.canceled {
				st.Conclusion = "cancelled"
			}
			out.Ended = append(out.Ended, st)
		}
	}
	return out, nil
}

// queue queues n jobs on GitHub at d, with their webhooks (unless
// silent), at most 500 a signal.
func (s *poolSim) queue(d time.Duration, n int, labels ...string) {
	if labels == nil {
		labels = []string{"self-hosted", "linux"}
	}
	s.at(d, func() {
		s.mu.Lock()
		var evs []JobEvent
		now := s.env.Now()
		for range n {
			s.nextJob++
			id := s.nextJob
			s.jobs[id] = &simJob{id: id, num: len(s.jobs), labels: labels, queued: now}
			s.pending = append(s.pending, id)
			evs = append(evs, JobEvent{Action: JobQueued, Repository: "octo/app", JobID: id, Labels: labels, CreatedAt: &now, Routed: true})
		}
		silent := s.silent
		s.mu.Unlock()
		for len(evs) > 0 && !silent {
			n := min(len(evs), 500)
			s.env.SignalWorkflow(SignalIntake, IntakeBatch{Jobs: evs[:n]})
			evs = evs[n:]
		}
	})
}

// at puts f on the agenda, d after the first run's start.
func (s *poolSim) at(d time.Duration, f func()) { s.agenda = append(s.agenda, &simAction{at: d, f: f}) }

// schedule has the run's environment carry out the agenda (what is due
// after its start, in order) and the model's ticks. (The environment
// takes at most 1,000 callbacks before it runs: one drives the agenda.)
func (s *poolSim) schedule(start time.Time) {
	slices.SortStableFunc(s.agenda, func(a, b *simAction) int { return cmp.Compare(a.at, b.at) })
	var next func()
	next = func() {
		for _, a := range s.agenda {
			if a.done {
				continue
			}
			due := s.epoch.Add(a.at)
			if now := s.env.Now(); due.After(now) {
				s.env.RegisterDelayedCallback(next, due.Sub(now))
				return
			}
			a.done = true
			a.f()
		}
	}
	s.env.RegisterDelayedCallback(next, 0)
	var step func()
	step = func() {
		s.step()
		// The model stops an hour after the agenda's last action: a
		// pool that never ends fails its test, rather than running for
		// ever.
		if s.env.Now().Before(s.epoch.Add(s.agenda[len(s.agenda)-1].at + time.Hour)) {
			s.env.RegisterDelayedCallback(step, s.tick)
		}
	}
	s.env.RegisterDelayedCallback(step, s.tick)
}

// step moves the model on: runners come online, take jobs, end them, go.
func (s *poolSim) step() {
	if s.manual {
		s.answerDeletes()
		return
	}
	s.mu.Lock()
	now := s.env.Now()
	var jobs []JobEvent
	var reports []activities.RunnerReport
	report := func(name, outcome string, code int) {
		reports = append(reports, activities.RunnerReport{Runner: name, Agent: "lab-1", Event: activities.ReportEnded,
			Outcome: outcome, ExitCode: code})
	}
	active := 0
	s.live = slices.DeleteFunc(s.live, func(name string) bool { return s.runners[name].ended })
	for _, name := range s.live {
		r := s.runners[name]
		if r.ended {
			continue
		}
		active++
		switch {
		case r.fail && now.Sub(r.created) >= s.bootTime:
			r.ended = true
			report(name, activities.OutcomeExited, 1)
			continue
		case !r.online && !r.never && now.Sub(r.created) >= s.bootTime:
			r.online = true
		}
		if r.job != 0 {
			j := s.jobs[r.job]
			length := s.jobTime
			if d, ok := s.jobTimes[j.num]; ok {
				length = d
			}
			if now.Sub(j.started) < length {
				continue
			}
			j.done = true
			done := now
			jobs = append(jobs, JobEvent{Action: JobCompleted, Repository: "octo/app", JobID: j.id, Labels: j.labels,
				RunnerName: name, Conclusion: "success", CreatedAt: &j.queued, StartedAt: &j.started, CompletedAt: &done, Routed: true})
			r.job = 0
			if !s.reusable {
				r.ended = true
				report(name, activities.OutcomeExited, 0)
			}
			continue
		}
		if r.deleteReq {
			r.ended = true
			report(name, activities.OutcomeDeleted, 0)
			continue
		}
		if r.online && len(s.pending) > 0 {
			j := s.jobs[s.pending[0]]
			s.pending = s.pending[1:]
			j.runner, j.started, r.job = name, now, j.id
			st := now
			jobs = append(jobs, JobEvent{Action: JobInProgress, Repository: "octo/app", JobID: j.id, Labels: j.labels,
				RunnerName: name, CreatedAt: &j.queued, StartedAt: &st, Routed: true})
		}
	}
	s.maxActive = max(s.maxActive, active)
	if s.silent {
		jobs = nil
	}
	sweep := s.sweep && now.Sub(s.lastSweep) >= SweepEvery && (len(s.pending) > 0 || active > 0)
	if sweep {
		s.lastSweep = now
	}
	s.mu.Unlock()
	if sweep {
		s.env.SignalWorkflow(SignalResync, ResyncRequest{Reason: "its agent's sweep found runs queued or in progress"})
	}
	if s.webhookLag > 0 && len(jobs) > 0 {
		late := jobs
		jobs = nil
		s.env.RegisterDelayedCallback(func() {
			for len(late) > 0 {
				b := IntakeBatch{Jobs: late[:min(len(late), 500)]}
				late = late[len(b.Jobs):]
				s.env.SignalWorkflow(SignalIntake, b)
			}
		}, s.webhookLag)
	}
	for len(jobs)+len(reports) > 0 {
		b := IntakeBatch{Jobs: jobs[:min(len(jobs), 500)], Runners: reports[:min(len(reports), 500)]}
		jobs, reports = jobs[len(b.Jobs):], reports[len(b.Runners):]
		s.env.SignalWorkflow(SignalIntake, b)
	}
}

// configure configures the pool at d.
func (s *poolSim) configure(d time.Duration, c PoolConfig, errp *error) {
	s.configureWith(d, ConfigureRequest{Pool: s.ref.Pool, Config: c, Actor: "admin"}, errp)
}

func (s *poolSim) configureWith(d time.Duration, req ConfigureRequest, errp *error) {
	s.at(d, func() {
		s.env.UpdateWorkflow(UpdateConfigure, "", &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { *errp = err },
			OnComplete: func(_ any, err error) { *errp = err },
		}, req)
	})
}

// drain drains the pool at d.
func (s *poolSim) drain(d time.Duration) {
	s.at(d, func() {
		s.env.UpdateWorkflow(UpdateDrain, "", &testsuite.TestUpdateCallback{
			OnReject: func(error) {}, OnComplete: func(any, error) {},
		}, DrainRequest{Pool: s.ref.Pool, Actor: "admin"})
	})
}

// status takes the pool's status at d.
func (s *poolSim) status(d time.Duration, out *PoolStatus) {
	s.at(d, func() { *out = s.query() })
}

// continueAt has the pool's run told, at d, that the server suggests it
// continues as new.
func (s *poolSim) continueAt(d time.Duration) {
	s.at(d, func() { s.env.SetContinueAsNewSuggested(true) })
}

func (s *poolSim) query() PoolStatus {
	enc, err := s.env.QueryWorkflow(QueryState)
	require.NoError(s.t, err)
	var st PoolStatus
	require.NoError(s.t, enc.Get(&st))
	return st
}

// run runs the pool, run after run, until it ends (a test drains it), and
// returns its last view.
func (s *poolSim) run() PoolView {
	return s.runWith(PoolInput{Owner: s.ref.Owner, Repo: s.ref.Repo, Pool: s.ref.Pool, Version: PoolVersionCurrent})
}

func (s *poolSim) runWith(in PoolInput) PoolView {
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	s.epoch = start
	for range 1000 {
		s.newEnv(start)
		s.schedule(start)
		s.env.SetTestTimeout(30 * time.Second)
		s.env.ExecuteWorkflow(PoolWorkflowName, in)
		require.True(s.t, s.env.IsWorkflowCompleted(), "the pool did not end")
		err := s.env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			in = PoolInput{}
			require.NoError(s.t, json.Unmarshal(mustJSON(s.t, can.Input), &in), "the input a run continues with")
			s.continued = append(s.continued, in)
			start = s.env.Now()
			continue
		}
		require.NoError(s.t, err)
		var v PoolView
		require.NoError(s.t, s.env.GetWorkflowResult(&v))
		return v
	}
	s.t.Fatal("the pool did not end within 1000 runs")
	return PoolView{}
}

// mustJSON is the JSON of the single payload of a continue-as-new input.
func mustJSON(t *testing.T, p *commonpb.Payloads) []byte {
	t.Helper()
	ps := p.GetPayloads()
	require.Len(t, ps, 1)
	return ps[0].GetData()
}

// done counts the jobs GitHub ran to their end.
func (s *poolSim) done() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, j := range s.jobs {
		if j.done {
			n++
		}
	}
	return n
}

// send signals job events to the pool at d (routed to it by the server).
func (s *poolSim) send(d time.Duration, evs ...func() JobEvent) {
	s.at(d, func() {
		b := IntakeBatch{}
		for _, ev := range evs {
			e := ev()
			if !e.Unmatched {
				e.Routed = true
			}
			b.Jobs = append(b.Jobs, e)
		}
		s.env.SignalWorkflow(SignalIntake, b)
	})
}

// ev makes a job event, its runner named when the event is sent (by the
// number of its start, from 0; -1 for none).
func (s *poolSim) ev(action string, id int64, runner int, labels ...string) func() JobEvent {
	return func() JobEvent {
		if labels == nil {
			labels = []string{"self-hosted", "linux"}
		}
		now := s.env.Now()
		e := JobEvent{Action: action, Repository: "octo/app", JobID: id, Labels: labels, CreatedAt: &now}
		if runner >= 0 {
			e.RunnerName = s.name(runner)
		}
		if action == JobCompleted {
			e.Conclusion = "success"
		}
		return e
	}
}

// name is the name of the i-th runner started ("" before it is).
func (s *poolSim) name(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < len(s.started) {
		return s.started[i].name
	}
	return ""
}

// ended has the agent report, at d, the end of the i-th runner started.
func (s *poolSim) ended(d time.Duration, i int, outcome string, code int) {
	s.at(d, func() {
		s.env.SignalWorkflow(SignalIntake, IntakeBatch{Runners: []activities.RunnerReport{{Runner: s.name(i), Agent: "lab-1",
			Event: activities.ReportEnded, Outcome: outcome, ExitCode: code}}})
	})
}

// answerDeletes has the runners told to go end, in a manual model.
func (s *poolSim) answerDeletes() {
	s.mu.Lock()
	var reports []activities.RunnerReport
	for _, name := range s.live {
		if r := s.runners[name]; r.deleteReq && !r.ended {
			r.ended = true
			reports = append(reports, activities.RunnerReport{Runner: name, Agent: "lab-1", Event: activities.ReportEnded,
				Outcome: activities.OutcomeDeleted})
		}
	}
	s.mu.Unlock()
	if len(reports) > 0 {
		s.env.SignalWorkflow(SignalIntake, IntakeBatch{Runners: reports})
	}
}
