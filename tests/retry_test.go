package tests

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/tests/githubsim"
	"github.com/garo-run/garo/workflows"
)

// killRunner kills the process group of a runner the process provider
// started, as a machine that dies would.
func (e *poolEnv) killRunner(name string) {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.stateDir, "process", name+".json"))
	require.NoError(e.t, err)
	var rec struct {
		PID int `json:"pid"`
	}
	require.NoError(e.t, json.Unmarshal(b, &rec))
	require.NoError(e.t, syscall.Kill(-rec.PID, syscall.SIGKILL))
}

// TestALostJobIsRunAgainOnce: in a pool with retryLostJobs, the runner of
// a job dies mid-job; GitHub fails the job, and the pool runs it again
// through GitHub's re-run API, once: the new attempt succeeds.
func TestALostJobIsRunAgainOnce(t *testing.T) {
	t.Parallel()
	const repo = "e2e/retry"
	e := newPoolEnv(t, "e2e-retry", "retry-1")
	code, b := e.do("PUT", "/api/v1/repositories/"+repo, `{"agent":"retry-1","bootstrapTimeout":"1m","retryLostJobs":true}`)
	require.Equal(t, http.StatusOK, code, "%s", b)
	ids := e.sim.Enqueue("e2e", "retry", []string{"self-hosted", "linux"}, 5*time.Second, 1, "build")
	runner := e.soleRunner(repo, workflows.RunnerBusy)
	e.killRunner(runner)
	eventually(t, 90*time.Second, "the job run again, and done", func() bool {
		jobs := e.sim.Jobs(repo)
		return len(jobs) == 2 && jobs[1].Status == githubsim.StatusCompleted
	})
	jobs := e.sim.Jobs(repo)
	assert.Equal(t, ids[0], jobs[0].ID)
	assert.Equal(t, "failure", jobs[0].Conclusion, "the job failed with its runner")
	assert.Equal(t, int64(2), jobs[1].RunAttempt)
	assert.Equal(t, "success", jobs[1].Conclusion, "its new attempt succeeded")
	time.Sleep(3 * time.Second)
	assert.Len(t, e.sim.Jobs(repo), 2, "run again once only")
	recordHistory(t, "runnerworkflow_lost.json", historyJSON(t, e.temporal, workflows.RunnerWorkflowID("e2e", "retry", runner), ""))
	recordHistory(t, "poolworkflow_retried.json", historyJSON(t, e.temporal, workflows.PoolWorkflowID("e2e", "retry", workflows.DefaultPool), ""))
}
