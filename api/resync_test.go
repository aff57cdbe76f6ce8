package api

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/mocks"

	"github.com/garo-run/garo/workflows"
)

// TestResyncGoesOnPastARefusal: of the pools whose webhooks Temporal
// refused, the first refuses every resync too (it took too many signals);
// the others are asked all the same, each once, and the first again at
// each tick.
func TestResyncGoesOnPastARefusal(t *testing.T) {
	c := &mocks.Client{}
	var mu sync.Mutex
	asked := map[string]int{}
	c.On("SignalWorkflow", mock.Anything, mock.Anything, "", workflows.SignalResync, mock.Anything).Return(
		func(_ context.Context, id, _, _ string, _ any) error {
			mu.Lock()
			defer mu.Unlock()
			asked[id]++
			if id == "garo/pool/repo/a/a/default" {
				return serviceerror.NewResourceExhausted(0, "signal count exceeds the limit")
			}
			return nil
		})
	in := &Intake{Client: c}
	for _, id := range []string{"garo/pool/repo/a/a/default", "garo/pool/repo/b/b/default", "garo/pool/repo/c/c/default"} {
		in.remember(id)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); in.ResyncRefused(ctx, 10*time.Millisecond, slog.New(slog.DiscardHandler)) }()
	assert.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return asked["garo/pool/repo/a/a/default"] >= 3
	}, 5*time.Second, 10*time.Millisecond, "the refusing pool asked at every tick")
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 1, asked["garo/pool/repo/b/b/default"], "asked once, past the refusal")
	assert.Equal(t, 1, asked["garo/pool/repo/c/c/default"], "asked once, past the refusal")
}
