package githubsim

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestARunnerTakesTheOldestQueuedJobThatFits: past the jobs already
// taken, a runner gets its repository's oldest queued job whose labels it
// has, also when an older job (a sequential run's next) is queued after
// younger ones; other repositories' jobs are not its own.
func TestARunnerTakesTheOldestQueuedJobThatFits(t *testing.T) {
	s := newState()
	job := func(labels ...string) *Job { return &Job{ID: s.id(), Labels: labels} }
	seq := []*Job{job("linux"), job("linux")}
	_, queued := s.newRun("o/r", seq, true)
	require.Len(t, queued, 1)
	gpu, plain := job("linux", "gpu"), job("linux")
	s.newRun("o/r", []*Job{gpu, plain}, false)
	s.newRun("o/other", []*Job{job("linux")}, false)

	rn := &Runner{Repo: "O/R", Labels: []string{"self-hosted", "linux"}}
	take := func() *Job {
		j := s.nextJobFor(rn)
		if j != nil {
			j.Status = StatusInProgress
		}
		return j
	}
	assert.Same(t, seq[0], take())
	assert.Same(t, plain, take(), "the gpu job does not fit")
	assert.Nil(t, take(), "nothing else fits in o/r")

	seq[0].Status, seq[0].Conclusion = StatusCompleted, "success"
	require.Same(t, seq[1], s.next(seq[0]))
	assert.Same(t, seq[1], take(), "an older job queued late is still found")
	rn.Labels = append(rn.Labels, "gpu")
	assert.Same(t, gpu, take())
	assert.Nil(t, take())
	assert.Len(t, s.jobsOf("o/r"), 4)
}
