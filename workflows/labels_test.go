package workflows

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMatchPoolPicksTheClosestFitThenTheFirstName(t *testing.T) {
	pools := [][]string{
		{"self-hosted", "linux", "x64", "large"}, // 0 "big"
		{"self-hosted", "linux", "gpu"},          // 1 "gpu"
		{"self-hosted", "linux"},                 // 2 "linux"
		{"self-hosted", "Linux", "linux"},        // 3 "linux2": the same labels, repeated
		nil,                                      // 4 a pool that takes no jobs
	}
	for _, c := range []struct {
		job  []string
		want int
	}{
		{[]string{"self-hosted", "linux"}, 2},
		{[]string{"self-hosted"}, 2},
		{[]string{"SELF-HOSTED", "GPU"}, 1},
		{[]string{"linux", "gpu", "self-hosted"}, 1},
		{[]string{"x64"}, 0},
		{[]string{"arm64"}, -1},
		{[]string{"gpu", "large"}, -1},
		{nil, 2},
	} {
		assert.Equal(t, c.want, matchPool(c.job, pools), "job %v", c.job)
	}
	assert.Equal(t, 0, matchPool([]string{"linux"}, [][]string{{"linux", "a"}, {"linux", "b"}}), "a tie goes to the first name")
	assert.Equal(t, 1, extraLabels([]string{"linux"}, []string{"linux", "LINUX", "gpu", "GPU"}), "a label counts once")
}
