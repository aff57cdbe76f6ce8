package external

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/activities/provider"
	"github.com/garo-run/garo/activities/provider/providertest"
)

// exampleBin is tests/testdata/garm-provider-example, built once.
var exampleBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "garm-example")
	if err != nil {
		panic(err)
	}
	exampleBin = filepath.Join(dir, "garm-provider-example")
	if out, err := exec.Command("go", "build", "-o", exampleBin, "../../../tests/testdata/garm-provider-example").CombinedOutput(); err != nil {
		panic(fmt.Sprintf("build the example provider: %v\n%s", err, out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// jitConfig is an encoded_jit_config of three files.
func jitConfig(name string) string {
	files := map[string]string{}
	for _, f := range []string{".runner", ".credentials", ".credentials_rsaparams"} {
		files[f] = base64.StdEncoding.EncodeToString([]byte(`{"file":"` + f + `","runner":"` + name + `"}`))
	}
	b, _ := json.Marshal(files)
	return base64.StdEncoding.EncodeToString(b)
}

type env struct {
	p        *Provider
	sessions *Sessions
	state    string // the example provider's records
}

// newEnv is a provider with the example executable, whose instances run
// runner (a command that keeps running until killed) after fetching
// their JIT config from an instance listener.
func newEnv(t *testing.T, runner string, exes ...Executable) *env {
	t.Helper()
	e := &env{sessions: &Sessions{}, state: t.TempDir()}
	srv := httptest.NewServer(e.sessions)
	t.Cleanup(srv.Close)
	e.sessions.BaseURL = srv.URL
	cfgFile := filepath.Join(t.TempDir(), "example.conf")
	require.NoError(t, os.WriteFile(cfgFile, []byte("state_dir="+e.state+"\nrunner="+runner+"\n"), 0o600))
	if len(exes) == 0 {
		exes = []Executable{{Name: "example", Path: exampleBin, ConfigFile: cfgFile, EnvPrefixes: []string{"EXAMPLE_ALLOWED_"}}}
	}
	dir := t.TempDir()
	var err error
	e.p, err = New(Config{Executables: exes, StateDir: dir, Agent: "lab-1", Sessions: e.sessions,
		CallTimeout: 10 * time.Second, CreateTimeout: 10 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() {
		list, _ := e.p.List(context.Background(), nil)
		for _, in := range list {
			_ = e.p.Delete(context.Background(), in.Name)
		}
	})
	return e
}

func request(name string, tags map[string]string) provider.CreateRequest {
	if tags == nil {
		tags = map[string]string{}
	}
	return provider.CreateRequest{Name: name, Tags: tags, RepoURL: "https://github.com/octo/app", Labels: []string{"self-hosted", "linux"},
		Options: map[string]string{"kind": Kind, "name": "example", "image": "ubuntu:24.04", "extra.zone": "a"},
		Env:     map[string]string{envJITConfig: jitConfig(name)}}
}

func TestConformance(t *testing.T) {
	var e *env
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) provider.Provider {
			e = newEnv(t, "/bin/sleep 3600")
			return e.p
		},
		Reopen: func(t *testing.T, _ provider.Provider) provider.Provider {
			p, err := New(e.p.cfg)
			require.NoError(t, err)
			return p
		},
		Request: request,
	})
}

// TestAnInstanceFetchesItsJITConfigOnceThenItsTokenCloses: the example
// instance reports installing, reads its three JIT files, reports idle;
// after that its token opens nothing.
func TestAnInstanceFetchesItsJITConfigOnceThenItsTokenCloses(t *testing.T) {
	e := newEnv(t, "/bin/sleep 3600")
	in, err := e.p.Create(context.Background(), request("garo-jit-1", map[string]string{"garo-repository": "octo/app"}))
	require.NoError(t, err)
	assert.Equal(t, "example-garo-jit-1", in.ID, "the provider_id")
	assert.Equal(t, provider.StateRunning, in.State)
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(e.state, "garo-jit-1.log"))
		return strings.Contains(string(b), "token closed after idle: ok")
	}, 10*time.Second, 20*time.Millisecond, "the instance's log")
	e.sessions.mu.Lock()
	assert.Empty(t, e.sessions.byName, "no session is left open")
	e.sessions.mu.Unlock()
}

// TestTheExecutableGetsGARMsVariablesOnly: nothing of the agent's
// environment reaches the executable but what its declaration allows.
func TestTheExecutableGetsGARMsVariablesOnly(t *testing.T) {
	t.Setenv("GARO_TOKEN", "garoa_secret")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
	t.Setenv("EXAMPLE_ALLOWED_REGION", "here")
	e := newEnv(t, "/bin/sleep 3600")
	_, err := e.p.Create(context.Background(), request("garo-env-1", nil))
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(e.state, "env.log"))
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		fields := strings.Fields(line)
		require.NotEmpty(t, fields)
		for _, name := range fields[1:] {
			if !strings.HasPrefix(name, "GARM_") && name != "EXAMPLE_ALLOWED_REGION" {
				t.Errorf("%s got variable %s", fields[0], name)
			}
		}
		assert.Contains(t, fields, "GARM_CONTROLLER_ID")
	}
}

// TestNotFoundIsDeletedAndADuplicateIsTheExistingInstance: exit 30 from
// DeleteInstance counts as deleted; exit 31 from CreateInstance returns
// the instance that exists.
func TestNotFoundIsDeletedAndADuplicateIsTheExistingInstance(t *testing.T) {
	e := newEnv(t, "/bin/sleep 3600")
	ctx := context.Background()
	_, err := e.p.Create(ctx, request("garo-gone-1", nil))
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(e.state, "garo-gone-1.json")), "the provider forgets it")
	require.NoError(t, e.p.Delete(ctx, "garo-gone-1"), "exit 30 is deleted")
	_, err = e.p.Get(ctx, "garo-gone-1")
	assert.ErrorIs(t, err, provider.ErrNotFound)

	first, err := e.p.Create(ctx, request("garo-dup-1", nil))
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(e.p.cfg.StateDir, "garo-dup-1.json")), "the agent forgets it")
	again, err := e.p.Create(ctx, request("garo-dup-1", nil))
	assert.ErrorIs(t, err, provider.ErrDuplicate, "exit 31")
	assert.Equal(t, first.ID, again.ID)
}

func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "provider.sh")
	require.NoError(t, os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o700))
	return path
}

// TestCallsAreBoundedInTimeAndOutput: a provider that hangs is killed at
// its timeout, one that writes without end is cut off, one that leaves a
// child holding its output does not hold the call, and a status other than
// running after create is an error.
func TestCallsAreBoundedInTimeAndOutput(t *testing.T) {
	ctx := context.Background()
	for name, c := range map[string]struct {
		body, want string
	}{
		"hangs":             {"exec /bin/sleep 60\n", "timed out"},
		"writes endlessly":  {"exec /bin/cat /dev/zero\n", "wrote more than"},
		"status error":      {`echo '{"provider_id":"x","name":"garo-b-1","status":"error","provider_fault":"quota exceeded"}'` + "\n", "quota exceeded"},
		"not json":          {"echo hello\n", "want a ProviderInstance"},
		"fails with stderr": {"echo 'no such image' >&2; exit 2\n", "exited with 2"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, "/bin/sleep 3600", Executable{Name: "example", Path: script(t, c.body)})
			e.p.cfg.CreateTimeout, e.p.cfg.CallTimeout, e.p.cfg.MaxOutput = time.Second, time.Second, 1<<16
			began := time.Now()
			_, err := e.p.Create(ctx, request("garo-b-1", nil))
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.Less(t, time.Since(began), 20*time.Second)
		})
	}
	e := newEnv(t, "/bin/sleep 3600", Executable{Name: "example", Path: script(t,
		`/bin/sleep 60 &`+"\n"+`echo '{"provider_id":"p-1","name":"garo-c-1","status":"running"}'`+"\n")})
	e.p.cfg.CreateTimeout, e.p.waitDelay = 30*time.Second, 200*time.Millisecond
	_, err := e.p.Create(ctx, request("garo-c-1", nil))
	require.NoError(t, err, "a child left attached holds the call at most WaitDelay")
}

func TestSessionsServeGARMsMetadataRoutes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := &Sessions{BaseURL: "http://agent:9470", TTL: time.Hour, now: func() time.Time { return now }}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	tok, meta, cb, err := s.Open("garo-s-1", "octo/app", map[string]string{envJITConfig: jitConfig("garo-s-1")})
	require.NoError(t, err)
	assert.Equal(t, "http://agent:9470/api/v1/metadata", meta)
	assert.Equal(t, "http://agent:9470/api/v1/callbacks", cb)
	regTok, _, _, err := s.Open("garo-s-2", "octo/app", map[string]string{envToken: "AREGTOKEN"})
	require.NoError(t, err)

	do := func(method, path, token, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := do("GET", "/api/v1/metadata/credentials/runner", tok, "")
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"file":".runner","runner":"garo-s-1"}`, body, "the file, decoded")
	code, _ = do("GET", "/api/v1/metadata/credentials/runner", "garoi_forged", "")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, _ = do("GET", "/api/v1/metadata/credentials/runner", regTok, "")
	assert.Equal(t, http.StatusNotFound, code, "another instance's files are not its")
	code, body = do("GET", "/api/v1/metadata/system/service-name/", tok, "")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "actions.runner.octo-app.garo-s-1", body)
	code, body = do("GET", "/api/v1/metadata/runner-registration-token/", regTok, "")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "AREGTOKEN", body)
	code, _ = do("GET", "/api/v1/metadata/runner-registration-token/", regTok, "")
	assert.Equal(t, http.StatusNotFound, code, "a registration token is handed out once")

	code, _ = do("POST", "/api/v1/callbacks/status", tok, `{"status":"installing","message":"downloading"}`)
	assert.Equal(t, http.StatusOK, code)
	code, _ = do("GET", "/api/v1/metadata/credentials/credentials", tok, "")
	assert.Equal(t, http.StatusOK, code, "still open while installing")
	code, _ = do("POST", "/api/v1/callbacks/status", tok, `{"status":"idle","message":"runner started"}`)
	assert.Equal(t, http.StatusOK, code)
	code, _ = do("GET", "/api/v1/metadata/credentials/credentials", tok, "")
	assert.Equal(t, http.StatusUnauthorized, code, "closed once idle")

	now = now.Add(2 * time.Hour)
	code, _ = do("GET", "/api/v1/metadata/system/service-name", regTok, "")
	assert.Equal(t, http.StatusUnauthorized, code, "closed after its TTL")
}

func TestParseExecutable(t *testing.T) {
	e, err := ParseExecutable("lxd=" + exampleBin + ",config=/etc/garo/lxd.toml,env=LXD_:HTTPS_PROXY")
	require.NoError(t, err)
	assert.Equal(t, Executable{Name: "lxd", Path: exampleBin, ConfigFile: "/etc/garo/lxd.toml", EnvPrefixes: []string{"LXD_", "HTTPS_PROXY"}}, e)
	for _, bad := range []string{"lxd", "LXD=" + exampleBin, "lxd=relative/path", "lxd=/nonexistent", "lxd=" + exampleBin + ",shell=1"} {
		_, err := ParseExecutable(bad)
		assert.Error(t, err, bad)
	}
}
