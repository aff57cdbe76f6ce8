package api

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/mocks"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/workflows"
)

// TestIntakeGroupCommitsPerPool: one signal to a pool on its way at a
// time; what comes meanwhile goes, all of it, in the next one, and each
// delivery is answered once the signal carrying it is durable.
func TestIntakeGroupCommitsPerPool(t *testing.T) {
	const pool = "garo/pool/repo/o/r/default"
	c := &mocks.Client{}
	var mu sync.Mutex
	var batches [][]int64
	inflight, most := 0, 0
	release := make(chan struct{})
	c.On("SignalWorkflow", mock.Anything, pool, "", workflows.SignalIntake, mock.Anything).Return(
		func(_ context.Context, _, _, _ string, arg any) error {
			b := arg.(workflows.IntakeBatch)
			var ids []int64
			for _, j := range b.Jobs {
				ids = append(ids, j.JobID)
			}
			mu.Lock()
			batches = append(batches, ids)
			inflight++
			most = max(most, inflight)
			mu.Unlock()
			<-release
			mu.Lock()
			inflight--
			mu.Unlock()
			return nil
		})
	in := &Intake{Client: c}
	answered := make(chan int64, 10)
	deliver := func(id int64) {
		go func() {
			err := in.deliver(context.Background(), pool, intakeItem{job: &workflows.JobEvent{JobID: id, Action: workflows.JobQueued}})
			assert.NoError(t, err)
			answered <- id
		}()
	}
	signals := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(batches)
	}
	waiting := func() int {
		in.mu.Lock()
		defer in.mu.Unlock()
		if q := in.pools[pool]; q != nil {
			return len(q.pending)
		}
		return 0
	}

	deliver(1)
	require.Eventually(t, func() bool { return signals() == 1 }, 5*time.Second, time.Millisecond, "a signal on its way")
	for id := int64(2); id <= 10; id++ {
		deliver(id)
	}
	require.Eventually(t, func() bool { return waiting() == 9 }, 5*time.Second, time.Millisecond, "the others wait")
	assert.Equal(t, 1, signals(), "no second signal while one is on its way")
	select {
	case id := <-answered:
		t.Fatalf("job %d answered before its signal was durable", id)
	default:
	}

	release <- struct{}{}
	require.Eventually(t, func() bool { return signals() == 2 }, 5*time.Second, time.Millisecond, "the next signal")
	close(release)
	got := map[int64]bool{}
	for range 10 {
		select {
		case id := <-answered:
			got[id] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("answered %d of 10", len(got))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Len(t, got, 10)
	assert.Equal(t, 1, most, "one signal at a time")
	require.Len(t, batches, 2, "the nine that waited went in one signal")
	assert.ElementsMatch(t, []int64{2, 3, 4, 5, 6, 7, 8, 9, 10}, batches[1])
	in.mu.Lock()
	defer in.mu.Unlock()
	assert.Empty(t, in.pools, "nothing kept once all is delivered")
}

// TestWhatNeedNotHurryWaitsForCompany: a job's start and a runner's
// report wait (Linger) for something to go with; a queued job goes at
// once and takes them along, in one signal; alone, they go once Linger
// has passed.
func TestWhatNeedNotHurryWaitsForCompany(t *testing.T) {
	const pool = "garo/pool/repo/o/r/default"
	c := &mocks.Client{}
	batches := make(chan workflows.IntakeBatch, 10)
	c.On("SignalWorkflow", mock.Anything, pool, "", workflows.SignalIntake, mock.Anything).Return(
		func(_ context.Context, _, _, _ string, arg any) error {
			batches <- arg.(workflows.IntakeBatch)
			return nil
		})
	in := &Intake{Client: c, Linger: time.Hour}
	errs := make(chan error, 3)
	deliver := func(it intakeItem) {
		go func() { errs <- in.deliver(context.Background(), pool, it) }()
	}
	lingering := func(n int) func() bool {
		return func() bool {
			in.mu.Lock()
			defer in.mu.Unlock()
			q := in.pools[pool]
			return q != nil && len(q.pending) == n && q.linger != nil && !q.inflight
		}
	}
	deliver(intakeItem{job: &workflows.JobEvent{JobID: 1, Action: workflows.JobInProgress}})
	require.Eventually(t, lingering(1), 5*time.Second, time.Millisecond, "a job's start waits")
	deliver(intakeItem{report: &activities.RunnerReport{Runner: "garo-r-1"}})
	require.Eventually(t, lingering(2), 5*time.Second, time.Millisecond, "a runner's report waits")
	deliver(intakeItem{job: &workflows.JobEvent{JobID: 2, Action: workflows.JobQueued}})
	b := <-batches
	assert.Len(t, b.Jobs, 2, "the queued job took the start along")
	assert.Len(t, b.Runners, 1, "and the report")
	for range 3 {
		require.NoError(t, <-errs)
	}

	in.Linger = 10 * time.Millisecond
	deliver(intakeItem{job: &workflows.JobEvent{JobID: 1, Action: workflows.JobCompleted}})
	select {
	case b := <-batches:
		assert.Len(t, b.Jobs, 1, "alone, it goes after Linger")
	case <-time.After(5 * time.Second):
		t.Fatal("a lingering job's end was never sent")
	}
	require.NoError(t, <-errs)
}
