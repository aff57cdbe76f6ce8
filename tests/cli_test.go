package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/workflows"
	"github.com/garo-run/garo/workflows/poolconfigtest"
)

// garo runs the garo CLI against url and returns its exit code and output.
func garo(t *testing.T, url, token string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(garoBin, args...)
	cmd.Env = append(os.Environ(), "GARO_SERVER="+url, "GARO_TOKEN="+token)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return code, out.String(), errb.String()
}

// TestOperatorCLI drives pools and an agent through garo agents, pool,
// repo, runners, jobs and unmatched, as an operator would.
func TestOperatorCLI(t *testing.T) {
	t.Parallel()
	const ns = "e2e-cli"
	url := startServer(t, ns)
	agent := start(t, "agent cli-1", []string{"GARO_TOKEN=" + adminToken}, "agent", "--name", "cli-1", "--server", url,
		"--temporal-address", temporalAddr, "--temporal-namespace", ns, "--state-dir", t.TempDir(),
		"--process-command", "sleep 300", "--config-poll-interval", "200ms")
	eventually(t, 30*time.Second, "agent listed", func() bool {
		code, out, _ := garo(t, url, adminToken, "agents", "list")
		return code == 0 && strings.Contains(out, "cli-1") && strings.Contains(out, "online")
	})

	code, out, errOut := garo(t, url, adminToken, "pool", "set", "e2e/cli", "--agent", "cli-1", "--max-runners", "2",
		"--bootstrap-timeout", "30s")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "REPOSITORY")
	assert.Contains(t, out, "e2e/cli")
	assert.Contains(t, out, "default", "a pool named by its repository alone is the default pool")

	// set changes only what its flags name.
	code, _, errOut = garo(t, url, adminToken, "pool", "set", "e2e/cli", "--labels", "self-hosted,arm64")
	require.Equal(t, 0, code, errOut)
	code, out, errOut = garo(t, url, adminToken, "pool", "get", "e2e/cli", "-o", "json")
	require.Equal(t, 0, code, errOut)
	var v workflows.PoolView
	require.NoError(t, json.Unmarshal([]byte(out), &v), out)
	assert.Equal(t, "cli-1", v.Config.Agent)
	assert.Equal(t, 2, v.Config.MaxRunners)
	assert.Equal(t, []string{"self-hosted", "arm64"}, v.Config.Labels)
	assert.Equal(t, "30s", v.Config.BootstrapTimeout.String())

	// A second pool of the same repository.
	code, _, errOut = garo(t, url, adminToken, "pool", "set", "e2e/cli/gpu", "--agent", "cli-1", "--labels", "self-hosted,gpu")
	require.Equal(t, 0, code, errOut)
	code, out, _ = garo(t, url, adminToken, "pool", "list", "e2e/cli")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "gpu")
	assert.Contains(t, out, "default")

	// The agent picks the changes up without a restart.
	eventually(t, 10*time.Second, "the agent sees its new pools", func() bool {
		return strings.Contains(agent.out.String(), `pools=2 names="[e2e/cli/default e2e/cli/gpu]"`)
	})

	code, out, _ = garo(t, url, adminToken, "repo", "list")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "e2e/cli")
	assert.Contains(t, out, "default,gpu")
	code, out, _ = garo(t, url, adminToken, "repo", "get", "e2e/cli")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "queued jobs fit no pool")
	code, out, _ = garo(t, url, adminToken, "runners", "e2e/cli")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "STATE")
	code, out, _ = garo(t, url, adminToken, "jobs", "e2e/cli", "-o", "json")
	require.Equal(t, 0, code)
	assert.JSONEq(t, "[]", out)
	code, out, _ = garo(t, url, adminToken, "unmatched", "e2e/cli", "-o", "json")
	require.Equal(t, 0, code)
	assert.JSONEq(t, `{"jobs":[],"total":0}`, out)

	// Bad input and bad credentials are clear errors.
	code, _, errOut = garo(t, url, adminToken, "pool", "set", "e2e/cli", "--min-idle", "5")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "minIdle")
	code, _, errOut = garo(t, url, adminToken, "pool", "set", "e2e/cli/GPU")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "invalid pool name")
	// The options of the provider, as the real agent reported them.
	code, _, errOut = garo(t, url, adminToken, "pool", "set", "e2e/cli", "--provider", "kind=process,image=ubuntu")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `takes no option "image" (it takes: env.NAME)`)
	code, _, errOut = garo(t, url, "wrong", "repo", "list")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "401")
	code, _, errOut = garo(t, url, "", "repo", "list")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "GARO_TOKEN")

	// Every field of the pool config, filled by reflection, goes through
	// garo repo set, the server and the pool's workflow and comes back.
	texts, err := poolconfigtest.Texts(map[string]string{"agent": "cli-1"})
	require.NoError(t, err)
	want, err := poolconfigtest.Config(texts)
	require.NoError(t, err)
	code, _, errOut = garo(t, url, adminToken, append([]string{"repo", "set", "e2e/every"}, poolconfigtest.Flags(texts)...)...)
	require.Equal(t, 0, code, errOut)
	code, out, errOut = garo(t, url, adminToken, "pool", "get", "e2e/every", "-o", "json")
	require.Equal(t, 0, code, errOut)
	v = workflows.PoolView{}
	require.NoError(t, json.Unmarshal([]byte(out), &v), out)
	assert.True(t, v.Config.Equal(want), "garo pool get:\n%+v\nwant\n%+v", v.Config, want)
	code, _, errOut = garo(t, url, adminToken, "repo", "delete", "e2e/every")
	require.Equal(t, 0, code, errOut)

	for _, pool := range []string{"e2e/cli/gpu", "e2e/cli"} {
		code, out, errOut = garo(t, url, adminToken, "pool", "delete", pool)
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, out, "draining")
	}
	eventually(t, 30*time.Second, "pools gone", func() bool {
		code, _, errOut := garo(t, url, adminToken, "pool", "get", "e2e/cli")
		return code == 1 && strings.Contains(errOut, "404")
	})
	code, out, errOut = garo(t, url, adminToken, "agents", "delete", "cli-1", "--wait")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "agent cli-1 unregistered")
}
