package workflows

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/garo-run/garo/activities"
)

// sweepEnv runs a SweepWorkflow against fake activities.
type sweepEnv struct {
	env   *testsuite.TestWorkflowEnvironment
	scope activities.SweepScope
	found []activities.Repo
	agent error
	asked []activities.SweepRepo
	told  []activities.SweepRepo
}

func newSweepEnv() *sweepEnv {
	e := &sweepEnv{env: quietSuite().NewTestWorkflowEnvironment()}
	e.env.RegisterWorkflow(SweepWorkflow)
	e.env.RegisterActivityWithOptions(func(context.Context, string) (activities.SweepScope, error) { return e.scope, nil },
		activity.RegisterOptions{Name: activities.SweepScopeName})
	e.env.RegisterActivityWithOptions(func(_ context.Context, repos []activities.SweepRepo) ([]activities.Repo, error) {
		e.asked = repos
		return e.found, e.agent
	}, activity.RegisterOptions{Name: activities.SweepReposName})
	e.env.RegisterActivityWithOptions(func(_ context.Context, repos []activities.SweepRepo) (int, error) {
		e.told = repos
		n := 0
		for _, r := range repos {
			n += len(r.Pools)
		}
		return n, nil
	}, activity.RegisterOptions{Name: activities.SweepSignalName})
	return e
}

func (e *sweepEnv) run(t *testing.T) SweepResult {
	e.env.ExecuteWorkflow(SweepWorkflow, SweepInput{Agent: "lab-1"})
	require.True(t, e.env.IsWorkflowCompleted())
	require.NoError(t, e.env.GetWorkflowError())
	var res SweepResult
	require.NoError(t, e.env.GetWorkflowResult(&res))
	return res
}

func TestTheSweepTellsThePoolsOfRepositoriesWithRuns(t *testing.T) {
	e := newSweepEnv()
	a, b := activities.Repo{Owner: "octo", Name: "a"}, activities.Repo{Owner: "octo", Name: "b"}
	e.scope = activities.SweepScope{Registered: true, Repos: []activities.SweepRepo{
		{Repo: a, Pools: []string{PoolWorkflowID("octo", "a", "default"), PoolWorkflowID("octo", "a", "gpu")}},
		{Repo: b, Pools: []string{PoolWorkflowID("octo", "b", "default")}}}}
	e.found = []activities.Repo{a}
	res := e.run(t)
	assert.Len(t, e.asked, 2, "the agent looked at both repositories")
	require.Len(t, e.told, 1)
	assert.Equal(t, a, e.told[0].Repo, "only the one with runs is told")
	assert.Equal(t, SweepResult{Repos: 2, Found: 1, Told: 2}, res)
}

func TestTheSweepOfAnUnregisteredAgentEnds(t *testing.T) {
	e := newSweepEnv()
	res := e.run(t)
	assert.True(t, res.AgentGone)
	assert.Nil(t, e.asked, "nothing looked at")
}

func TestTheSweepOfAnAgentThatIsAwayIsSkipped(t *testing.T) {
	e := newSweepEnv()
	e.scope = activities.SweepScope{Registered: true, Repos: []activities.SweepRepo{{Repo: activities.Repo{Owner: "octo", Name: "a"}}}}
	e.agent = temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)
	res := e.run(t)
	assert.Equal(t, "the agent did not answer", res.Skipped)
	assert.Nil(t, e.told)
}
