package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/workflows"
	"github.com/garo-run/garo/workflows/poolconfigtest"
)

// TestEveryPoolFieldRoundTripsThroughTheAPI: a pool config with every
// field filled by reflection comes back whole from PUT and GET, and a
// merge patch of every field sets them all.
func TestEveryPoolFieldRoundTripsThroughTheAPI(t *testing.T) {
	e, _ := newPoolAPIEnv(t)
	e.agents.agents["lab-1"] = workflows.AgentState{Name: "lab-1", Status: workflows.AgentOnline,
		Capabilities: processCapabilities()}
	texts, err := poolconfigtest.Texts(map[string]string{"agent": "lab-1"})
	require.NoError(t, err)
	cfg, err := poolconfigtest.Config(texts)
	require.NoError(t, err)
	body, err := json.Marshal(cfg)
	require.NoError(t, err)

	resp, out := e.do("PUT", "/api/v1/repositories/octo/app/pools/put", adminToken, "application/json", string(body))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", out)
	resp, out = e.do("GET", "/api/v1/repositories/octo/app/pools/put", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", out)
	var v workflows.PoolView
	require.NoError(t, json.Unmarshal(out, &v))
	assert.True(t, v.Config.Equal(cfg), "PUT then GET:\n%+v\nwant\n%+v", v.Config, cfg)

	patch, err := workflows.PoolPatch(texts)
	require.NoError(t, err)
	resp, out = e.do("PATCH", "/api/v1/repositories/octo/app", adminToken, "application/merge-patch+json", string(patch))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", out)
	resp, out = e.do("GET", "/api/v1/repositories/octo/app", adminToken, "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", out)
	v = workflows.PoolView{}
	require.NoError(t, json.Unmarshal(out, &v))
	assert.True(t, v.Config.Equal(cfg), "PATCH then GET:\n%+v\nwant\n%+v", v.Config, cfg)
}

// TestSpecDescribesEveryPoolField: openapi.yaml names every field of the
// pool config, with the default the code gives it.
func TestSpecDescribesEveryPoolField(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPISpec())
	require.NoError(t, err)
	var names []string
	for _, f := range workflows.PoolFields() {
		names = append(names, f.Name)
	}
	slices.Sort(names)
	for _, schema := range []string{"PoolConfigRequest", "PoolConfig"} {
		props := doc.Components.Schemas[schema].Value.Properties
		got := make([]string, 0, len(props))
		for name := range props {
			got = append(got, name)
		}
		slices.Sort(got)
		assert.Equal(t, names, got, "the properties of %s", schema)
	}
	props := doc.Components.Schemas["PoolConfigRequest"].Value.Properties
	for _, f := range workflows.PoolFields() {
		p, ok := props[f.Name]
		if !ok {
			continue
		}
		want, err := f.JSON(f.Default)
		require.NoError(t, err)
		def := p.Value.Default
		if f.Name == "provider" {
			def = map[string]any{"kind": p.Value.Properties["kind"].Value.Default}
		}
		got, err := json.Marshal(def)
		require.NoError(t, err)
		if d, ok := def.(string); ok && f.Type == reflect.TypeFor[workflows.Duration]() {
			w, err := f.JSON(d) // "2m" and "2m0s" are one duration
			require.NoError(t, err)
			got = w
		}
		assert.JSONEq(t, string(want), string(got), "the default of %s", f.Name)
	}
}
