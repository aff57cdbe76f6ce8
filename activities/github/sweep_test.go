package github

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/garo-run/garo/activities"
)

// TestTheSweepFindsRepositoriesWithRunsAtNoRateLimitCost: the sweep looks
// at each dormant repository with two conditional requests; an unchanged
// repository answers 304, free of the rate limit; a repository is looked
// at again only once its interval has passed.
func TestTheSweepFindsRepositoriesWithRunsAtNoRateLimitCost(t *testing.T) {
	sim, url := newSim(t)
	c := newClient(t, url)
	a := &Activities{Client: c}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a.Register(env)
	quiet, busy := activities.Repo{Owner: "octo", Name: "quiet"}, activities.Repo{Owner: "octo", Name: "busy"}
	sim.Enqueue("octo", "busy", []string{"self-hosted"}, time.Hour, 1, "build")
	repos := []activities.SweepRepo{{Repo: quiet, Every: time.Nanosecond}, {Repo: busy, Every: time.Nanosecond}}
	sweep := func() []activities.Repo {
		v, err := env.ExecuteActivity(activities.SweepReposName, repos)
		require.NoError(t, err)
		var found []activities.Repo
		require.NoError(t, v.Get(&found))
		return found
	}
	assert.Equal(t, []activities.Repo{busy}, sweep(), "the repository with a queued run")
	win, _, err := c.gh.RateLimit.Get(context.Background())
	require.NoError(t, err)
	before := win.GetCore().Remaining
	for range 3 {
		assert.Equal(t, []activities.Repo{busy}, sweep())
	}
	win, _, err = c.gh.RateLimit.Get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, before, win.GetCore().Remaining, "unchanged repositories cost no rate limit")

	repos[0].Every, repos[1].Every = time.Hour, time.Hour
	n := c.RequestCount("GET /repos/{owner}/{repo}/actions/runs", 304) + c.RequestCount("GET /repos/{owner}/{repo}/actions/runs", 200)
	sweep()
	assert.Equal(t, n, c.RequestCount("GET /repos/{owner}/{repo}/actions/runs", 304)+
		c.RequestCount("GET /repos/{owner}/{repo}/actions/runs", 200), "not looked at again before its interval")
}
