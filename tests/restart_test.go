package tests

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/garo-run/garo/workflows"
)

// TestAWebhookForATerminatedPoolIsRefusedAndThePoolStartsAgain: an
// operator terminates a pool's workflow. The next webhook for it is
// answered 503, never 202 for a job nothing recorded; the pool's workflow
// starts again from its last config, learns the job from GitHub, and
// serves it.
func TestAWebhookForATerminatedPoolIsRefusedAndThePoolStartsAgain(t *testing.T) {
	t.Parallel()
	const repo = "e2e/restart"
	e := newPoolEnv(t, "e2e-restart", "restart-1")
	code, b := e.do("PUT", "/api/v1/repositories/"+repo, `{"agent":"restart-1","maxRunners":2,"idleGracePeriod":"2s",
		"queuePollInterval":"0s"}`)
	require.Equal(t, http.StatusOK, code, "%s", b)
	id := workflows.PoolWorkflowID("e2e", "restart", workflows.DefaultPool)
	ctx := context.Background()
	first, err := e.temporal.DescribeWorkflow(ctx, id, "")
	require.NoError(t, err)
	eventually(t, 30*time.Second, "the pool's memo published", func() bool {
		code, b := e.do("GET", "/api/v1/repositories?limit=10", "")
		return code == http.StatusOK && len(b) > 0 && e.pool(repo).Config.Agent == "restart-1"
	})
	require.NoError(t, e.temporal.TerminateWorkflow(ctx, id, "", "an operator terminated it"))

	jobs := e.sim.Enqueue("e2e", "restart", []string{"self-hosted", "linux"}, 200*time.Millisecond, 1, "build")
	require.Len(t, jobs, 1)
	eventually(t, 60*time.Second, "the queued webhook refused", func() bool {
		for _, d := range e.sim.Deliveries() {
			if d.JobID == jobs[0] && d.Action == workflows.JobQueued {
				require.NotEqual(t, http.StatusAccepted, d.StatusCode, "a job nothing recorded is not accepted")
				return d.StatusCode == http.StatusServiceUnavailable
			}
		}
		return false
	})
	eventually(t, 60*time.Second, "the pool's workflow started again", func() bool {
		d, err := e.temporal.DescribeWorkflow(ctx, id, "")
		return err == nil && d.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING && d.WorkflowExecution.RunID != first.WorkflowExecution.RunID
	})
	eventually(t, 2*time.Minute, "the job served", func() bool { return completed(e.sim, repo) == 1 })
	v := e.pool(repo)
	assert.Equal(t, 2, v.Config.MaxRunners, "its config as it was")
	code, b = e.do("DELETE", "/api/v1/repositories/"+repo, "")
	require.Equal(t, http.StatusAccepted, code, "%s", b)
	eventually(t, 60*time.Second, "the pool drained", func() bool {
		code, _ := e.do("GET", "/api/v1/repositories/"+repo, "")
		return code == http.StatusNotFound
	})
}
