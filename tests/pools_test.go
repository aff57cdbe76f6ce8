package tests

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/garo-run/garo/tests/githubsim"
	"github.com/garo-run/garo/workflows"
)

// TestSeveralPoolsOfOneRepository: one repository with a linux pool on one
// agent and a gpu pool on another (as if in two networks). Jobs of both
// kinds each complete on a runner of their own pool; a job neither fits is
// listed as unmatched, with its labels and age, and stays queued. (Each
// kind asks for a custom label of its pool: GitHub gives every runner the
// labels self-hosted, Linux and X64, so a job asking for those alone may
// run on any pool's runner.)
func TestSeveralPoolsOfOneRepository(t *testing.T) {
	t.Parallel()
	e := newPoolEnv(t, "e2e-pools", "pools-linux")
	e.startAgentAs("pools-gpu", t.TempDir())
	e.waitOnline("pools-gpu")
	const repo = "e2e/pools"
	code, b := e.do("PUT", "/api/v1/repositories/"+repo+"/pools/linux", `{"agent":"pools-linux","labels":["self-hosted","linux","standard"],
		"maxRunners":3,"idleGracePeriod":"5s","bootstrapTimeout":"1m"}`)
	require.Equal(t, http.StatusOK, code, "%s", b)
	code, b = e.do("PUT", "/api/v1/repositories/"+repo+"/pools/gpu", `{"agent":"pools-gpu","labels":["self-hosted","linux","gpu"],
		"maxRunners":2,"idleGracePeriod":"5s","bootstrapTimeout":"1m"}`)
	require.Equal(t, http.StatusOK, code, "%s", b)

	linux := e.sim.Enqueue("e2e", "pools", []string{"self-hosted", "linux", "standard"}, 200*time.Millisecond, 4, "build")
	gpu := e.sim.Enqueue("e2e", "pools", []string{"self-hosted", "GPU"}, 200*time.Millisecond, 2, "train")
	arm := e.sim.Enqueue("e2e", "pools", []string{"self-hosted", "arm64"}, 200*time.Millisecond, 1, "cross")
	poolOf := map[int64]string{}
	for _, id := range linux {
		poolOf[id] = "linux"
	}
	for _, id := range gpu {
		poolOf[id] = "gpu"
	}
	eventually(t, 120*time.Second, "every job that fits a pool completed", func() bool {
		done := 0
		for _, j := range e.sim.Jobs(repo) {
			if poolOf[j.ID] != "" && j.Status == githubsim.StatusCompleted {
				done++
			}
		}
		return done == len(poolOf)
	})
	for _, j := range e.sim.Jobs(repo) {
		if pool := poolOf[j.ID]; pool != "" {
			assert.Equal(t, "success", j.Conclusion, "job %d", j.ID)
			assert.Contains(t, j.RunnerName, "-"+pool+"-", "job %d ran on a runner of pool %s", j.ID, pool)
			continue
		}
		assert.Equal(t, arm[0], j.ID)
		assert.Equal(t, githubsim.StatusQueued, j.Status, "no runner fits the arm64 job")
	}

	var unmatched struct {
		Jobs []struct {
			JobID  int64    `json:"jobId"`
			Labels []string `json:"labels"`
			Age    string   `json:"age"`
		} `json:"jobs"`
		Total int `json:"total"`
	}
	code, b = e.do("GET", "/api/v1/repositories/"+repo+"/unmatched", "")
	require.Equal(t, http.StatusOK, code, "%s", b)
	decode(t, b, &unmatched)
	require.Len(t, unmatched.Jobs, 1, "%s", b)
	assert.Equal(t, arm[0], unmatched.Jobs[0].JobID)
	assert.Equal(t, []string{"self-hosted", "arm64"}, unmatched.Jobs[0].Labels)
	age, err := time.ParseDuration(unmatched.Jobs[0].Age)
	require.NoError(t, err)
	assert.Positive(t, age)
	assert.Equal(t, 1, unmatched.Total)

	// GitHub shows a job completed before its webhook reaches the pool,
	// and the list shows what the pools last published.
	want := map[string]int{"gpu": len(gpu), "linux": len(linux)}
	done := map[string]int{}
	eventually(t, 30*time.Second, "each pool counting its jobs done", func() bool {
		pools, err := e.api.ListPools(context.Background(), "e2e", "pools")
		require.NoError(t, err)
		require.Len(t, pools, 2)
		clear(done)
		for _, p := range pools {
			done[p.Pool] = p.Counts.JobsDone
		}
		return maps.Equal(want, done)
	})
	assert.Equal(t, want, done)
	code, _ = e.do("GET", "/api/v1/repositories/"+repo, "")
	assert.Equal(t, http.StatusNotFound, code, "this repository has no default pool")
	// Listing pages with cursors the server sealed; a forged one is 400 at
	// once, and never reaches Temporal.
	code, b = e.do("GET", "/api/v1/repositories?limit=1", "")
	require.Equal(t, http.StatusOK, code, "%s", b)
	for _, forged := range []string{"AAAA", "eyJhIjoxfQ"} {
		code, b = e.do("GET", "/api/v1/repositories?cursor="+forged, "")
		assert.Equal(t, http.StatusBadRequest, code, "%s", b)
	}

	// Each agent is handed only its own pool.
	for agent, pool := range map[string]string{"pools-linux": "linux", "pools-gpu": "gpu"} {
		code, b := e.do("GET", "/api/v1/agents/"+agent+"/config", "")
		require.Equal(t, http.StatusOK, code, "%s", b)
		assert.Contains(t, string(b), `"pool":"`+pool+`"`)
		assert.Equal(t, 1, strings.Count(string(b), `"pool":`), "%s", b)
	}

	// Unregistering the gpu agent drains its pool only.
	unregister(t, e.api, "pools-gpu")
	pools, err := e.api.ListPools(context.Background(), "e2e", "pools")
	require.NoError(t, err)
	require.Len(t, pools, 1)
	assert.Equal(t, "linux", pools[0].Pool)

	for _, p := range []string{"linux"} {
		code, b = e.do("DELETE", "/api/v1/repositories/"+repo+"/pools/"+p, "")
		require.Equal(t, http.StatusAccepted, code, "%s", b)
	}
	eventually(t, 60*time.Second, "repository drained", func() bool {
		code, _ := e.do("GET", "/api/v1/repositories/"+repo+"/pools", "")
		return code == http.StatusNotFound && len(e.sim.Runners(repo)) == 0
	})
	c := temporalClient(t, e.ns)
	d, err := c.DescribeWorkflow(context.Background(), workflows.PoolWorkflowID("e2e", "pools", "linux"), "")
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, d.Status)
	recordHistory(t, "poolworkflow_pools.json", historyJSON(t, c, workflows.PoolWorkflowID("e2e", "pools", "linux"), d.WorkflowExecution.RunID))
	j := e.sim.Jobs(repo)[0]
	runner := workflows.RunnerWorkflowID("e2e", "pools", j.RunnerName)
	rd, err := c.DescribeWorkflow(context.Background(), runner, "")
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, rd.Status)
	recordHistory(t, "runnerworkflow_pools.json", historyJSON(t, c, runner, rd.WorkflowExecution.RunID))
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(b, v), "%s", b)
}
