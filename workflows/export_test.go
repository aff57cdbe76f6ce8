package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// ConfigureInTurn sends each request to a repository's workflow on the
// time-skipping test environment, a minute apart, and returns the default
// pool's view after each. Every request must be accepted.
func ConfigureInTurn(t *testing.T, reqs ...ConfigureRequest) []PoolView {
	e := newPoolEnv(t)
	views := make([]PoolView, len(reqs))
	errs := make([]error, len(reqs))
	for i, req := range reqs {
		at := time.Duration(i+1) * time.Minute
		e.configureWith(at, req, &errs[i])
		e.view(at+time.Second, &views[i])
	}
	e.drain(time.Duration(len(reqs)+1) * time.Minute)
	e.run()
	for i, err := range errs {
		require.NoError(t, err, "request %d", i)
	}
	return views
}
