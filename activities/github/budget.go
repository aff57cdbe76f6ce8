package github

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/garo-run/garo/activities"
)

// ReconcileReserve is the share of GitHub's rate limit that reconciliation
// leaves untouched: below it, a reconciliation is refused, so that the
// requests that serve jobs (a JIT config per runner, a removal) still
// find budget when hundreds of repositories reconcile on one
// installation. Webhooks keep the queues current meanwhile; the next
// reconciliation after the reset catches up.
const ReconcileReserve = 0.2

// budget is the core rate limit as GitHub's latest answer reported it.
type budget struct {
	mu               sync.Mutex
	known            bool
	remaining, limit int
	reset            time.Time
}

// observe reads the rate-limit headers of an answer of the core resource.
func (b *budget) observe(h http.Header) {
	if r := h.Get("X-RateLimit-Resource"); r != "" && r != "core" {
		return
	}
	remaining, err1 := strconv.Atoi(h.Get("X-RateLimit-Remaining"))
	limit, err2 := strconv.Atoi(h.Get("X-RateLimit-Limit"))
	reset, err3 := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || limit <= 0 {
		return
	}
	b.mu.Lock()
	b.known, b.remaining, b.limit, b.reset = true, remaining, limit, time.Unix(reset, 0)
	b.mu.Unlock()
}

// state returns the budget left, when known and its window still runs.
func (b *budget) state() (remaining, limit int, reset time.Time, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.known || time.Now().After(b.reset) {
		return 0, 0, time.Time{}, false
	}
	return b.remaining, b.limit, b.reset, true
}

// reserved reports an error when the budget left is within the reserve:
// non-retryable, for the reconciliation to be tried at its next turn
// rather than at once.
func (b *budget) reserved(what string) error {
	remaining, limit, reset, ok := b.state()
	if !ok || float64(remaining) >= ReconcileReserve*float64(limit) {
		return nil
	}
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("%s skipped: %d of GitHub's %d requests left until %s are kept for creating and removing runners",
			what, remaining, limit, reset.UTC().Format(time.RFC3339)), activities.ErrTypeRateLimited, nil)
}
