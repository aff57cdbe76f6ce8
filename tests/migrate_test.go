package tests

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/garo-run/garo/tests/githubsim"
	"github.com/garo-run/garo/workflows"
)

// TestARepositoryWorkflowOfTheReleaseBeforeHandsItsPoolOver is the
// upgrade on a real Temporal: a RepositoryWorkflow of the release before
// the pool engine (its run continued into this release) holds a pool and
// three queued jobs whose webhooks this release's server never gets. It
// hands the pool over to a PoolWorkflow and ends, and the pool serves
// every job: nothing is lost.
func TestARepositoryWorkflowOfTheReleaseBeforeHandsItsPoolOver(t *testing.T) {
	t.Parallel()
	const repo = "e2e/migrate"
	e := newPoolEnv(t, "e2e-migrate", "migrate-1")
	e.sim.SetFaults(githubsim.Faults{Seed: 1, Webhooks: githubsim.WebhookFaults{DropRate: 1}})
	labels := []string{"self-hosted", "linux"}
	ids := e.sim.Enqueue("e2e", "migrate", labels, 200*time.Millisecond, 3, "build")

	cfg := workflows.DefaultPoolConfig()
	cfg.Agent, cfg.MaxRunners, cfg.IdleGracePeriod = "migrate-1", 2, workflows.Duration(2*time.Second)
	cfg.QueuePollInterval = 0 // no look at GitHub but the one the handover asks for
	old := workflows.RepositoryState{Configured: true, Prefix: "0a0b0c",
		Pools: []workflows.PoolState{{Name: workflows.DefaultPool, Config: cfg, ConfiguredBy: "admin"}}}
	for _, id := range ids {
		old.Pools[0].Queue = append(old.Pools[0].Queue, workflows.QueuedJob{JobID: id, Labels: labels, QueuedAt: time.Now().UTC()})
		old.Seen = append(old.Seen, strconv.FormatInt(id, 10)+"/"+workflows.JobQueued)
	}
	ctx := context.Background()
	run, err := e.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.RepositoryWorkflowID("e2e", "migrate"),
		TaskQueue: workflows.ServerTaskQueue}, workflows.RepositoryWorkflowName,
		workflows.RepositoryInput{Owner: "e2e", Repo: "migrate", Repository: &old})
	require.NoError(t, err)
	require.NoError(t, run.Get(ctx, nil), "the repository hands over and ends")

	pool := workflows.PoolWorkflowID("e2e", "migrate", workflows.DefaultPool)
	d, err := e.temporal.DescribeWorkflow(ctx, pool, "")
	require.NoError(t, err)
	assert.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, d.Status)
	eventually(t, 2*time.Minute, "every job the old workflow held served", func() bool { return completed(e.sim, repo) == len(ids) })
	assert.Zero(t, e.sim.Stats().WebhooksSent, "no webhook told this release of them")
	v := e.pool(repo)
	assert.Equal(t, 2, v.Config.MaxRunners, "the pool's config as it was")
	assert.Equal(t, "admin", v.ConfiguredBy)
	recordHistory(t, "repositoryworkflow_migrated.json", historyJSON(t, e.temporal, run.GetID(), run.GetRunID()))

	code, b := e.do("DELETE", "/api/v1/repositories/"+repo, "")
	require.Equal(t, http.StatusAccepted, code, "%s", b)
	eventually(t, 60*time.Second, "the pool drained", func() bool {
		code, _ := e.do("GET", "/api/v1/repositories/"+repo, "")
		return code == http.StatusNotFound
	})
}
