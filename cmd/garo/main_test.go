package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/workflows"
	"github.com/garo-run/garo/workflows/poolconfigtest"
)

func runGaro(env map[string]string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

func TestUsageAndVersion(t *testing.T) {
	code, _, stderr := runGaro(nil)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "garo server")
	code, _, stderr = runGaro(nil, "frobnicate")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `unknown command "frobnicate"`)
	code, stdout, _ := runGaro(nil, "version")
	assert.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(stdout, "garo "))
}

func TestCommandsRefuseMissingEssentials(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"server without token", nil, []string{"server", "--listen", "127.0.0.1:0"}, "no admin token"},
		{"agent without name", nil, []string{"agent"}, "--name is required"},
		{"agent as an operator command", nil, []string{"agent", "list"}, "garo agents list"},
		{"agent with bad name", map[string]string{"GARO_TOKEN": "t"}, []string{"agent", "--name", "Bad_Name"}, "invalid agent name"},
		{"agent without token", nil, []string{"agent", "--name", "a1"}, "no token"},
		{"bad env value", map[string]string{"GARO_OFFLINE_AFTER": "soon"}, []string{"server"}, "GARO_OFFLINE_AFTER"},
		{"bad log level", nil, []string{"server", "--log-level", "loud"}, "--log-level"},
		{"missing token file", nil, []string{"server", "--admin-token-file", "/nonexistent/t"}, "read secret"},
		{"process provider without state", map[string]string{"GARO_TOKEN": "t"}, []string{"agent", "--name", "a1", "--process-command", "run.sh"}, "--state-dir"},
		{"app without key", map[string]string{"GARO_TOKEN": "t"}, []string{"agent", "--name", "a1", "--github-app-id", "5"}, "installation id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runGaro(c.env, c.args...)
			assert.Equal(t, 1, code)
			assert.Contains(t, stderr, c.want)
		})
	}
}

// TestEveryCommandAnswersHelp: --help on every command and subcommand
// prints its usage and exits 0.
func TestEveryCommandAnswersHelp(t *testing.T) {
	for _, args := range [][]string{{"server", "--help"}, {"agent", "--help"}, {"dev", "--help"}, {"--help"}} {
		code, stdout, stderr := runGaro(nil, args...)
		assert.Equal(t, 0, code, "%v", args)
		assert.Contains(t, stdout+stderr, "Usage", "%v", args)
	}
	nouns := map[string]bool{}
	for _, c := range commands() {
		code, stdout, stderr := runGaro(nil, append(strings.Fields(c.name), "--help")...)
		assert.Equal(t, 0, code, c.name)
		assert.Contains(t, stderr, "Usage: garo "+c.name, c.name)
		assert.Empty(t, stdout, c.name)
		noun := nounOf(c.name)
		if noun == c.name || nouns[noun] {
			continue
		}
		nouns[noun] = true
		code, stdout, _ = runGaro(nil, noun, "--help")
		assert.Equal(t, 0, code, noun)
		assert.Contains(t, stdout, "garo "+c.name, "garo %s --help lists its subcommands", noun)
		code, _, stderr = runGaro(nil, noun, "frob")
		assert.Equal(t, 1, code, noun)
		assert.Contains(t, stderr, "unknown command")
	}
	assert.Equal(t, map[string]bool{"repo": true, "pool": true, "agents": true}, nouns)
}

func TestPoolArguments(t *testing.T) {
	for arg, want := range map[string][3]string{
		"octo/app":          {"octo", "app", "default"},
		"octo/app/gpu":      {"octo", "app", "gpu"},
		"Octo/App.js/arm-1": {"Octo", "App.js", "arm-1"},
	} {
		owner, repo, pool, err := parsePoolArg(arg)
		require.NoError(t, err, arg)
		assert.Equal(t, want, [3]string{owner, repo, pool}, arg)
	}
	for _, bad := range []string{"octo", "octo/app/GPU", "octo/app/gpu/x", "/app", "octo//gpu"} {
		_, _, _, err := parsePoolArg(bad)
		assert.Error(t, err, bad)
	}
}

// TestPoolSetChangesOnlyWhatItsFlagsName: garo pool set sends a merge
// patch of the flags given, never fields from the environment (where an
// agent's GARO_LABELS may be set).
func TestPoolSetChangesOnlyWhatItsFlagsName(t *testing.T) {
	var method, ct string
	var patch map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "/api/v1/repositories/octo/app/pools/gpu", r.URL.Path)
		method, ct = r.Method, r.Header.Get("Content-Type")
		require.NoError(t, json.NewDecoder(r.Body).Decode(&patch))
		_, _ = io.WriteString(w, `{"repository":"octo/app","pool":"gpu","config":{},"counts":{}}`)
	}))
	defer srv.Close()
	env := map[string]string{"GARO_SERVER": srv.URL, "GARO_TOKEN": "t", "GARO_LABELS": "linux,e2e", "GARO_AGENT": "other"}
	code, stdout, stderr := runGaro(env, "pool", "set", "octo/app/gpu", "--max-runners", "5", "--ephemeral=false",
		"--provider", "kind=ec2,region=eu-west-1", "--idle-grace", "90s")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "gpu")
	assert.Equal(t, http.MethodPatch, method)
	assert.Equal(t, "application/merge-patch+json", ct)
	assert.Equal(t, map[string]any{"maxRunners": 5.0, "ephemeral": false, "idleGracePeriod": "1m30s",
		"provider": map[string]any{"kind": "ec2", "region": "eu-west-1"}}, patch)

	code, _, stderr = runGaro(env, "pool", "set", "octo/app/gpu", "--max-runners", "many")
	assert.Equal(t, 1, code, "a bad flag value is refused before anything is sent")
	assert.Contains(t, stderr, "maxRunners")
}

// TestEveryPoolFieldHasAFlag: garo repo set with a flag for every field of
// the pool config, filled by reflection, sends a patch that sets them all.
func TestEveryPoolFieldHasAFlag(t *testing.T) {
	texts, err := poolconfigtest.Texts(nil)
	require.NoError(t, err)
	want, err := poolconfigtest.Config(texts)
	require.NoError(t, err)
	var patch []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "/api/v1/repositories/octo/app", r.URL.Path)
		assert.Equal(t, http.MethodPatch, r.Method)
		patch, _ = io.ReadAll(r.Body)
		_, _ = io.WriteString(w, `{"repository":"octo/app","pool":"default","config":{},"counts":{}}`)
	}))
	defer srv.Close()
	env := map[string]string{"GARO_SERVER": srv.URL, "GARO_TOKEN": "t"}
	code, _, stderr := runGaro(env, append([]string{"repo", "set", "octo/app"}, poolconfigtest.Flags(texts)...)...)
	require.Equal(t, 0, code, stderr)
	got, err := workflows.PatchPoolConfig(workflows.DefaultPoolConfig(), patch)
	require.NoError(t, err)
	assert.True(t, got.Equal(want), "the patch %s gives\n%+v\nwant\n%+v", patch, got, want)

	code, _, stderr = runGaro(env, "repo", "set", "octo/app/gpu", "--min-idle", "1")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "garo pool set")
}
