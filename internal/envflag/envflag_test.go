package envflag

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newSet() (*flag.FlagSet, *string, *time.Duration, *StringList) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("temporal-address", "localhost:7233", "Temporal frontend")
	d := fs.Duration("offline-after", time.Minute, "offline after")
	var labels StringList
	fs.Var(&labels, "labels", "labels")
	return fs, addr, d, &labels
}

func TestPrecedenceFlagOverEnvOverDefault(t *testing.T) {
	env := map[string]string{"GARO_TEMPORAL_ADDRESS": "env:7233", "GARO_OFFLINE_AFTER": "30s", "GARO_LABELS": "a, b"}
	fs, addr, d, labels := newSet()
	require.NoError(t, Parse(fs, "GARO", []string{"--temporal-address", "flag:7233"}, func(k string) string { return env[k] }))
	assert.Equal(t, "flag:7233", *addr)
	assert.Equal(t, 30*time.Second, *d)
	assert.Equal(t, StringList{"a", "b"}, *labels)

	fs, addr, d, _ = newSet()
	require.NoError(t, Parse(fs, "GARO", nil, func(string) string { return "" }))
	assert.Equal(t, "localhost:7233", *addr)
	assert.Equal(t, time.Minute, *d)
}

func TestBadEnvironmentValueNamesTheVariable(t *testing.T) {
	fs, _, _, _ := newSet()
	err := Parse(fs, "GARO", nil, func(k string) string {
		if k == "GARO_OFFLINE_AFTER" {
			return "soon"
		}
		return ""
	})
	assert.ErrorContains(t, err, "GARO_OFFLINE_AFTER")
}

func TestUsageNamesTheVariable(t *testing.T) {
	fs, _, _, _ := newSet()
	require.NoError(t, Parse(fs, "GARO", nil, func(string) string { return "" }))
	assert.Contains(t, fs.Lookup("temporal-address").Usage, "env GARO_TEMPORAL_ADDRESS")
}
