package tests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/garo-run/garo/api/apiclient"
	"github.com/garo-run/garo/tests/githubsim"
)

// TestNoSecretIsFoundInHistoriesLogsOrMetrics: after pools of JIT and of
// registration-token runners have served jobs and drained, and their
// agent has unregistered, no secret is in any workflow history (as
// temporal workflow show prints it, payloads decoded), in the logs of the
// server (at debug level), the agent and the simulator, or in /metrics of
// the server and the agent: not a JIT config, a registration token, a
// runner credential, the agent's token, the admin or a reader token, the
// GitHub token or the webhook secret.
func TestNoSecretIsFoundInHistoriesLogsOrMetrics(t *testing.T) {
	t.Parallel()
	const ns, agent = "e2e-secrets", "secrets-1"
	e := &poolEnv{t: t, ns: ns, agent: agent, stateDir: t.TempDir(), addr: temporalAddr}
	e.temporal = temporalClientOn(t, temporalAddr, ns)
	e.port = freePort(t)
	e.url, e.server = runServer(t, temporalAddr, ns, e.port, "--log-level", "debug",
		"--heartbeat-interval", "1s", "--offline-after", "5s")
	simLog := &syncBuffer{}
	e.sim = githubsim.New(githubsim.Options{WebhookURL: e.url + "/webhooks/github", WebhookSecret: webhookSecret,
		Seed: 1, RunnerOfflineAfter: 3 * time.Second, Logger: slog.New(slog.NewTextHandler(simLog, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	t.Cleanup(e.sim.Close)
	srv := httptest.NewServer(e.sim.Handler())
	t.Cleanup(srv.Close)
	e.sim.SetBaseURL(srv.URL)
	e.simURL = srv.URL
	e.api = apiclient.New(e.url, adminToken)

	ctx := context.Background()
	created, err := e.api.CreateAgent(ctx, agent)
	require.NoError(t, err)
	reader, err := e.api.CreateToken(ctx, "scan", "reader")
	require.NoError(t, err)
	githubToken := "ghp_" + randomHex(t, 18)
	metricsPort := freePort(t)
	e.agentProc = start(t, "agent "+agent, []string{"GARO_TOKEN=" + created.Token, "GARO_GITHUB_TOKEN=" + githubToken},
		"agent", "--name", agent, "--server", e.url, "--temporal-address", temporalAddr, "--temporal-namespace", ns,
		"--github-url", e.simURL, "--state-dir", e.stateDir, "--process-command", githubsimBin+" runner",
		"--log-level", "debug", "--metrics-listen", "127.0.0.1:"+strconv.Itoa(metricsPort))
	e.waitOnline(agent)

	repos := map[string]string{
		"e2e/secrets-jit": `{"agent":"` + agent + `","maxRunners":2,"idleGracePeriod":"3s","bootstrapTimeout":"1m"}`,
		"e2e/secrets-reg": `{"agent":"` + agent + `","maxRunners":2,"idleGracePeriod":"3s","bootstrapTimeout":"1m","ephemeral":false}`,
	}
	for repo, cfg := range repos {
		code, b := e.do("PUT", "/api/v1/repositories/"+repo, cfg)
		require.Equal(t, http.StatusOK, code, "%s", b)
		owner, name, _ := strings.Cut(repo, "/")
		e.sim.Enqueue(owner, name, []string{"self-hosted", "linux"}, 200*time.Millisecond, 3, "build")
	}
	for repo := range repos {
		eventually(t, 2*time.Minute, "every job of "+repo+" served", func() bool {
			jobs := e.sim.Jobs(repo)
			for _, j := range jobs {
				if j.Conclusion != "success" {
					return false
				}
			}
			return len(jobs) == 3
		})
	}
	serverMetrics := get(t, e.url+"/metrics", reader.Token)
	agentMetrics := get(t, "http://127.0.0.1:"+strconv.Itoa(metricsPort)+"/metrics", "")
	metrics := serverMetrics + agentMetrics
	assert.Contains(t, serverMetrics, "\ntemporal_request_total{", "the server exports the Temporal SDK's metrics")
	assert.Contains(t, agentMetrics, "\ntemporal_activity_execution_latency_seconds_bucket{", "the agent exports the Temporal SDK's metrics")
	assertDashboardTemporalMetrics(t, metrics)
	for repo := range repos {
		code, b := e.do("DELETE", "/api/v1/repositories/"+repo, "")
		require.Equal(t, http.StatusAccepted, code, "%s", b)
	}
	for repo := range repos {
		eventually(t, time.Minute, repo+" drained", func() bool {
			code, _ := e.do("GET", "/api/v1/repositories/"+repo, "")
			return code == http.StatusNotFound && len(e.sim.Runners(repo)) == 0
		})
	}
	unregister(t, e.api, agent)
	eventually(t, time.Minute, "the agent stopped", func() bool {
		select {
		case <-e.agentProc.done:
			return true
		default:
			return false
		}
	})

	issued := e.sim.Secrets()
	secrets := map[string]string{"admin token": adminToken, "agent token": created.Token, "reader token": reader.Token,
		"GitHub token": githubToken, "webhook secret": webhookSecret}
	var jit, reg int
	for i, s := range issued {
		secrets["simulator secret "+strconv.Itoa(i)] = s
		if _, _, _, err := githubsim.DecodeJITConfig(s); err == nil {
			jit++
		} else if !strings.HasPrefix(s, "simcred_") {
			reg++
		}
	}
	require.Positive(t, jit, "JIT configs were handed out: %v", issued)
	require.Positive(t, reg, "registration tokens were handed out: %v", issued)

	histories := allHistories(t, ns)
	ids := strings.Join(slices.Collect(maps.Keys(histories)), " ")
	for _, id := range []string{"garo/agent/" + agent, "garo/pool/repo/e2e/secrets-jit/", "garo/pool/repo/e2e/secrets-reg/",
		"garo/runner/e2e/secrets-jit/", "garo/runner/e2e/secrets-reg/"} {
		require.Contains(t, ids, id, "the histories of the agent, the pools and their runners")
	}
	places := map[string]string{"server log": e.server.out.String(), "agent log": e.agentProc.out.String(),
		"simulator log": simLog.String(), "/metrics": metrics}
	for id, h := range histories {
		places["history of "+id] = h
	}
	for place, text := range places {
		require.NotEmpty(t, text, place)
		for what, s := range secrets {
			assert.False(t, strings.Contains(text, s), "the %s is in the %s", what, place)
		}
	}
	// The scan reads what it should: the logs name the agent and the
	// histories the repositories.
	assert.Contains(t, places["server log"], agent)
	assert.Contains(t, places["agent log"], "e2e/secrets-reg")
	assert.Contains(t, metrics, "garo_webhook_deliveries_total")
}

// allHistories returns every workflow history of namespace ns, open or
// closed, as temporal workflow show -o json prints it, with its payloads
// decoded, by workflow and run id.
func allHistories(t *testing.T, ns string) map[string]string {
	t.Helper()
	c := temporalClient(t, ns)
	out := map[string]string{}
	var token []byte
	for {
		resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: ns, NextPageToken: token})
		require.NoError(t, err)
		for _, ex := range resp.Executions {
			id, run := ex.Execution.WorkflowId, ex.Execution.RunId
			b, err := exec.Command(temporalBin, "workflow", "show", "--address", temporalAddr, "--namespace", ns,
				"--workflow-id", id, "--run-id", run, "--output", "json").CombinedOutput()
			require.NoError(t, err, "temporal workflow show %s: %s", id, b)
			out[id+"/"+run] = decodePayloads(string(b))
		}
		if token = resp.NextPageToken; len(token) == 0 {
			return out
		}
	}
}

// get reads url with token (none when empty).
func get(t *testing.T, url, token string) string {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", url, b)
	return string(b)
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}
