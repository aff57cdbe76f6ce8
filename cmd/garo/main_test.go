package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
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
