// Package providertest is the conformance suite every provider passes.
package providertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/activities/provider"
)

// Harness gives the suite a provider and a way to look inside.
type Harness struct {
	// New returns a fresh provider; Reopen, when set, returns a second
	// provider over the same state, as after an agent restart.
	New    func(t *testing.T) provider.Provider
	Reopen func(t *testing.T, p provider.Provider) provider.Provider
	// Request returns a CreateRequest for an instance that keeps running
	// until deleted.
	Request func(name string, tags map[string]string) provider.CreateRequest
}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	t.Run("CreateGetListDelete", func(t *testing.T) { createGetListDelete(t, h) })
	t.Run("CreateIsIdempotentByName", func(t *testing.T) { createIsIdempotentByName(t, h) })
	t.Run("ConcurrentCreatesMakeOneInstance", func(t *testing.T) { concurrentCreatesMakeOneInstance(t, h) })
	t.Run("ConcurrentCreatesAndDeletes", func(t *testing.T) { concurrentCreatesAndDeletes(t, h) })
	t.Run("ListFiltersByAllTags", func(t *testing.T) { listFiltersByAllTags(t, h) })
	if h.Reopen != nil {
		t.Run("RestartAdoptsInstances", func(t *testing.T) { restartAdoptsInstances(t, h) })
	}
	t.Run("DeleteHonoursContext", func(t *testing.T) { deleteHonoursContext(t, h) })
	t.Run("OptionsAreAValidSchema", func(t *testing.T) {
		// The agent reports them at registration, which refuses a bad one.
		require.NoError(t, provider.CheckSchema(h.New(t).Options()))
	})
}

func createGetListDelete(t *testing.T, h Harness) {
	ctx := context.Background()
	p := h.New(t)
	in, err := p.Create(ctx, h.Request("r-1", map[string]string{"repo": "octo/app", "agent": "a1"}))
	require.NoError(t, err)
	assert.Equal(t, "r-1", in.Name)
	assert.NotEmpty(t, in.ID)
	assert.Equal(t, provider.StateRunning, in.State)
	assert.False(t, in.CreatedAt.IsZero())

	got, err := p.Get(ctx, "r-1")
	require.NoError(t, err)
	assert.Equal(t, in.ID, got.ID)
	assert.Equal(t, "octo/app", got.Tags["repo"])

	list, err := p.List(ctx, map[string]string{"repo": "octo/app"})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "r-1", list[0].Name)
	list, err = p.List(ctx, map[string]string{"repo": "other/repo"})
	require.NoError(t, err)
	assert.Empty(t, list)

	require.NoError(t, p.Delete(ctx, "r-1"))
	_, err = p.Get(ctx, "r-1")
	assert.True(t, errors.Is(err, provider.ErrNotFound), "got %v", err)
	assert.True(t, errors.Is(p.Delete(ctx, "r-1"), provider.ErrNotFound))
	list, err = p.List(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, list)
}

func createIsIdempotentByName(t *testing.T, h Harness) {
	ctx := context.Background()
	p := h.New(t)
	first, err := p.Create(ctx, h.Request("r-dup", nil))
	require.NoError(t, err)
	again, err := p.Create(ctx, h.Request("r-dup", nil))
	assert.True(t, errors.Is(err, provider.ErrDuplicate), "got %v", err)
	assert.Equal(t, first.ID, again.ID, "the existing instance is returned")
	list, err := p.List(ctx, nil)
	require.NoError(t, err)
	assert.Len(t, list, 1)
	require.NoError(t, p.Delete(ctx, "r-dup"))
}

func concurrentCreatesMakeOneInstance(t *testing.T, h Harness) {
	ctx := context.Background()
	p := h.New(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, dup := 0, 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.Create(ctx, h.Request("r-race", nil))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, provider.ErrDuplicate):
				dup++
			default:
				t.Errorf("create: %v", err)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, ok)
	assert.Equal(t, 7, dup)
	list, err := p.List(ctx, nil)
	require.NoError(t, err)
	assert.Len(t, list, 1)
	require.NoError(t, p.Delete(ctx, "r-race"))
}

func listFiltersByAllTags(t *testing.T, h Harness) {
	ctx := context.Background()
	p := h.New(t)
	for i, tags := range []map[string]string{
		{"repo": "a/b", "agent": "x"}, {"repo": "a/b", "agent": "y"}, {"repo": "c/d", "agent": "x"},
	} {
		_, err := p.Create(ctx, h.Request(fmt.Sprintf("r-%d", i), tags))
		require.NoError(t, err)
	}
	list, err := p.List(ctx, map[string]string{"repo": "a/b", "agent": "x"})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "r-0", list[0].Name)
	all, err := p.List(ctx, nil)
	require.NoError(t, err)
	assert.Len(t, all, 3)
	for i := range 3 {
		require.NoError(t, p.Delete(ctx, fmt.Sprintf("r-%d", i)))
	}
}

func restartAdoptsInstances(t *testing.T, h Harness) {
	ctx := context.Background()
	p := h.New(t)
	in, err := p.Create(ctx, h.Request("r-keep", map[string]string{"repo": "octo/app"}))
	require.NoError(t, err)
	p2 := h.Reopen(t, p)
	got, err := p2.Get(ctx, "r-keep")
	require.NoError(t, err)
	assert.Equal(t, in.ID, got.ID)
	assert.Equal(t, provider.StateRunning, got.State)
	require.NoError(t, p2.Delete(ctx, "r-keep"))
	_, err = p2.Get(ctx, "r-keep")
	assert.True(t, errors.Is(err, provider.ErrNotFound))
}

func deleteHonoursContext(t *testing.T, h Harness) {
	ctx := context.Background()
	p := h.New(t)
	_, err := p.Create(ctx, h.Request("r-ctx", nil))
	require.NoError(t, err)
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, p.Delete(dctx, "r-ctx"))
}

// concurrentCreatesAndDeletes runs creates, deletes, gets and lists of
// different instances at once: run under -race, it finds unguarded state.
func concurrentCreatesAndDeletes(t *testing.T, h Harness) {
	ctx := context.Background()
	p := h.New(t)
	var wg sync.WaitGroup
	for i := range 8 {
		name := fmt.Sprintf("r-cd-%d", i)
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := p.Create(ctx, h.Request(name, map[string]string{"i": name})); err != nil {
				t.Errorf("create %s: %v", name, err)
				return
			}
			if _, err := p.Get(ctx, name); err != nil {
				t.Errorf("get %s: %v", name, err)
			}
			if err := p.Delete(ctx, name); err != nil {
				t.Errorf("delete %s: %v", name, err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := p.List(ctx, nil); err != nil {
				t.Errorf("list: %v", err)
			}
		}()
	}
	wg.Wait()
	list, err := p.List(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, list, "every instance was deleted")
}
