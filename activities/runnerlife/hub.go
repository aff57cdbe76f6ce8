package runnerlife

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/garo-run/garo/activities"
)

// endsHub is one server's look for runner workflows that ended unseen,
// shared by the watches of every pool it serves: while any watch waits,
// one query every interval for all pools, from the earliest time any of
// them asks about, and each watch told of its own pool's ends. Two
// thousand pools cost one query, not two thousand.
type endsHub struct {
	look  func(ctx context.Context, since time.Time) (map[string][]hubEnd, error)
	every time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	subs    map[*hubSub]bool
	running bool
}

// hubEnd is a runner's end, with when its workflow closed.
type hubEnd struct {
	activities.RunnerEnd
	closed time.Time
}

// hubSub is one pool's watch.
type hubSub struct {
	pool  string
	since time.Time
	// found takes, once, what the look found for the pool.
	found chan hubLook
}

// hubLook is what one look found for a pool, and when it looked.
type hubLook struct {
	ends []activities.RunnerEnd
	at   time.Time
}

// subscribe adds a watch for pool's runners that ended since since.
func (h *endsHub) subscribe(pool string, since time.Time) *hubSub {
	s := &hubSub{pool: pool, since: since, found: make(chan hubLook, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[s] = true
	if !h.running {
		h.running = true
		go h.loop()
	}
	return s
}

// unsubscribe ends a watch.
func (h *endsHub) unsubscribe(s *hubSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, s)
}

// loop looks every interval while a watch waits, and stops once none
// does.
func (h *endsHub) loop() {
	t := time.NewTicker(h.every)
	defer t.Stop()
	for range t.C {
		h.mu.Lock()
		if len(h.subs) == 0 {
			h.running = false
			h.mu.Unlock()
			return
		}
		var since time.Time
		subs := make([]*hubSub, 0, len(h.subs))
		for s := range h.subs {
			subs = append(subs, s)
			if since.IsZero() || s.since.Before(since) {
				since = s.since
			}
		}
		h.mu.Unlock()
		h.lookOnce(since, subs)
	}
}

// lookOnce runs one look and tells each watch what is its own.
func (h *endsHub) lookOnce(since time.Time, subs []*hubSub) {
	at := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), h.every*3)
	defer cancel()
	byPool, err := h.look(ctx, since)
	if err != nil {
		h.log.Warn("Looking for runners that ended unseen failed; looking again", "error", err)
		return
	}
	for _, s := range subs {
		var ends []activities.RunnerEnd
		for _, e := range byPool[s.pool] {
			if !e.closed.Before(s.since) {
				ends = append(ends, e.RunnerEnd)
			}
		}
		if len(ends) == 0 {
			continue
		}
		slices.SortFunc(ends, func(a, b activities.RunnerEnd) int { return strings.Compare(a.WorkflowID, b.WorkflowID) })
		select {
		case s.found <- hubLook{ends: ends, at: at}:
		default: // told already
		}
	}
}
