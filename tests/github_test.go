package tests

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/activities/github"
	"github.com/garo-run/garo/activities/provider"
	"github.com/garo-run/garo/activities/provider/process"
	"github.com/garo-run/garo/tests/githubsim"
)

// TestJITRunnerThroughProcessProvider: a JIT runner created through the
// GitHub client and started by the process provider (the githubsim runner
// binary, its config in the environment) comes online in the simulator and
// runs a job there, and the job's signed webhooks reach garo server.
func TestJITRunnerThroughProcessProvider(t *testing.T) {
	t.Parallel()
	url := startServer(t, "e2e-stop")
	sim := githubsim.New(githubsim.Options{WebhookURL: url + "/webhooks/github", WebhookSecret: webhookSecret, Seed: 1})
	t.Cleanup(sim.Close)
	simSrv := httptest.NewServer(sim.Handler())
	t.Cleanup(simSrv.Close)
	sim.SetBaseURL(simSrv.URL)

	ctx := context.Background()
	gh, err := github.New(github.Config{URL: simSrv.URL, Token: "ghs_e2e", Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	repo := github.Repo{Owner: "e2e", Name: "jit"}
	jit, err := gh.CreateJITConfig(ctx, repo, "r-e2e", []string{"self-hosted", "linux"}, 1)
	require.NoError(t, err)

	p, err := process.New(process.Config{StateDir: t.TempDir(), Command: []string{githubsimBin, "runner"}})
	require.NoError(t, err)
	_, err = p.Create(ctx, provider.CreateRequest{Name: "r-e2e", Tags: map[string]string{"repo": "e2e/jit"},
		Env: map[string]string{githubsim.EnvJITConfig: jit.EncodedConfig}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Delete(ctx, "r-e2e") })

	ids := sim.Enqueue("e2e", "jit", []string{"self-hosted", "linux"}, 100*time.Millisecond, 1, "build")
	eventually(t, 30*time.Second, "the job done by the JIT runner", func() bool {
		j := sim.Jobs("e2e/jit")[0]
		return j.ID == ids[0] && j.Status == githubsim.StatusCompleted && j.Conclusion == "success" && j.RunnerName == "r-e2e"
	})
	eventually(t, 10*time.Second, "the ephemeral runner process exited", func() bool {
		in, err := p.Get(ctx, "r-e2e")
		return err == nil && in.State == provider.StateExited && in.ExitCode == 0
	})
	assert.Empty(t, sim.Runners("e2e/jit"), "GitHub forgot the ephemeral runner")

	eventually(t, 10*time.Second, "three webhooks accepted by the server", func() bool {
		n := 0
		for _, d := range sim.Deliveries() {
			if d.JobID == ids[0] && d.StatusCode == http.StatusAccepted {
				n++
			}
		}
		return n == 3
	})
	req, _ := http.NewRequest("GET", url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	// No pool serves e2e/jit yet: the server verified, parsed and counted
	// each delivery, and found no workflow to signal.
	assert.True(t, strings.Contains(string(b), `garo_webhook_deliveries_total{event="workflow_job",outcome="no_pool"} 3`), "%s", b)
}
