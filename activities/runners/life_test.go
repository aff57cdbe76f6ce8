package runners

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/activities/provider"
)

// countingProvider counts the instances created.
type countingProvider struct {
	provider.Provider
	creates atomic.Int32
}

func (c *countingProvider) Create(ctx context.Context, req provider.CreateRequest) (provider.Instance, error) {
	c.creates.Add(1)
	return c.Provider.Create(ctx, req)
}

// lifeEnv is an env whose runner exits at once, cleanly, with its
// provider's creates counted.
func lifeEnv(t *testing.T) (*env, *countingProvider) {
	e := newEnvRunning(t, "sh", "-c", "exit 0")
	c := &countingProvider{Provider: e.proc}
	e.a.Providers["process"] = c
	return e, c
}

func (e *env) runRunner(t *testing.T) activities.RunRunnerResult {
	t.Helper()
	v, err := e.act.ExecuteActivity(activities.RunRunnerName, activities.RunRunnerInput{CreateRunnerInput: createInput(true)})
	require.NoError(t, err)
	var res activities.RunRunnerResult
	require.NoError(t, v.Get(&res))
	return res
}

// TestAnAttemptAfterTheRunnerEndedCreatesNoOther: the first attempt ran
// the runner's whole life, but Temporal did not get its result (it was
// away when the runner ended) and tried again. The second attempt answers
// with the first one's end: it creates no second runner, which would
// take a job beyond the pool's maxRunners.
func TestAnAttemptAfterTheRunnerEndedCreatesNoOther(t *testing.T) {
	e, c := lifeEnv(t)
	first := e.runRunner(t)
	assert.Equal(t, activities.OutcomeExited, first.Outcome)
	again := e.runRunner(t)
	assert.Equal(t, first, again)
	assert.Equal(t, int32(1), c.creates.Load(), "one instance for one runner")
}

// TestAnAttemptAfterTheAgentRestartedTakesUpNoEndedRunner: an attempt
// before the agent's restart had created the runner (its heartbeat says
// so) and the instance is gone: its end went unseen. The runner is not
// created again; the pool hears it vanished.
func TestAnAttemptAfterTheAgentRestartedTakesUpNoEndedRunner(t *testing.T) {
	e, c := lifeEnv(t)
	e.act.SetHeartbeatDetails(phaseRunning)
	res := e.runRunner(t)
	assert.Equal(t, activities.OutcomeVanished, res.Outcome)
	assert.Zero(t, c.creates.Load())
	assert.Empty(t, e.sim.Runners("octo/app"), "nothing left on GitHub")
}

// TestAFailedAttemptLeavesTheRunnerToTheNext: an attempt that failed
// (here: no GitHub credentials) is forgotten, and the next one runs the
// runner's life.
func TestAFailedAttemptLeavesTheRunnerToTheNext(t *testing.T) {
	e, c := lifeEnv(t)
	gh := e.a.GitHub
	e.a.GitHub = nil
	_, err := e.act.ExecuteActivity(activities.RunRunnerName, activities.RunRunnerInput{CreateRunnerInput: createInput(true)})
	require.Error(t, err)
	e.a.GitHub = gh
	res := e.runRunner(t)
	assert.Equal(t, activities.OutcomeExited, res.Outcome)
	assert.Equal(t, int32(1), c.creates.Load())
}
