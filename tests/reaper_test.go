package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/garo-run/garo/tests/githubsim"
	"github.com/garo-run/garo/workflows"
)

// register registers a runner called name with labels straight on the
// simulator, as a create that crashed before starting its instance
// leaves one, and returns its JIT config.
func (e *poolEnv) register(repo, name string, labels ...string) string {
	e.t.Helper()
	var out struct {
		JIT string `json:"encoded_jit_config"`
	}
	e.createOnGitHub("/repos/"+repo+"/actions/runners/generate-jitconfig",
		map[string]any{"name": name, "runner_group_id": 1, "labels": labels}, &out)
	return out.JIT
}

// createOnGitHub POSTs body to the simulator's GitHub API at path, wants
// 201 Created, and decodes the answer into out.
func (e *poolEnv) createOnGitHub(path string, body, out any) {
	e.t.Helper()
	b, err := json.Marshal(body)
	require.NoError(e.t, err)
	req, err := http.NewRequest("POST", e.simURL+path, bytes.NewReader(b))
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer ghs_e2e")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	require.Equal(e.t, http.StatusCreated, resp.StatusCode)
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(out))
}

// soleRunner waits until the pool of repo has one runner, in state, and
// returns its name.
func (e *poolEnv) soleRunner(repo string, state workflows.RunnerState) string {
	e.t.Helper()
	var name string
	eventually(e.t, 60*time.Second, "a runner "+string(state), func() bool {
		v := e.pool(repo)
		if len(v.Runners) == 1 && v.Runners[0].State == state {
			name = v.Runners[0].Name
		}
		return name != ""
	})
	return name
}

func (e *poolEnv) registered(repo, name string) bool {
	return slices.ContainsFunc(e.sim.Runners(repo), func(r githubsim.Runner) bool { return r.Name == name })
}

// TestReaperRemovesOrphansAndKeepsABusyRunner: three kinds of orphans (an
// instance and registration whose runner workflow died, a registration
// left by a create that crashed, the registration of an ephemeral runner
// lost mid-job) are removed by the agent's reaper, run at once with
// `temporal schedule trigger`; a busy runner no workflow owns, and the
// pool's own runner, are kept.
func TestReaperRemovesOrphansAndKeepsABusyRunner(t *testing.T) {
	t.Parallel()
	const repo = "e2e/reaper"
	e := newPoolEnv(t, "e2e-reaper", "reaper-1")
	// Its runs every 5 minutes are paused, so that the test's orphans wait
	// for the run it triggers.
	require.NoError(t, e.temporal.ScheduleClient().GetHandle(context.Background(), workflows.ReaperScheduleID("reaper-1")).
		Pause(context.Background(), client.SchedulePauseOptions{Note: "the test triggers its runs"}))
	code, b := e.do("PUT", "/api/v1/repositories/"+repo, `{"agent":"reaper-1","minIdle":1,"bootstrapTimeout":"1m"}`)
	require.Equal(t, http.StatusOK, code, "%s", b)
	dead := e.soleRunner(repo, workflows.RunnerIdle)
	// Its workflow dies: its instance and registration are left.
	require.NoError(t, e.temporal.TerminateWorkflow(context.Background(), workflows.RunnerWorkflowID("e2e", "reaper", dead), "", "test"))

	// A create that crashed after registering.
	const crashed, lost, busy = "garo-0e2e00-900", "garo-0e2e00-901", "garo-0e2e00-902"
	e.register(repo, crashed, "self-hosted", "orphan")
	// An ephemeral runner lost mid-job, and a busy one: neither has a
	// workflow. Their jobs carry labels the pool's runners lack.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	lostCtx, loseIt := context.WithCancel(ctx)
	lostJIT, busyJIT := e.register(repo, lost, "self-hosted", "lost"), e.register(repo, busy, "self-hosted", "busy")
	e.sim.Enqueue("e2e", "reaper", []string{"self-hosted", "lost"}, time.Hour, 1, "lost")
	e.sim.Enqueue("e2e", "reaper", []string{"self-hosted", "busy"}, time.Hour, 1, "busy")
	go func() { _ = githubsim.RunRunner(lostCtx, githubsim.RunnerConfig{URL: e.simURL, JITConfig: lostJIT}) }()
	go func() { _ = githubsim.RunRunner(ctx, githubsim.RunnerConfig{URL: e.simURL, JITConfig: busyJIT}) }()
	eventually(t, 30*time.Second, "both running their jobs", func() bool {
		n := 0
		for _, r := range e.sim.Runners(repo) {
			if (r.Name == lost || r.Name == busy) && r.Busy {
				n++
			}
		}
		return n == 2
	})
	loseIt()
	eventually(t, 30*time.Second, "the lost runner's job failed, its registration left", func() bool {
		for _, r := range e.sim.Runners(repo) {
			if r.Name == lost {
				return !r.Busy
			}
		}
		return false
	})
	var live string
	eventually(t, 60*time.Second, "the pool replaced its runner", func() bool {
		v := e.pool(repo)
		if len(v.Runners) == 1 && v.Runners[0].Name != dead && v.Counts.Idle == 1 {
			live = v.Runners[0].Name
		}
		return live != ""
	})
	require.FileExists(t, filepath.Join(e.stateDir, "process", dead+".json"), "the dead runner's instance is left")

	// `temporal schedule trigger` runs it at once.
	reaped, run := e.reaperRun(func() {
		out, err := exec.Command(temporalBin, "schedule", "trigger", "--schedule-id", workflows.ReaperScheduleID("reaper-1"),
			"--address", e.addr, "--namespace", e.ns).CombinedOutput()
		require.NoError(t, err, "%s", out)
	})
	eventually(t, 60*time.Second, "the orphans removed", func() bool {
		_, err := os.Stat(filepath.Join(e.stateDir, "process", dead+".json"))
		return os.IsNotExist(err) && !e.registered(repo, dead) && !e.registered(repo, crashed) && !e.registered(repo, lost)
	})
	assert.True(t, e.registered(repo, busy), "a busy runner is never removed")
	assert.True(t, e.registered(repo, live), "the pool's runner is kept")
	assert.FileExists(t, filepath.Join(e.stateDir, "process", live+".json"))
	// The run says what it removed: 1 instance and 3 registrations.
	assert.Equal(t, int64(4), reaped)
	recordHistory(t, "reaperworkflow_e2e.json", historyJSON(t, e.temporal, run.Execution.WorkflowId, run.Execution.RunId))
}
