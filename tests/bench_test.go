package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBenchSmoke runs make bench's harness on a small scenario, so that it
// keeps working: every job completes, no runner is left, and the JSON has
// the figures that results are compared by. (Performance is measured by
// make bench, never asserted here.)
func TestBenchSmoke(t *testing.T) {
	t.Parallel()
	raw := runBench(t, "smoke")
	var res map[string]any
	require.NoError(t, json.Unmarshal(raw, &res))
	for _, k := range []string{"scenario", "jobsEnqueued", "jobsCompleted", "runnersLeft", "jobsPerSecond", "webhookToCreateMs",
		"queueWaitMs", "githubRequestsPerJob", "githubRequestsByRoute", "historyEventsPerJob", "historyBytesPerJob",
		"actionsPerJob", "cpuSeconds", "peakRssMiB"} {
		assert.Contains(t, res, k)
	}
	assert.Equal(t, res["jobsEnqueued"], res["jobsCompleted"])
	assert.Equal(t, 0.0, res["runnersLeft"])
	for _, p := range []string{"server", "agent", "temporal"} {
		assert.Contains(t, res["cpuSeconds"], p)
		assert.Contains(t, res["peakRssMiB"], p)
	}
	for _, k := range []string{"p50", "p95", "p99", "max"} {
		assert.Contains(t, res["queueWaitMs"], k)
	}
	accept, _ := res["webhookAcceptMs"].(map[string]any)
	assert.Positive(t, accept["max"], "the server's answers to deliveries are timed")
	assert.Positive(t, res["webhookAcceptMeanMs"])
	usage, _ := res["usage"].(map[string]any)
	assert.Equal(t, res["jobsCompleted"], usage["served"], "the usage API counts every job the simulator completed")
	assert.Contains(t, usage, "queueWaitMaxMs")
}

// TestBenchIdleSmoke runs the idle scenario briefly: garo dev starts, a
// warm runner comes up, and each process is measured at rest.
func TestBenchIdleSmoke(t *testing.T) {
	t.Parallel()
	raw := runBench(t, "idle-smoke")
	var res struct {
		Idle map[string]struct {
			CPUPercent float64 `json:"cpuPercent"`
			RSSMiB     float64 `json:"rssMiB"`
		} `json:"idle"`
	}
	require.NoError(t, json.Unmarshal(raw, &res))
	for _, p := range []string{"garo dev", "temporal", "githubsim", "runner"} {
		require.Contains(t, res.Idle, p)
		assert.Positive(t, res.Idle[p].RSSMiB, "%s's memory is read", p)
	}
}

// runBench runs garo-bench on a scenario and returns its JSON result.
func runBench(t *testing.T, scenario string) []byte {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(binDir, "garo-bench"), "-scenario", scenario, "-bin", binDir, "-out", out)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	files, err := filepath.Glob(filepath.Join(out, scenario+"-*.json"))
	require.NoError(t, err)
	require.Len(t, files, 1, "%s", b)
	raw, err := os.ReadFile(files[0])
	require.NoError(t, err)
	return raw
}
