package runnerlife

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/activities"
)

// TestOneLookServesEveryPoolsWatch: the watches of three pools share one
// look (a query from the earliest time any asks about); each is told of
// its own pool's runners that ended since its own time, and nothing of
// the others'; once no watch waits, the looks stop.
func TestOneLookServesEveryPoolsWatch(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	var asked []time.Time
	h := &endsHub{every: 5 * time.Millisecond, log: slog.New(slog.DiscardHandler), subs: map[*hubSub]bool{},
		look: func(_ context.Context, since time.Time) (map[string][]hubEnd, error) {
			mu.Lock()
			asked = append(asked, since)
			mu.Unlock()
			end := func(id string, at time.Time) hubEnd {
				return hubEnd{RunnerEnd: activities.RunnerEnd{WorkflowID: id, Status: "terminated"}, closed: at}
			}
			return map[string][]hubEnd{
				"o/r/a": {end("garo/runner/o/r/a-2", t0.Add(2*time.Minute)), end("garo/runner/o/r/a-1", t0.Add(-time.Minute))},
				"o/r/x": {end("garo/runner/o/r/x-1", t0)},
			}, nil
		}}
	a := h.subscribe("o/r/a", t0)
	b := h.subscribe("o/r/b", t0.Add(-5*time.Minute))
	c := h.subscribe("o/r/c", t0.Add(time.Minute))

	select {
	case l := <-a.found:
		assert.Equal(t, []activities.RunnerEnd{{WorkflowID: "garo/runner/o/r/a-2", Status: "terminated"}}, l.ends,
			"its own pool's end since its time, not the one before")
	case <-time.After(5 * time.Second):
		t.Fatal("the watch of pool a was never told")
	}
	h.unsubscribe(a)
	mu.Lock()
	assert.Equal(t, t0.Add(-5*time.Minute), asked[0], "one look from the earliest time asked")
	mu.Unlock()
	assert.Empty(t, b.found, "nothing ended in pool b")
	assert.Empty(t, c.found, "nothing ended in pool c")
	h.unsubscribe(b)
	h.unsubscribe(c)
	require.Eventually(t, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return !h.running
	}, 5*time.Second, time.Millisecond, "no look once no watch waits")
}
