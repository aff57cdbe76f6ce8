package tests

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAnExternalPoolServesJobsThroughAGARMProvider: an agent declares the
// example GARM provider (tests/testdata/garm-provider-example, written to
// GARM's contract alone). Each instance it starts fetches its JIT config
// from the agent's instance listener with its instance token, reports
// idle, and runs the simulated runner. 20 jobs complete, and once the pool
// has drained no instance is left, in the provider or on the agent.
func TestAnExternalPoolServesJobsThroughAGARMProvider(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	cfgFile := filepath.Join(t.TempDir(), "example.conf")
	require.NoError(t, os.WriteFile(cfgFile, []byte("state_dir="+state+"\nrunner="+githubsimBin+" runner\n"), 0o600))
	e := newPoolEnvWith(t, &poolEnv{t: t, ns: "e2e-external", agent: "garm-1", addr: temporalAddr,
		agentArgs: []string{"--external-provider", "example=" + garmExampleBin + ",config=" + cfgFile,
			"--instance-listen", "127.0.0.1:" + strconv.Itoa(freePort(t))}})
	const repo = "e2e/external"
	code, b := e.do("PUT", "/api/v1/repositories/"+repo, `{"agent":"garm-1","maxRunners":4,"idleGracePeriod":"3s",
		"bootstrapTimeout":"1m","provider":{"kind":"external","name":"example","image":"runner:latest","extra.zone":"z1"}}`)
	require.Equal(t, http.StatusOK, code, "%s", b)
	code, b = e.do("PUT", "/api/v1/repositories/e2e/external-bad", `{"agent":"garm-1","provider":{"kind":"external","name":"openstack"}}`)
	assert.Equal(t, http.StatusUnprocessableEntity, code, "a provider the agent does not declare: %s", b)

	const jobs = 20
	e.serveAndDrain(repo, jobs)
	records := func(dir string) []string {
		m, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		return m
	}
	eventually(t, 30*time.Second, "no instance left", func() bool {
		return len(records(state)) == 0 && len(records(filepath.Join(e.stateDir, "external"))) == 0
	})
	assert.Empty(t, e.sim.Runners(repo), "no runner left on GitHub")

	logs, _ := filepath.Glob(filepath.Join(state, "garo-*.log"))
	assert.GreaterOrEqual(t, len(logs), jobs, "one instance per job")
	closed := 0
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		if strings.Contains(string(b), "token closed after idle: ok") {
			closed++
		}
	}
	assert.Equal(t, len(logs), closed, "every instance fetched its JIT config, and its token closed once it was idle")
	envLog, err := os.ReadFile(filepath.Join(state, "env.log"))
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(envLog)), "\n") {
		for _, name := range strings.Fields(line)[1:] {
			assert.True(t, strings.HasPrefix(name, "GARM_"), "the provider got %s", name)
		}
	}
}
