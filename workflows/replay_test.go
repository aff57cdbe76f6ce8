package workflows_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/garo-run/garo/workers"
)

// testdata holds the recorded histories, one directory per release of
// the support window (oldestSupported on), and MANIFEST lists each with
// its SHA-256.
const testdata = "testdata"

// oldestSupported is the oldest release whose histories replay: the code
// paths of older ones are gone, with their recorded histories.
const oldestSupported = 6

// TestReplayRecordedHistories replays every history recorded from a real
// run of every release (tests/, GARO_RECORD_HISTORIES=1) against the
// current workflow code: a change that would break running workflows
// fails here. Guard such a change with workflow.GetVersion and record a
// new history beside the old.
func TestReplayRecordedHistories(t *testing.T) {
	files := recordedHistories(t)
	require.NotEmpty(t, files, "no recorded histories in testdata")
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			workers.RegisterServerWorkflows(r)
			logger := tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(logger, filepath.Join(testdata, f)))
		})
	}
}

// TestRecordedHistoriesAreKept: a recorded history stands for workflows
// still running, so none inside the support window is ever changed or
// removed, each is listed in MANIFEST with its SHA-256, and no release
// older than the window is left behind.
func TestRecordedHistoriesAreKept(t *testing.T) {
	entries, err := os.ReadDir(testdata)
	require.NoError(t, err)
	releases := 0
	for _, e := range entries {
		var v int
		if _, err := fmt.Sscanf(e.Name(), "v%d", &v); err != nil || !e.IsDir() {
			continue
		}
		releases++
		assert.GreaterOrEqual(t, v, oldestSupported, "%s is older than the support window: remove it with its code paths", e.Name())
	}
	assert.GreaterOrEqual(t, releases, 2, "the window keeps the release before this one and this one")
	manifest := readManifest(t)
	for path, sum := range manifest {
		b, err := os.ReadFile(filepath.Join(testdata, path))
		if !assert.NoError(t, err, "%s is listed in MANIFEST but gone: recorded histories are never removed", path) {
			continue
		}
		got := sha256.Sum256(b)
		assert.Equal(t, sum, hex.EncodeToString(got[:]), "%s has changed: recorded histories are never overwritten; record a new one beside it", path)
	}
	for _, f := range recordedHistories(t) {
		_, listed := manifest[f]
		assert.True(t, listed, "%s is not in MANIFEST: add its line (sha256sum) with it", f)
	}
}

func recordedHistories(t *testing.T) []string {
	t.Helper()
	var files []string
	require.NoError(t, filepath.WalkDir(testdata, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".json") {
			rel, _ := filepath.Rel(testdata, path)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	}))
	return files
}

// readManifest reads MANIFEST: lines of "SHA256  PATH", as sha256sum
// writes them.
func readManifest(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(testdata, "MANIFEST"))
	require.NoError(t, err)
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sum, path, ok := strings.Cut(line, "  ")
		require.True(t, ok, "MANIFEST line %q: want SHA256, two spaces, path", line)
		out[path] = sum
	}
	require.NoError(t, sc.Err())
	return out
}
