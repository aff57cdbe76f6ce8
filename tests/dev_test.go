package tests

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/garo-run/garo/api/apiclient"
	"github.com/garo-run/garo/internal/devstack"
	"github.com/garo-run/garo/workflows"
)

// startDev runs `garo dev` on free ports with its state in dir and returns
// the process and what it wrote to dev.json.
func startDev(t *testing.T, dir string, extra ...string) (*proc, devstack.Info) {
	t.Helper()
	p := start(t, "garo dev", nil, append([]string{"dev", "--state-dir", dir, "--temporal-bin", temporalBin,
		"--githubsim-bin", githubsimBin, "--githubsim-port", strconv.Itoa(freePort(t)),
		"--api-port", strconv.Itoa(freePort(t)), "--temporal-port", strconv.Itoa(freePort(t)),
		"--ui-port", strconv.Itoa(freePort(t))}, extra...)...)
	var info devstack.Info
	eventually(t, 90*time.Second, "dev.json", func() bool {
		select {
		case <-p.done:
			t.Fatalf("garo dev exited: %v\n%s", p.err, p.out.String())
		default:
		}
		b, err := os.ReadFile(filepath.Join(dir, "dev.json"))
		return err == nil && json.Unmarshal(b, &info) == nil
	})
	return p, info
}

// TestDevStack: `garo dev` (what `make run` starts) brings up Temporal with
// its Web UI, the server and the agent "local"; Ctrl-C stops it all; a
// restart on the same state directory continues where it stopped.
func TestDevStack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	garmState := t.TempDir()
	garmConf := filepath.Join(t.TempDir(), "example.conf")
	require.NoError(t, os.WriteFile(garmConf, []byte("state_dir="+garmState+"\nrunner="+githubsimBin+" runner\n"), 0o600))
	p, info := startDev(t, dir, "--external-provider", "example="+garmExampleBin+",config="+garmConf)
	token, err := os.ReadFile(filepath.Join(dir, "admin-token"))
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(string(token)), info.AdminToken)
	assert.Equal(t, "local", info.Agent)
	for _, u := range []string{info.API, info.UI, info.GitHubSim} {
		assert.True(t, strings.HasPrefix(u, "http://127.0.0.1:"), "%s binds to loopback", u)
	}

	api := apiclient.New(info.API, info.AdminToken)
	eventually(t, 30*time.Second, "agent local online", func() bool {
		st, err := api.GetAgent(context.Background(), "local")
		return err == nil && st.Status == workflows.AgentOnline && st.WorkerSeenAt != nil
	})
	st, err := api.GetAgent(context.Background(), "local")
	require.NoError(t, err)
	assert.Equal(t, []string{"process", "sim", "external"}, st.Capabilities.Providers)

	// Without GitHub credentials the simulator stands in, and the demo
	// pool demo/hello runs its first job on a runner of the process
	// provider: webhook, pool, runner workflow, agent, simulator.
	eventually(t, 60*time.Second, "a demo job done by a Garo runner", func() bool {
		resp, err := http.Get(info.GitHubSim + "/_sim/jobs?repo=demo/hello")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var jobs []struct{ Status, Conclusion, RunnerName string }
		if json.NewDecoder(resp.Body).Decode(&jobs) != nil {
			return false
		}
		for _, j := range jobs {
			if j.Status == "completed" && j.Conclusion == "success" && strings.HasPrefix(j.RunnerName, "garo-") {
				return true
			}
		}
		return false
	})
	// GitHub shows the job completed before its webhook reaches the pool.
	var pool workflows.PoolView
	eventually(t, 30*time.Second, "the pool counting the job done", func() bool {
		p, err := api.GetPool(context.Background(), "demo", "hello", "")
		require.NoError(t, err)
		pool = p
		return p.Counts.JobsDone >= 1
	})
	assert.Equal(t, "local", pool.Config.Agent)
	// Its usage shows the job and, priced, a cost.
	u, err := api.RepositoryUsage(context.Background(), "demo", "hello", "1h")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, u.Figures.Jobs.Served, 1)
	assert.Positive(t, u.Figures.Cost.Total, "the demo pool is priced at %v a runner-hour", devstack.DemoHourlyPrice)

	// The external provider declared on garo dev serves a pool: its
	// instance reaches the agent's instance listener on loopback.
	garm := workflows.DefaultPoolConfig()
	garm.Labels = []string{"self-hosted", "garm"}
	garm.Provider = workflows.ProviderConfig{"kind": "external", "name": "example"}
	_, err = api.ConfigurePool(context.Background(), "demo", "garm", "", garm)
	require.NoError(t, err)
	resp, err := http.Post(info.GitHubSim+"/_sim/jobs", "application/json",
		strings.NewReader(`{"repo":"demo/garm","labels":["self-hosted","garm"],"durationMs":200,"count":1}`))
	require.NoError(t, err)
	resp.Body.Close()
	eventually(t, 60*time.Second, "a job done by an external provider's runner", func() bool {
		v, err := api.GetPool(context.Background(), "demo", "garm", "")
		return err == nil && v.Counts.JobsDone == 1
	})
	eventually(t, 30*time.Second, "Temporal Web UI serving", func() bool {
		resp, err := http.Get(info.UI)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	c, err := client.Dial(client.Options{HostPort: info.Temporal, Namespace: info.Namespace})
	require.NoError(t, err)
	d, err := c.DescribeWorkflow(context.Background(), workflows.AgentWorkflowID("local"), "")
	c.Close()
	require.NoError(t, err)
	firstRun := d.WorkflowExecution.RunID

	// Ctrl-C stops everything cleanly, Temporal included.
	require.NoError(t, p.signal(t, syscall.SIGINT, 60*time.Second), "Ctrl-C exits 0")
	_, err = os.Stat(filepath.Join(dir, "dev.json"))
	assert.True(t, os.IsNotExist(err), "dev.json is removed when the stack stops")
	_, err = net.DialTimeout("tcp", info.Temporal, time.Second)
	assert.Error(t, err, "the Temporal dev server stopped with garo dev")
	_, err = net.DialTimeout("tcp", strings.TrimPrefix(info.GitHubSim, "http://"), time.Second)
	assert.Error(t, err, "the GitHub simulator stopped with garo dev")

	// Restarted on the same state, the agent's workflow continues.
	p2, info2 := startDev(t, dir)
	assert.Equal(t, info.AdminToken, info2.AdminToken, "the admin token is kept")
	api = apiclient.New(info2.API, info2.AdminToken)
	eventually(t, 30*time.Second, "agent local online after restart", func() bool {
		st, err := api.GetAgent(context.Background(), "local")
		return err == nil && st.Status == workflows.AgentOnline && st.Worker != nil && st.Worker.PID == p2.cmd.Process.Pid
	})
	c, err = client.Dial(client.Options{HostPort: info2.Temporal, Namespace: info2.Namespace})
	require.NoError(t, err)
	defer c.Close()
	d, err = c.DescribeWorkflow(context.Background(), workflows.AgentWorkflowID("local"), "")
	require.NoError(t, err)
	assert.Equal(t, firstRun, d.WorkflowExecution.RunID, "the same workflow run carries on from the persisted state")
	require.NoError(t, p2.signal(t, syscall.SIGINT, 60*time.Second))
}
