package tests

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/garo-run/garo/api/apiclient"
	"github.com/garo-run/garo/tests/githubsim"
	"github.com/garo-run/garo/workflows"
)

// poolEnv is a server, an agent with the process provider and GitHub
// (the simulator), and the simulator's webhook wired to the server.
type poolEnv struct {
	t        *testing.T
	ns       string
	url      string
	sim      *githubsim.Sim
	simURL   string
	api      *apiclient.Client
	agent    string
	stateDir string
	// agentProc is the agent process started last.
	agentProc *proc
	// addr is the Temporal frontend; temporal a client of it in ns.
	addr     string
	temporal client.Client
	// server is the server process started last, listening on port.
	server *proc
	port   int
	// agentArgs and agentEnv are given to every agent it starts, beyond
	// GitHub and the process provider; serverArgs to every server.
	agentArgs, agentEnv, serverArgs []string
}

// startAgent runs the agent with GitHub and the process provider; its
// state directory survives restarts.
func (e *poolEnv) startAgent() { e.agentProc = e.startAgentAs(e.agent, e.stateDir) }

// startAgentAs runs an agent called name with GitHub and the process
// provider.
func (e *poolEnv) startAgentAs(name, stateDir string) *proc {
	return start(e.t, "agent "+name, append([]string{"GARO_TOKEN=" + adminToken, "GARO_GITHUB_TOKEN=ghs_e2e"}, e.agentEnv...),
		append([]string{"agent", "--name", name, "--server", e.url, "--temporal-address", e.addr, "--temporal-namespace", e.ns,
			"--github-url", e.simURL, "--state-dir", stateDir, "--process-command", githubsimBin + " runner"}, e.agentArgs...)...)
}

// waitOnline waits until the agent called name is online.
func (e *poolEnv) waitOnline(name string) {
	eventually(e.t, 30*time.Second, "agent "+name+" online", func() bool {
		st, err := e.api.GetAgent(context.Background(), name)
		return err == nil && st.Status == workflows.AgentOnline
	})
}

// startServer runs the server on e.port (the same on every restart, where
// the simulator sends its webhooks) and waits until it is ready.
func (e *poolEnv) startServer() {
	e.url, e.server = runServer(e.t, e.addr, e.ns, e.port, append([]string{"--heartbeat-interval", "1s", "--offline-after", "5s"},
		e.serverArgs...)...)
}

func newPoolEnv(t *testing.T, ns, agent string) *poolEnv {
	t.Helper()
	return newPoolEnvOn(t, temporalAddr, ns, agent)
}

// newPoolEnvOn is a poolEnv on the Temporal frontend at addr; opts change
// the simulator's options.
func newPoolEnvOn(t *testing.T, addr, ns, agent string, opts ...func(*githubsim.Options)) *poolEnv {
	t.Helper()
	return newPoolEnvWith(t, &poolEnv{t: t, ns: ns, agent: agent, addr: addr}, opts...)
}

// newPoolEnvWith starts what e describes (its t, ns, agent, addr, and
// agentArgs and agentEnv if any).
func newPoolEnvWith(t *testing.T, e *poolEnv, opts ...func(*githubsim.Options)) *poolEnv {
	t.Helper()
	addr, ns, agent := e.addr, e.ns, e.agent
	e.stateDir = t.TempDir()
	e.temporal = temporalClientOn(t, addr, ns)
	e.port = freePort(t)
	e.startServer()
	so := githubsim.Options{WebhookURL: e.url + "/webhooks/github", WebhookSecret: webhookSecret,
		Seed: 1, RunnerOfflineAfter: 3 * time.Second}
	for _, o := range opts {
		o(&so)
	}
	e.sim = githubsim.New(so)
	t.Cleanup(e.sim.Close)
	t.Cleanup(func() {
		if t.Failed() {
			for _, d := range e.sim.Deliveries() {
				t.Logf("delivery %s %s job %d: %d %s", d.Event, d.Action, d.JobID, d.StatusCode, d.Error)
			}
		}
	})
	srv := httptest.NewServer(e.sim.Handler())
	t.Cleanup(srv.Close)
	e.sim.SetBaseURL(srv.URL)
	e.simURL = srv.URL
	e.startAgent()
	e.api = apiclient.New(e.url, adminToken)
	e.waitOnline(agent)
	return e
}

func (e *poolEnv) do(method, path, body string) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes()
}

// serveAndDrain enqueues jobs of 300 ms for the default pool of repo
// (owner/name), waits until every one has succeeded, then drains the pool
// and waits until it has ended.
func (e *poolEnv) serveAndDrain(repo string, jobs int) {
	t := e.t
	t.Helper()
	owner, name, _ := strings.Cut(repo, "/")
	e.sim.Enqueue(owner, name, []string{"self-hosted", "linux"}, 300*time.Millisecond, jobs, "build")
	eventually(t, 3*time.Minute, "every job served", func() bool { return completed(e.sim, repo) == jobs })
	code, b := e.do("DELETE", "/api/v1/repositories/"+repo, "")
	require.Equal(t, http.StatusAccepted, code, "%s", b)
	eventually(t, time.Minute, "the pool drained", func() bool {
		code, _ := e.do("GET", "/api/v1/repositories/"+repo, "")
		return code == http.StatusNotFound
	})
}

func (e *poolEnv) pool(repo string) workflows.PoolView {
	e.t.Helper()
	code, b := e.do("GET", "/api/v1/repositories/"+repo, "")
	require.Equal(e.t, http.StatusOK, code, "%s", b)
	var v workflows.PoolView
	require.NoError(e.t, json.Unmarshal(b, &v))
	return v
}

// TestPoolServesJobsWithinItsLimits: a pool of minIdle 1 and maxRunners 3
// serves 20 jobs of 100 ms: all complete, never more than 3 runners exist
// at once, and after the grace period the pool is back to 1 idle runner
// with no other runner left on GitHub. No secret reaches a history.
func TestPoolServesJobsWithinItsLimits(t *testing.T) {
	t.Parallel()
	e := newPoolEnv(t, "e2e-pool", "pool-1")
	const repo = "e2e/pool"
	code, b := e.do("PUT", "/api/v1/repositories/"+repo, `{"agent":"pool-1","labels":["self-hosted","linux"],
		"minIdle":1,"maxRunners":3,"idleGracePeriod":"5s","bootstrapTimeout":"1m","provider":{"kind":"process"}}`)
	require.Equal(t, http.StatusOK, code, "%s", b)

	eventually(t, 60*time.Second, "one idle runner, online on GitHub", func() bool {
		v := e.pool(repo)
		rs := e.sim.Runners(repo)
		return v.Counts.Idle == 1 && len(rs) == 1 && rs[0].Status == githubsim.RunnerOnline
	})

	most := e.watchPeak(repo)
	ids := e.sim.Enqueue("e2e", "pool", []string{"self-hosted", "linux"}, 100*time.Millisecond, 20, "build")
	eventually(t, 120*time.Second, "all 20 jobs completed", func() bool {
		done := 0
		for _, j := range e.sim.Jobs(repo) {
			if j.Status == githubsim.StatusCompleted {
				done++
			}
		}
		return done == len(ids)
	})
	for _, j := range e.sim.Jobs(repo) {
		assert.Equal(t, "success", j.Conclusion, "job %d", j.ID)
	}
	eventually(t, 60*time.Second, "back to one idle runner after the grace period", func() bool {
		v := e.pool(repo)
		c := v.Counts
		return c.Idle == 1 && c.Busy == 0 && c.Provisioning == 0 && c.Deleting == 0 && len(e.sim.Runners(repo)) == 1
	})
	t.Logf("peak runners on GitHub: %d", most.Load())
	assert.LessOrEqual(t, most.Load(), int64(3), "never more than maxRunners runners at once")
	assert.GreaterOrEqual(t, most.Load(), int64(2), "the pool grew to serve the burst")
	v := e.pool(repo)
	assert.Equal(t, 20, v.Counts.JobsDone)
	total := 0
	byRoute := map[string]int{}
	for k, n := range e.sim.Stats().Requests {
		total += n
		f := strings.Fields(k)
		byRoute[f[0]+" "+f[1]] += n
	}
	t.Logf("GitHub API requests for 20 jobs (runners of the burst and the idle one included): %d, %.1f a job; by route: %v",
		total, float64(total)/20, byRoute)
	assert.False(t, v.Degraded)

	// Draining ends the pool and leaves no runner behind.
	code, b = e.do("DELETE", "/api/v1/repositories/"+repo, "")
	require.Equal(t, http.StatusAccepted, code, "%s", b)
	eventually(t, 60*time.Second, "pool drained", func() bool {
		code, _ := e.do("GET", "/api/v1/repositories/"+repo, "")
		return code == http.StatusNotFound && len(e.sim.Runners(repo)) == 0
	})

	c := temporalClient(t, e.ns)
	secrets := e.sim.Secrets()
	require.NotEmpty(t, secrets)
	resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: e.ns, Query: "GaroRepository = 'e2e/pool'"})
	require.NoError(t, err)
	require.NotEmpty(t, resp.Executions)
	recorded := map[string]bool{}
	for _, ex := range resp.Executions {
		h := historyJSON(t, c, ex.Execution.WorkflowId, ex.Execution.RunId)
		decoded := decodePayloads(h)
		for _, s := range secrets {
			require.False(t, strings.Contains(decoded, s), "a JIT config or runner credential is in the history of %s", ex.Execution.WorkflowId)
		}
		typ := ex.Type.Name
		if !recorded[typ] && ex.Status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			recorded[typ] = true
			recordHistory(t, strings.ToLower(typ)+"_e2e.json", h)
		}
	}
}

// decodePayloads returns the history JSON with every base64 "data" field
// decoded too, so that a secret inside a payload can be found.
func decodePayloads(history string) string {
	var out strings.Builder
	out.WriteString(history)
	for _, part := range strings.Split(history, `"data":`) {
		part = strings.TrimSpace(part)
		if !strings.HasPrefix(part, `"`) {
			continue
		}
		end := strings.Index(part[1:], `"`)
		if end < 0 {
			continue
		}
		if b, err := base64.StdEncoding.DecodeString(part[1 : end+1]); err == nil {
			out.Write(b)
		}
	}
	return out.String()
}

// TestUnregisteringAnAgentDrainsItsPools: DELETE /api/v1/agents/{name}
// drains every pool of the agent (a busy runner finishes its job) before
// the agent's registration ends.
func TestUnregisteringAnAgentDrainsItsPools(t *testing.T) {
	t.Parallel()
	e := newPoolEnv(t, "e2e-drain", "drain-1")
	const repo = "e2e/drain"
	code, b := e.do("PUT", "/api/v1/repositories/"+repo, `{"agent":"drain-1","minIdle":1,"idleGracePeriod":"1m","bootstrapTimeout":"1m"}`)
	require.Equal(t, http.StatusOK, code, "%s", b)
	eventually(t, 60*time.Second, "an idle runner", func() bool { return e.pool(repo).Counts.Idle == 1 })
	ids := e.sim.Enqueue("e2e", "drain", []string{"self-hosted", "linux"}, 3*time.Second, 1, "long")
	eventually(t, 30*time.Second, "the job running", func() bool { return e.pool(repo).Counts.Busy == 1 })

	first := unregister(t, e.api, "drain-1")
	assert.Equal(t, workflows.AgentUnregistering, first.Status, "unregistering answers at once")
	require.NotNil(t, first.Drain)
	assert.Equal(t, 1, first.Drain.Pools, "and tells how far the drain has got")
	assert.Positive(t, first.Drain.Runners)
	code, _ = e.do("GET", "/api/v1/repositories/"+repo, "")
	assert.Equal(t, http.StatusNotFound, code, "the pool ended before the agent did")
	j := e.sim.Jobs(repo)[0]
	assert.Equal(t, ids[0], j.ID)
	assert.Equal(t, "success", j.Conclusion, "the busy runner finished its job")
	assert.Empty(t, e.sim.Runners(repo))
}

// TestPoolWaitsForItsOfflineAgent: while the pool's agent is offline no
// runner is started and the job waits in the queue; when the agent comes
// back, the job is served.
func TestPoolWaitsForItsOfflineAgent(t *testing.T) {
	t.Parallel()
	e := newPoolEnv(t, "e2e-offline", "away-1")
	const repo = "e2e/away"
	code, b := e.do("PUT", "/api/v1/repositories/"+repo, `{"agent":"away-1","bootstrapTimeout":"1m"}`)
	require.Equal(t, http.StatusOK, code, "%s", b)
	e.agentProc.kill()
	eventually(t, 30*time.Second, "the pool knows its agent is offline", func() bool { return e.pool(repo).AgentOffline })
	ids := e.sim.Enqueue("e2e", "away", []string{"self-hosted", "linux"}, 100*time.Millisecond, 1, "build")
	eventually(t, 10*time.Second, "the job queued in the pool", func() bool { return e.pool(repo).Counts.Queued == 1 })
	v := e.pool(repo)
	assert.Empty(t, v.Runners, "no runner starts while the agent is away")

	// A pool made while its agent is away asks the agent's status, and
	// waits too.
	const late = "e2e/away-late"
	code, b = e.do("PUT", "/api/v1/repositories/"+late, `{"agent":"away-1","minIdle":1,"bootstrapTimeout":"1m"}`)
	require.Equal(t, http.StatusOK, code, "%s", b)
	eventually(t, 10*time.Second, "the new pool knows its agent is offline", func() bool { return e.pool(late).AgentOffline })
	assert.Empty(t, e.pool(late).Runners, "no runner starts for a new pool of an offline agent")

	e.startAgent()
	eventually(t, 60*time.Second, "the job served once the agent is back", func() bool {
		j := e.sim.Jobs(repo)[0]
		return j.ID == ids[0] && j.Status == githubsim.StatusCompleted && j.Conclusion == "success"
	})
	assert.False(t, e.pool(repo).AgentOffline)
	eventually(t, 60*time.Second, "the new pool's idle runner once the agent is back", func() bool {
		v := e.pool(late)
		return !v.AgentOffline && v.Counts.Idle == 1
	})
}

// TestJobsAreServedWhenEveryWebhookIsLost: with every webhook dropped, the
// pool finds its queued jobs by polling GitHub (conditional requests) and
// serves them all.
func TestJobsAreServedWhenEveryWebhookIsLost(t *testing.T) {
	t.Parallel()
	e := newPoolEnv(t, "e2e-missed", "deaf-1")
	e.sim.SetFaults(githubsim.Faults{Seed: 1, Webhooks: githubsim.WebhookFaults{DropRate: 1}})
	const repo = "e2e/deaf"
	code, b := e.do("PUT", "/api/v1/repositories/"+repo, `{"agent":"deaf-1","queuePollInterval":"10s","bootstrapTimeout":"1m","idleGracePeriod":"2s"}`)
	require.Equal(t, http.StatusOK, code, "%s", b)
	ids := e.sim.Enqueue("e2e", "deaf", []string{"self-hosted", "linux"}, 200*time.Millisecond, 3, "build")
	eventually(t, 90*time.Second, "all jobs served without a single webhook", func() bool {
		return completed(e.sim, repo) == len(ids)
	})
	st := e.sim.Stats()
	assert.Zero(t, st.WebhooksSent, "no webhook reached the server")
	assert.Positive(t, st.WebhooksDropped)
	assert.Positive(t, st.Requests["GET /repos/{owner}/{repo}/actions/runs 200"], "the pool found them by polling")

	// At rest (its runners gone after their grace period) the pool is
	// dormant: the agent's sweep looks at its repository in its stead.
	ctx := context.Background()
	query := "WorkflowType = '" + workflows.SweepWorkflowName + "' AND GaroAgent = 'deaf-1' AND ExecutionStatus = 'Completed'"
	var swept *workflowpb.WorkflowExecutionInfo
	eventually(t, 2*time.Minute, "a sweep of the dormant pool", func() bool {
		resp, err := e.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: e.ns, Query: query})
		if err != nil {
			t.Logf("DEBUG list: %v", err)
			return false
		}
		for _, ex := range resp.Executions {
			var res workflows.SweepResult
			run := e.temporal.GetWorkflow(ctx, ex.Execution.WorkflowId, ex.Execution.RunId)
			if run.Get(ctx, &res) == nil && res.Repos == 1 {
				swept = ex
				return true
			}
		}
		return false
	})
	recordHistory(t, "sweepworkflow_e2e.json", historyJSON(t, e.temporal, swept.Execution.WorkflowId, swept.Execution.RunId))
}

// TestJobsOfARunInProgressAreFoundWhenTheirWebhookIsLost: a run of three
// jobs that each wait for the one before (needs:) is in_progress while its
// later jobs wait in the queue, so GitHub lists no queued run. With every
// webhook lost from the first job's run on, the poll finds the later jobs
// anyway, and every job is served.
func TestJobsOfARunInProgressAreFoundWhenTheirWebhookIsLost(t *testing.T) {
	t.Parallel()
	e := newPoolEnv(t, "e2e-runs", "runs-1")
	const repo = "e2e/runs"
	code, b := e.do("PUT", "/api/v1/repositories/"+repo, `{"agent":"runs-1","queuePollInterval":"10s","bootstrapTimeout":"1m"}`)
	require.Equal(t, http.StatusOK, code, "%s", b)
	job := githubsim.RunJob{Labels: []string{"self-hosted", "linux"}, DurationMs: 3000}
	_, ids := e.sim.EnqueueRun("e2e", "runs", []githubsim.RunJob{job, job, job}, true)
	eventually(t, 60*time.Second, "the first job running", func() bool { return e.pool(repo).Counts.Busy == 1 })
	e.sim.SetFaults(githubsim.Faults{Seed: 1, Webhooks: githubsim.WebhookFaults{DropRate: 1}})

	// The state the missed-webhook poll once missed: the first job done,
	// the run in progress, the second job queued, no run queued, and the
	// pool's queue empty.
	eventually(t, 60*time.Second, "the first job done and the second queued", func() bool {
		jobs := e.sim.Jobs(repo)
		return len(jobs) == 2 && jobs[0].Status == githubsim.StatusCompleted && jobs[1].Status == githubsim.StatusQueued
	})
	req, err := http.NewRequest("GET", e.simURL+"/repos/e2e/runs/actions/runs?status=queued", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer ghs_e2e")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var runs struct {
		TotalCount int `json:"total_count"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&runs))
	resp.Body.Close()
	assert.Zero(t, runs.TotalCount, "no run is queued while its second job waits")

	eventually(t, 90*time.Second, "every job of the run served", func() bool {
		return completed(e.sim, repo) == len(ids)
	})
	assert.Positive(t, e.sim.Stats().WebhooksDropped)
}
