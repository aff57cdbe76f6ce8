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

// TestBenchLoadSmoke runs a short ramp, then measures the stack at rest:
// each step is judged by its jobs' waits, and the rest figures name every
// process and count GitHub's requests.
func TestBenchLoadSmoke(t *testing.T) {
	t.Parallel()
	raw := runBench(t, "load-smoke")
	var res struct {
		JobsEnqueued  int `json:"jobsEnqueued"`
		JobsCompleted int `json:"jobsCompleted"`
		Ramp          []struct {
			Rate     float64 `json:"rate"`
			Enqueued int     `json:"enqueued"`
			Started  int     `json:"started"`
		} `json:"ramp"`
		MaxSustained *float64 `json:"maxSustainedJobsPerSecond"`
		AtRest       *struct {
			Processes map[string]struct {
				CPUPercent float64 `json:"cpuPercent"`
				RSSMiB     float64 `json:"rssMiB"`
			} `json:"processes"`
			Counted *float64 `json:"countedRequestsPerMinute"`
		} `json:"atRest"`
	}
	require.NoError(t, json.Unmarshal(raw, &res))
	require.NotEmpty(t, res.Ramp)
	assert.Equal(t, 2.0, res.Ramp[0].Rate)
	sum := 0
	for _, st := range res.Ramp {
		assert.Positive(t, st.Enqueued, "each step offers jobs")
		sum += st.Enqueued
	}
	assert.Equal(t, res.JobsEnqueued, sum, "every job offered is counted")
	assert.Equal(t, res.JobsEnqueued, res.JobsCompleted)
	require.NotNil(t, res.AtRest)
	for _, p := range []string{"server", "agent", "temporal", "githubsim"} {
		require.Contains(t, res.AtRest.Processes, p)
		assert.Positive(t, res.AtRest.Processes[p].RSSMiB, "%s's memory is read", p)
	}
	assert.NotNil(t, res.AtRest.Counted, "requests against the rate limit are counted")
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
