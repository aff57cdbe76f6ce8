package backoff

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var fast = Policy{First: time.Millisecond, Max: 4 * time.Millisecond}

func TestRetriesUntilSuccessWithGrowingWaits(t *testing.T) {
	var waits []time.Duration
	calls := 0
	err := Retry(context.Background(), fast, func() error {
		calls++
		if calls < 5 {
			return errors.New("not yet")
		}
		return nil
	}, func(_ error, wait time.Duration) { waits = append(waits, wait) })
	require.NoError(t, err)
	assert.Equal(t, 5, calls)
	assert.Equal(t, []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond}, waits)
}

func TestPermanentErrorStopsAtOnce(t *testing.T) {
	bad := errors.New("bad token")
	calls := 0
	err := Retry(context.Background(), fast, func() error { calls++; return Permanent(bad) }, nil)
	assert.Same(t, bad, err)
	assert.Equal(t, 1, calls)
}

func TestEndedContextReturnsTheLastError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	last := errors.New("unreachable")
	calls := 0
	err := Retry(ctx, Policy{First: time.Hour, Max: time.Hour}, func() error { calls++; return last },
		func(error, time.Duration) { cancel() })
	assert.Same(t, last, err)
	assert.Equal(t, 1, calls)
}
