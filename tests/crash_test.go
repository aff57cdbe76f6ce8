package tests

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"

	"github.com/garo-run/garo/tests/githubsim"
	"github.com/garo-run/garo/workflows"
)

// The crash matrix: real processes, kill -9 at the worst moment, restart.
// Each case runs crashJobs jobs on a pool of crashMaxRunners and checks
// that every job completes, that the pool counts each one, that no runner,
// registration or instance is left once it has settled, and that live
// runners never exceed maxRunners. The recovery figures are logged; the
// targets (outage + 5 s; queued jobs started within 10 s of a return) are
// checked by `make bench`-style measurements, not by timed assertions.
const (
	crashJobs       = 50
	crashJobTime    = 2 * time.Second
	crashMaxRunners = 4
	crashOutage     = 5 * time.Second
)

// completed counts the jobs of repo that completed successfully.
func completed(sim *githubsim.Sim, repo string) int {
	n := 0
	for _, j := range sim.Jobs(repo) {
		if j.Status == githubsim.StatusCompleted && j.Conclusion == "success" {
			n++
		}
	}
	return n
}

// firstStart is when the first of ids started on GitHub.
func (e *poolEnv) firstStart(repo string, ids []int64) time.Time {
	var first time.Time
	for _, j := range e.sim.Jobs(repo) {
		for _, id := range ids {
			if j.ID == id && j.StartedAt != nil && (first.IsZero() || j.StartedAt.Before(first)) {
				first = *j.StartedAt
			}
		}
	}
	return first
}

// watchPeak samples the runners GitHub lists for repo until the test ends
// and returns the largest count seen.
func (e *poolEnv) watchPeak(repo string) *atomic.Int64 {
	var most atomic.Int64
	stop := make(chan struct{})
	e.t.Cleanup(func() { close(stop) })
	go func() {
		for {
			if n := int64(len(e.sim.Runners(repo))); n > most.Load() {
				most.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return &most
}

// crashCase sets up a pool for a crash case and returns what it needs.
func crashCase(t *testing.T, ns, agent, repo string) (*poolEnv, *atomic.Int64) {
	t.Helper()
	e := newPoolEnv(t, ns, agent)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		// What GitHub holds that is not done: which job, on which runner.
		for _, j := range e.sim.Jobs(repo) {
			if j.Conclusion != "success" {
				t.Logf("job %d: %s %s on runner %q", j.ID, j.Status, j.Conclusion, j.RunnerName)
			}
		}
		for _, r := range e.sim.Runners(repo) {
			t.Logf("runner %s (id %d) left on GitHub: %s, busy %v, job %d", r.Name, r.ID, r.Status, r.Busy, r.JobID)
		}
	})
	return e, e.crashPool(repo)
}

// crashPool configures the crash cases' pool for repo on the env's agent.
func (e *poolEnv) crashPool(repo string) *atomic.Int64 {
	e.t.Helper()
	code, b := e.do("PUT", "/api/v1/repositories/"+repo,
		`{"agent":"`+e.agent+`","maxRunners":4,"bootstrapTimeout":"1m","labels":["self-hosted","linux"]}`)
	require.Equal(e.t, http.StatusOK, code, "%s", b)
	return e.watchPeak(repo)
}

// enqueue queues n jobs of the crash cases in repo.
func (e *poolEnv) enqueue(repo string, n int) []int64 {
	owner, name, _ := strings.Cut(repo, "/")
	return e.sim.Enqueue(owner, name, []string{"self-hosted", "linux"}, crashJobTime, n, "build")
}

// settled checks what every crash case ends with: every job done and
// counted, nothing left behind, never more than maxRunners runners.
func (e *poolEnv) settled(repo string, began time.Time, peak *atomic.Int64) {
	t := e.t
	t.Helper()
	eventually(t, 4*time.Minute, "every job served", func() bool { return completed(e.sim, repo) == crashJobs })
	t.Logf("%d jobs of %s on %d runners took %.1fs", crashJobs, crashJobTime, crashMaxRunners, time.Since(began).Seconds())
	eventually(t, 90*time.Second, "every job counted, no runner left on GitHub or on the agent", func() bool {
		v := e.pool(repo)
		left, _ := filepath.Glob(filepath.Join(e.stateDir, "process", "*.json"))
		return v.Counts.JobsDone == crashJobs && len(v.Runners) == 0 && len(e.sim.Runners(repo)) == 0 && len(left) == 0
	})
	assert.LessOrEqual(t, peak.Load(), int64(crashMaxRunners), "never more than maxRunners runners")
	for _, j := range e.sim.Jobs(repo) {
		assert.Equal(t, "success", j.Conclusion, "job %d", j.ID)
	}
	// The reaper finds nothing to remove: the pool left nothing behind.
	reaped := e.runReaper()
	assert.Zero(t, reaped, "orphans the pool left")
}

// runReaper runs the agent's reaper at once through the Temporal client.
// It returns what the run removed (GaroReaped).
func (e *poolEnv) runReaper() int64 {
	e.t.Helper()
	reaped, _ := e.reaperRun(func() {
		require.NoError(e.t, e.temporal.ScheduleClient().GetHandle(context.Background(), workflows.ReaperScheduleID(e.agent)).
			Trigger(context.Background(), client.ScheduleTriggerOptions{}))
	})
	return reaped
}

// reaperRun calls trigger, waits for the agent's reaper run it starts to
// complete, and returns what it removed (GaroReaped) and the run.
func (e *poolEnv) reaperRun(trigger func()) (int64, *workflowpb.WorkflowExecutionInfo) {
	e.t.Helper()
	ctx := context.Background()
	query := "WorkflowType = 'ReaperWorkflow' AND GaroAgent = '" + e.agent + "' AND ExecutionStatus = 'Completed'"
	before, err := e.temporal.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: e.ns, Query: query})
	require.NoError(e.t, err)
	trigger()
	var reaped int64
	var run *workflowpb.WorkflowExecutionInfo
	eventually(e.t, 60*time.Second, "the reaper's run", func() bool {
		resp, err := e.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: e.ns, Query: query})
		if err != nil || int64(len(resp.Executions)) <= before.Count {
			return false
		}
		run = resp.Executions[0]
		p := run.GetSearchAttributes().GetIndexedFields()["GaroReaped"]
		return converter.GetDefaultDataConverter().FromPayload(p, &reaped) == nil
	})
	return reaped, run
}

// TestCrashServerWhileWebhooksArrive: the server is killed while runners
// run jobs and comes back 5 s later. The webhooks sent meanwhile fail; the
// runners' exits free them at once, the restarted server asks the
// repository to reconcile, and every job is counted from GitHub's view.
func TestCrashServerWhileWebhooksArrive(t *testing.T) {
	t.Parallel()
	const repo = "e2e/crash-server"
	e, peak := crashCase(t, "e2e-crash-server", "crash-server-1", repo)
	began := time.Now()
	e.enqueue(repo, crashJobs)
	eventually(t, 60*time.Second, "runners busy", func() bool { return e.pool(repo).Counts.Busy == crashMaxRunners })
	e.server.kill()
	down := time.Now()
	time.Sleep(crashOutage)
	back := time.Now()
	e.startServer()
	t.Logf("server down %.1fs, %.1fs after the jobs were queued; ready %.1fs after it started",
		back.Sub(down).Seconds(), down.Sub(began).Seconds(), time.Since(back).Seconds())
	e.settled(repo, began, peak)
	failed := 0
	for _, d := range e.sim.Deliveries() {
		if d.StatusCode == 0 || d.StatusCode >= 500 {
			failed++
		}
	}
	assert.Positive(t, failed, "webhooks were lost while the server was down")
	// A repository that reconciled after a crash, still running.
	recordHistory(t, "poolworkflow_reconciled.json", historyJSON(t, e.temporal, workflows.PoolWorkflowID("e2e", "crash-server", workflows.DefaultPool), ""))
}

// TestCrashServerWhileJobsAreQueued: jobs are queued while the server is
// down, so their webhooks fail. When it is back it asks the repository to
// reconcile at once: the jobs start without waiting for a poll.
func TestCrashServerWhileJobsAreQueued(t *testing.T) {
	t.Parallel()
	const repo = "e2e/crash-queued"
	e, peak := crashCase(t, "e2e-crash-queued", "crash-queued-1", repo)
	began := time.Now()
	first := e.enqueue(repo, 10)
	eventually(t, 60*time.Second, "runners busy", func() bool { return e.pool(repo).Counts.Busy > 0 })
	e.server.kill()
	late := e.enqueue(repo, crashJobs-10)
	time.Sleep(crashOutage)
	back := time.Now()
	e.startServer()
	eventually(t, 60*time.Second, "a job queued during the outage started", func() bool { return !e.firstStart(repo, late).IsZero() })
	t.Logf("the first job queued during the outage started %.1fs after the server was started again (target 10s)",
		e.firstStart(repo, late).Sub(back).Seconds())
	require.Len(t, first, 10)
	e.settled(repo, began, peak)
}

// crashAgent kills the agent once until holds, and starts it again after
// the outage.
func (e *poolEnv) crashAgent(repo string, peak *atomic.Int64, what string, until func() bool) {
	e.t.Helper()
	began := time.Now()
	e.enqueue(repo, crashJobs)
	eventually(e.t, 60*time.Second, what, until)
	e.agentProc.kill()
	time.Sleep(crashOutage)
	e.startAgent()
	e.waitOnline(e.agent)
	e.settled(repo, began, peak)
}

// TestCrashAgentWhileProvisioning: the agent is killed while it creates
// runners and comes back 5 s later. The creates it had begun are retried
// on its return (an instance it had started is adopted, not started
// twice) and every job is served.
func TestCrashAgentWhileProvisioning(t *testing.T) {
	t.Parallel()
	const repo = "e2e/crash-provisioning"
	e, peak := crashCase(t, "e2e-crash-provisioning", "crash-prov-1", repo)
	e.crashAgent(repo, peak, "runners provisioning", func() bool { return e.pool(repo).Counts.Provisioning > 0 })
}

// TestCrashAgentMidJob: the agent is killed while its runners run jobs.
// The runners, each in its own process group, finish their jobs; the
// agent adopts what is left when it is back.
func TestCrashAgentMidJob(t *testing.T) {
	t.Parallel()
	const repo = "e2e/crash-midjob"
	e, peak := crashCase(t, "e2e-crash-midjob", "crash-job-1", repo)
	e.crashAgent(repo, peak, "runners busy", func() bool { return e.pool(repo).Counts.Busy == crashMaxRunners })
}

// temporalProc is a Temporal dev server run as a process of the test's
// own, on a database file that outlives it, so that it can be killed and
// started again.
type temporalProc struct {
	t      *testing.T
	port   int
	db, ns string
	p      *proc
}

func startTemporal(t *testing.T, ns string) *temporalProc {
	tp := &temporalProc{t: t, port: freePort(t), db: filepath.Join(t.TempDir(), "temporal.db"), ns: ns}
	tp.start()
	return tp
}

func (tp *temporalProc) addr() string { return "127.0.0.1:" + strconv.Itoa(tp.port) }

// start runs the dev server and waits until it answers.
func (tp *temporalProc) start() {
	t := tp.t
	t.Helper()
	tp.p = startCmd(t, "temporal", temporalBin, nil, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
		"--port", strconv.Itoa(tp.port), "--db-filename", tp.db, "--namespace", tp.ns, "--log-level", "error",
		"--dynamic-config-value", "frontend.enableServerVersionCheck=false")
	// Answering is not enough: its frontend must report itself healthy,
	// which takes longer on a loaded machine.
	eventually(t, 60*time.Second, "Temporal healthy", func() bool {
		c, err := client.Dial(client.Options{HostPort: tp.addr(), Namespace: tp.ns,
			Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// TestCrashTemporalMidRun: the Temporal dev server is killed while jobs
// run and started again 10 s later on its database file. Server and agent
// reconnect by themselves. The server answered 503 to the webhooks it
// could not pass on meanwhile; once Temporal is back it asks the
// repository to reconcile, and GitHub to redeliver them: each event the
// repository's own hook failed to deliver is delivered in the end.
func TestCrashTemporalMidRun(t *testing.T) {
	t.Parallel()
	const ns, repo = "e2e-crash-temporal", "e2e/crash-temporal"
	tp := startTemporal(t, ns)
	// The repository's own hook is its only webhook: the app has none.
	e := newPoolEnvOn(t, tp.addr(), ns, "crash-temporal-1", func(o *githubsim.Options) { o.WebhookURL = "" })
	hook := e.repoHook(repo)
	peak := e.crashPool(repo)
	began := time.Now()
	e.enqueue(repo, crashJobs-5)
	eventually(t, 60*time.Second, "runners busy", func() bool { return e.pool(repo).Counts.Busy == crashMaxRunners })
	tp.p.kill()
	// Jobs queued while Temporal is down: the server cannot pass their
	// webhooks on for longer than it waits (5 s), and answers 503.
	e.enqueue(repo, 5)
	time.Sleep(2 * crashOutage)
	tp.start()
	e.settled(repo, began, peak)

	failed, redelivered := map[string]bool{}, map[string]bool{}
	for _, d := range e.sim.Deliveries() {
		switch {
		case d.HookID != hook || d.Event != "workflow_job":
		case d.StatusCode >= 200 && d.StatusCode < 300:
			if failed[d.ID] {
				redelivered[d.ID] = true
			}
		default:
			failed[d.ID] = true
		}
	}
	t.Logf("the repository hook's deliveries: %d failed while Temporal was down, %d of them redelivered", len(failed), len(redelivered))
	require.NotEmpty(t, failed, "webhooks failed while Temporal was down")
	assert.Equal(t, len(failed), len(redelivered), "every failed event was delivered again")
}

// repoHook gives repo a webhook of its own to the server and returns its
// id.
func (e *poolEnv) repoHook(repo string) int64 {
	e.t.Helper()
	var h struct {
		ID int64 `json:"id"`
	}
	e.createOnGitHub("/repos/"+repo+"/hooks", map[string]any{"name": "web", "active": true, "events": []string{"workflow_job"},
		"config": map[string]any{"url": e.url + "/webhooks/github", "content_type": "json", "secret": webhookSecret}}, &h)
	return h.ID
}
