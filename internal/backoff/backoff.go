// Package backoff retries an operation with exponential backoff until it
// succeeds, fails for good, or its context ends.
package backoff

import (
	"context"
	"errors"
	"time"
)

// Policy is the wait before the second attempt, doubling up to Max.
type Policy struct {
	First time.Duration
	Max   time.Duration
}

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks an error that retrying cannot fix: Retry returns it at
// once.
func Permanent(err error) error { return permanent{err} }

// Retry calls op until it returns nil or a Permanent error, or ctx ends.
// Before each wait it tells onRetry (when set) the failure and the wait.
// It returns nil, the permanent error, or, when ctx ends, op's last error.
func Retry(ctx context.Context, p Policy, op func() error, onRetry func(err error, wait time.Duration)) error {
	delay := p.First
	for {
		err := op()
		if err == nil {
			return nil
		}
		var perm permanent
		if errors.As(err, &perm) {
			return perm.err
		}
		if ctx.Err() != nil {
			return err
		}
		if onRetry != nil {
			onRetry(err, delay)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, p.Max)
	}
}
