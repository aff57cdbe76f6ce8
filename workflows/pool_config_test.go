package workflows_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/workflows"
	"github.com/garo-run/garo/workflows/poolconfigtest"
)

// filled is a pool config with every field other than its default.
func filled(t *testing.T) (workflows.PoolConfig, map[string]string) {
	t.Helper()
	texts, err := poolconfigtest.Texts(map[string]string{"agent": "lab-1"})
	require.NoError(t, err)
	cfg, err := poolconfigtest.Config(texts)
	require.NoError(t, err)
	return cfg, texts
}

// TestEveryPoolFieldRoundTrips: every field, filled by reflection, comes
// back from JSON, from a merge patch of its flag texts and from the
// workflow, and a null in a patch gives it its default back.
func TestEveryPoolFieldRoundTrips(t *testing.T) {
	cfg, _ := filled(t)
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	back, err := workflows.DecodePoolConfig(b)
	require.NoError(t, err)
	assert.True(t, back.Equal(cfg), "JSON round trip:\n%+v\n%+v", back, cfg)

	def := workflows.DefaultPoolConfig()
	for _, f := range workflows.PoolFields() {
		reset, err := workflows.PatchPoolConfig(cfg, []byte(`{"`+f.Name+`":null}`))
		require.NoError(t, err, f.Name)
		want := cfg
		wantField(t, &want, def, f.Name)
		assert.True(t, reset.Equal(want), "null resets %s alone:\n%+v\n%+v", f.Name, reset, want)
		assert.False(t, reset.Equal(cfg), "null changes %s", f.Name)
	}

	// The workflow keeps what it is given, whole or patched, and a patch
	// changes only what it names.
	whole := workflows.ConfigureRequest{Config: cfg, Actor: "admin"}
	patch, err := workflows.PoolPatch(map[string]string{"minIdle": "0"})
	require.NoError(t, err)
	patched := workflows.ConfigureRequest{Patch: patch, Actor: "admin"}
	views := workflows.ConfigureInTurn(t, workflows.ConfigureRequest{Config: def, Actor: "admin"}, whole, patched)
	assert.True(t, views[0].Config.Equal(def), "%+v", views[0].Config)
	assert.True(t, views[1].Config.Equal(cfg), "the workflow's view:\n%+v\nwant\n%+v", views[1].Config, cfg)
	want := cfg
	want.MinIdle = 0
	assert.True(t, views[2].Config.Equal(want), "a patch keeps the other fields:\n%+v", views[2].Config)
}

// wantField sets the named field of c to its value in from.
func wantField(t *testing.T, c *workflows.PoolConfig, from workflows.PoolConfig, name string) {
	t.Helper()
	var doc, src map[string]json.RawMessage
	b, _ := json.Marshal(c)
	require.NoError(t, json.Unmarshal(b, &doc))
	b, _ = json.Marshal(from)
	require.NoError(t, json.Unmarshal(b, &src))
	doc[name] = src[name]
	b, _ = json.Marshal(doc)
	*c = workflows.PoolConfig{}
	require.NoError(t, json.Unmarshal(b, c))
}

func TestPoolFieldsAreComplete(t *testing.T) {
	for _, f := range workflows.PoolFields() {
		assert.NotEmpty(t, f.Name, "json name of %+v", f)
		assert.NotEmpty(t, f.Flag, "flag of %s", f.Name)
		assert.NotEmpty(t, f.Usage, "usage of %s", f.Name)
		_, err := f.JSON(f.Default)
		assert.NoError(t, err, "default of %s", f.Name)
	}
}

func TestPatchRejectsBadFields(t *testing.T) {
	cfg := workflows.DefaultPoolConfig()
	for _, bad := range []string{`{"minIdel":1}`, `{"minIdle":"one"}`, `[1]`, `{"labels":"a"}`, `null`, `"x"`, ``} {
		_, err := workflows.PatchPoolConfig(cfg, []byte(bad))
		assert.Error(t, err, bad)
	}
}

// TestAPatchKeepsAQueuePollIntervalOfZero: 0 means never poll, not "left
// out": a patch of another field keeps it.
func TestAPatchKeepsAQueuePollIntervalOfZero(t *testing.T) {
	c, err := workflows.DecodePoolConfig([]byte(`{"queuePollInterval":"0s"}`))
	require.NoError(t, err)
	require.Zero(t, c.QueuePollInterval)
	p, err := workflows.PatchPoolConfig(c, []byte(`{"minIdle":1}`))
	require.NoError(t, err)
	assert.Zero(t, p.QueuePollInterval, "the patch brought the default back")
	assert.Equal(t, 1, p.MinIdle)
}
