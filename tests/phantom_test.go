package tests

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/tests/githubsim"
	"github.com/garo-run/garo/workflows"
)

// TestAPoolForgetsATerminatedRunnerAfterContinueAsNew: on a Temporal server
// that suggests continue-as-new early, a pool continues as new while its
// runners live; then an operator terminates the workflow of a busy runner.
// The pool forgets that runner, every job is served, and a drain
// afterwards ends.
func TestAPoolForgetsATerminatedRunnerAfterContinueAsNew(t *testing.T) {
	t.Parallel()
	const ns = "e2e-phantom"
	addr := startOwnDevServer(t, ns, "--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=80")
	e := newPoolEnvOn(t, addr, ns, "phantom-1")
	const repo = "e2e/phantom"
	id := workflows.PoolWorkflowID("e2e", "phantom", workflows.DefaultPool)
	code, b := e.do("PUT", "/api/v1/repositories/"+repo, `{"agent":"phantom-1","minIdle":1,"maxRunners":3,
		"idleGracePeriod":"1m","bootstrapTimeout":"1m","queuePollInterval":"0s"}`)
	require.Equal(t, http.StatusOK, code, "%s", b)
	c := e.temporal
	first, err := c.DescribeWorkflow(context.Background(), id, "")
	require.NoError(t, err)

	long := e.sim.Enqueue("e2e", "phantom", []string{"self-hosted", "linux"}, 40*time.Second, 1, "long")
	var busy string
	eventually(t, 60*time.Second, "the long job running", func() bool {
		for _, r := range e.pool(repo).Runners {
			if r.State == workflows.RunnerBusy {
				busy = r.Name
			}
		}
		return busy != ""
	})
	// Short jobs make the pool's history long: it continues as new
	// while the long job runs.
	short := e.sim.Enqueue("e2e", "phantom", []string{"self-hosted", "linux"}, 100*time.Millisecond, 12, "short")
	eventually(t, 60*time.Second, "the pool continued as new", func() bool {
		d, err := c.DescribeWorkflow(context.Background(), id, "")
		return err == nil && d.WorkflowExecution.RunID != first.WorkflowExecution.RunID
	})
	require.NoError(t, c.TerminateWorkflow(context.Background(), workflows.RunnerWorkflowID("e2e", "phantom", busy), "",
		"an operator terminated it"))
	eventually(t, 90*time.Second, "the pool forgot the terminated runner", func() bool {
		for _, r := range e.pool(repo).Runners {
			if r.Name == busy {
				return false
			}
		}
		return true
	})
	more := e.sim.Enqueue("e2e", "phantom", []string{"self-hosted", "linux"}, 100*time.Millisecond, 3, "more")
	eventually(t, 120*time.Second, "every job served", func() bool {
		done := 0
		for _, j := range e.sim.Jobs(repo) {
			if j.Status == githubsim.StatusCompleted {
				done++
			}
		}
		return done == len(long)+len(short)+len(more)
	})
	code, b = e.do("DELETE", "/api/v1/repositories/"+repo, "")
	require.Equal(t, http.StatusAccepted, code, "%s", b)
	var lastPool []byte
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the pool when the drain had not ended: %s", lastPool)
		}
	})
	eventually(t, 60*time.Second, "the drain ended", func() bool {
		var code int
		code, lastPool = e.do("GET", "/api/v1/repositories/"+repo, "")
		return code == http.StatusNotFound
	})
	// A run that continued as new, and the run after it that watched
	// runners it did not start, for the replay tests.
	recordHistory(t, "poolworkflow_continues.json", historyJSON(t, c, id, first.WorkflowExecution.RunID))
	last, err := c.DescribeWorkflow(context.Background(), id, "")
	require.NoError(t, err)
	recordHistory(t, "poolworkflow_continued.json", historyJSON(t, c, id, last.WorkflowExecution.RunID))
}

// startOwnDevServer starts a Temporal dev server of this test's own, with
// namespace ns and extra arguments (dynamic config), and returns its
// address.
func startOwnDevServer(t *testing.T, ns string, extra ...string) string {
	t.Helper()
	s, err := startDevServer(append([]string{"--namespace", ns}, extra...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Log("stop dev server:", err)
		}
	})
	return s.FrontendHostPort()
}
