package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestANewPoolWaitsWhileItsAgentIsOffline: a pool configured on an agent
// that is already offline asks its status, shows agentOffline and starts
// no runner until the agent comes back.
func TestANewPoolWaitsWhileItsAgentIsOffline(t *testing.T) {
	e := newPoolEnv(t)
	e.offline["lab-1"] = true
	var cfgErr error
	var waiting, served PoolView
	e.configure(0, poolConfig(func(c *PoolConfig) { c.MinIdle = 2 }), &cfgErr)
	e.job(time.Minute, JobQueued, 1, "")
	e.view(2*time.Minute, &waiting)
	e.at(3*time.Minute, func() { e.env.SignalWorkflow(SignalAgent, AgentStatusEvent{Agent: "lab-1", Online: true}) })
	e.view(4*time.Minute, &served)
	e.drain(5 * time.Minute)
	e.run()
	require.NoError(t, cfgErr)
	assert.True(t, waiting.AgentOffline, "the view says why nothing starts")
	assert.Empty(t, waiting.Runners, "no runner starts for an agent that is offline")
	assert.Equal(t, 1, waiting.Counts.Queued)
	assert.False(t, served.AgentOffline)
	assert.Len(t, served.Runners, 3, "minIdle 2 and the queued job, once the agent is back")
	assert.Equal(t, 1, e.asked, "asked once, when the pool was made")
}

// TestANewPoolOfAnOnlineAgentStartsAtOnce: the question costs no time.
func TestANewPoolOfAnOnlineAgentStartsAtOnce(t *testing.T) {
	e := newPoolEnv(t)
	var cfgErr, moveErr error
	var started, moved PoolView
	e.configure(0, poolConfig(func(c *PoolConfig) { c.MinIdle = 1 }), &cfgErr)
	e.view(time.Second, &started)
	e.offline["lab-2"] = true
	e.configure(time.Minute, poolConfig(func(c *PoolConfig) { c.MinIdle = 2; c.Agent = "lab-2" }), &moveErr)
	e.view(time.Minute+time.Second, &moved)
	e.drain(2 * time.Minute)
	e.run()
	require.NoError(t, cfgErr)
	require.NoError(t, moveErr)
	assert.False(t, started.AgentOffline)
	assert.Len(t, started.Runners, 1)
	assert.True(t, moved.AgentOffline, "a pool moved to another agent asks again")
	assert.Len(t, moved.Runners, 1, "no runner starts on the offline agent")
	assert.Equal(t, 2, e.asked)
}

// TestLoweringTheTargetCancelsProvisioningRunnersNewestFirst: runners
// still provisioning beyond a lowered minIdle or maxRunners are deleted at
// once, the newest first.
func TestLoweringTheTargetCancelsProvisioningRunnersNewestFirst(t *testing.T) {
	e := newPoolEnv(t)
	e.slow = 10 * time.Minute // runners stay provisioning
	var errs [3]error
	var five, two, one PoolView
	e.configure(0, poolConfig(func(c *PoolConfig) { c.MinIdle = 5; c.MaxRunners = 10 }), &errs[0])
	e.view(time.Minute, &five)
	e.configure(2*time.Minute, poolConfig(func(c *PoolConfig) { c.MinIdle = 2; c.MaxRunners = 10 }), &errs[1])
	e.view(2*time.Minute+time.Second, &two)
	e.configure(3*time.Minute, poolConfig(func(c *PoolConfig) { c.MinIdle = 1; c.MaxRunners = 1 }), &errs[2])
	e.view(3*time.Minute+time.Second, &one)
	e.drain(4 * time.Minute)
	e.run()
	for _, err := range errs {
		require.NoError(t, err)
	}
	kept := func(v PoolView) []string {
		var names []string
		for _, r := range v.Runners {
			if r.State == RunnerProvisioning {
				names = append(names, r.Name)
			}
		}
		return names
	}
	names := kept(five) // in the order the pool started them
	require.Len(t, names, 5)
	assert.ElementsMatch(t, e.startedIn(DefaultPool), names)
	assert.Equal(t, names[:2], kept(two), "the three newest are cancelled")
	assert.Equal(t, 3, two.Counts.Deleting)
	assert.Equal(t, names[:1], kept(one), "maxRunners 1 keeps the oldest")
}
