package process

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/activities/provider"
	"github.com/garo-run/garo/activities/provider/providertest"
)

func newProvider(t *testing.T, dir string, command ...string) *Provider {
	t.Helper()
	p, err := New(Config{StateDir: dir, Command: command, StopTimeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() {
		list, _ := p.List(context.Background(), nil)
		for _, in := range list {
			_ = p.Delete(context.Background(), in.Name)
		}
	})
	return p
}

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) provider.Provider { return newProvider(t, t.TempDir(), "sleep", "300") },
		Reopen: func(t *testing.T, p provider.Provider) provider.Provider {
			return newProvider(t, p.(*Provider).cfg.StateDir, "sleep", "300")
		},
		Request: func(name string, tags map[string]string) provider.CreateRequest {
			return provider.CreateRequest{Name: name, Tags: tags}
		},
	})
}

// TestSecretsTravelOutsideArgv: the JIT config reaches the runner through
// its environment and stdin, never through its arguments, which any user
// of the machine can read.
func TestSecretsTravelOutsideArgv(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "seen")
	p := newProvider(t, dir, "sh", "-c", `echo "args=$0 $* env=$ACTIONS_RUNNER_INPUT_JITCONFIG stdin=$(cat)" > `+out+`; sleep 300`, "{{.Name}}")
	_, err := p.Create(context.Background(), provider.CreateRequest{Name: "r-1",
		Env: map[string]string{"ACTIONS_RUNNER_INPUT_JITCONFIG": "s3cret-jit"}, Stdin: []byte("s3cret-stdin")})
	require.NoError(t, err)
	require.Eventually(t, func() bool { b, _ := os.ReadFile(out); return len(b) > 0 }, 5*time.Second, 20*time.Millisecond)
	b, _ := os.ReadFile(out)
	assert.Equal(t, "args=r-1  env=s3cret-jit stdin=s3cret-stdin\n", string(b))
	cmdline, err := os.ReadFile("/proc/" + mustGet(t, p, "r-1").ID + "/cmdline")
	require.NoError(t, err)
	assert.NotContains(t, string(cmdline), "s3cret")
	rec, err := os.ReadFile(filepath.Join(dir, "r-1.json"))
	require.NoError(t, err)
	assert.NotContains(t, string(rec), "s3cret", "the state directory holds no secret")
}

func mustGet(t *testing.T, p *Provider, name string) provider.Instance {
	t.Helper()
	in, err := p.Get(context.Background(), name)
	require.NoError(t, err)
	return in
}

func TestExitedProcessIsReported(t *testing.T) {
	p := newProvider(t, t.TempDir(), "sh", "-c", "exit 3")
	_, err := p.Create(context.Background(), provider.CreateRequest{Name: "r-1"})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return mustGet(t, p, "r-1").State == provider.StateExited }, 5*time.Second, 20*time.Millisecond)
	assert.Equal(t, 3, mustGet(t, p, "r-1").ExitCode)
	// An agent restarted afterwards still sees it exited.
	p2 := newProvider(t, p.cfg.StateDir, "true")
	assert.Equal(t, provider.StateExited, mustGet(t, p2, "r-1").State)
	require.NoError(t, p2.Delete(context.Background(), "r-1"))
}

func TestDeleteKillsWhatIgnoresSIGTERM(t *testing.T) {
	p := newProvider(t, t.TempDir(), "sh", "-c", `trap "" TERM; sleep 300 & wait`)
	p.cfg.StopTimeout = 200 * time.Millisecond
	_, err := p.Create(context.Background(), provider.CreateRequest{Name: "stubborn"})
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond)
	pid := mustGet(t, p, "stubborn").ID
	start := time.Now()
	require.NoError(t, p.Delete(context.Background(), "stubborn"))
	assert.Less(t, time.Since(start), 5*time.Second)
	_, err = os.Stat("/proc/" + pid)
	assert.True(t, os.IsNotExist(err) || processGone(pid), "the process is gone")
	n, _ := strconv.Atoi(pid)
	assert.False(t, groupAlive(n), "and so is the rest of its process group")
}

// TestAnAdoptedRunnerKeepsItsExitCode: a runner that outlives the agent
// that started it, and then crashes, is reported with its exit code; one
// killed outright is not taken for a clean exit.
func TestAnAdoptedRunnerKeepsItsExitCode(t *testing.T) {
	dir := t.TempDir()
	p := newProvider(t, dir, "sh", "-c", `read go; exit 3`)
	_, err := p.Create(context.Background(), provider.CreateRequest{Name: "crash", Stdin: []byte("go\n")})
	require.NoError(t, err)
	p2 := newProvider(t, dir, "sleep", "300") // the agent restarted while it ran
	require.Eventually(t, func() bool { return mustGet(t, p2, "crash").State == provider.StateExited }, 5*time.Second, 20*time.Millisecond)

	q := newProvider(t, dir, "sleep", "300")
	in, err := q.Create(context.Background(), provider.CreateRequest{Name: "killed"})
	require.NoError(t, err)
	q2 := newProvider(t, dir, "sleep", "300")
	pid, _ := strconv.Atoi(in.ID)
	require.NoError(t, syscall.Kill(-pid, syscall.SIGKILL))
	require.Eventually(t, func() bool { return mustGet(t, q2, "killed").State == provider.StateExited }, 5*time.Second, 20*time.Millisecond)

	// Seen by an agent that did not start them: the first one's code comes
	// from its wrapper, the second one's wrapper died with it.
	p3 := newProvider(t, dir, "sleep", "300")
	assert.Equal(t, 3, mustGet(t, p3, "crash").ExitCode)
	assert.NotZero(t, mustGet(t, p3, "killed").ExitCode)
}

func processGone(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	return err != nil || strings.Contains(string(b), ") Z ")
}

func TestBadInputs(t *testing.T) {
	_, err := New(Config{StateDir: t.TempDir()})
	assert.ErrorContains(t, err, "no command")
	_, err = New(Config{StateDir: t.TempDir(), Command: []string{"{{.Nope"}})
	assert.ErrorContains(t, err, "template")
	p := newProvider(t, t.TempDir(), "true")
	_, err = p.Create(context.Background(), provider.CreateRequest{Name: "../escape"})
	assert.ErrorContains(t, err, "invalid instance name")
}

// TestExitedTellsOfAnExitAsItHappens: the channel of a process this
// provider started closes when the process exits, and the instance then
// reads as exited; a provider that adopted the process after a restart
// cannot tell (nil), and its watch looks instead.
func TestExitedTellsOfAnExitAsItHappens(t *testing.T) {
	dir := t.TempDir()
	const command = `if [ -n "$HOLD" ]; then sleep 300; fi; exit 3`
	p := newProvider(t, dir, "sh", "-c", command)
	ctx := context.Background()
	_, err := p.Create(ctx, provider.CreateRequest{Name: "r-1"})
	require.NoError(t, err)
	_, err = p.Create(ctx, provider.CreateRequest{Name: "r-2", Env: map[string]string{"HOLD": "1"}})
	require.NoError(t, err)
	exited := p.Exited("r-1")
	require.NotNil(t, exited)
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatal("no word of the exit")
	}
	in, err := p.Get(ctx, "r-1")
	require.NoError(t, err)
	assert.Equal(t, provider.StateExited, in.State)
	assert.Equal(t, 3, in.ExitCode)

	select {
	case <-p.Exited("r-2"):
		t.Fatal("r-2 still runs")
	default:
	}
	adopted := newProvider(t, dir, "sh", "-c", command)
	assert.Nil(t, adopted.Exited("r-2"), "an adopted process is watched by its pid")
	assert.Nil(t, p.Exited("r-9"))
}

// TestARunnerGetsNothingOfTheAgentsEnvironmentButTheAllowList: job code
// on a runner is hostile. The runner reads its own /proc/self/environ:
// no variable of the agent's is there that the allow-list does not name,
// while its own inputs are.
func TestARunnerGetsNothingOfTheAgentsEnvironmentButTheAllowList(t *testing.T) {
	t.Setenv("GARO_TOKEN", "garoa_agent_secret")
	t.Setenv("GARO_GITHUB_TOKEN", "ghp_secret")
	t.Setenv("GARO_TEMPORAL_API_KEY", "temporal-secret")
	t.Setenv("LANG", "C.UTF-8")
	t.Setenv("PASSED_ON", "by the operator")
	dir := t.TempDir()
	p, err := New(Config{StateDir: dir, Command: []string{"sh", "-c", `cat /proc/self/environ > environ.$GARO_RUNNER_NAME`},
		PassEnv: []string{"PASSED_ON"}})
	require.NoError(t, err)
	_, err = p.Create(context.Background(), provider.CreateRequest{Name: "r-1",
		Options: map[string]string{"env.POOL_CACHE": "/opt/cache", "env.GARO_RUNNER_NAME": "forged", "env.LANG": "de_DE.UTF-8"},
		Env:     map[string]string{"ACTIONS_RUNNER_INPUT_JITCONFIG": "jit"}})
	require.NoError(t, err)
	var b []byte
	require.Eventually(t, func() bool {
		b, err = os.ReadFile(filepath.Join(dir, "environ.r-1"))
		return err == nil && len(b) > 0
	}, 10*time.Second, 10*time.Millisecond)
	got := map[string]string{}
	for _, kv := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	allowed := append(append([]string{}, AllowEnv...), "PASSED_ON", "PWD", "GARO_RUNNER_NAME")
	for k := range got {
		if _, agents := os.LookupEnv(k); agents {
			assert.Contains(t, allowed, k, "the agent's %s reached the runner", k)
		}
	}
	assert.Equal(t, "jit", got["ACTIONS_RUNNER_INPUT_JITCONFIG"], "its own input")
	assert.Equal(t, "r-1", got["GARO_RUNNER_NAME"], "the runner's own variables win over the pool's")
	assert.Equal(t, "de_DE.UTF-8", got["LANG"], "the pool's variables win over the agent's")
	assert.Equal(t, "/opt/cache", got["POOL_CACHE"], "the pool's env option")
	assert.Equal(t, "by the operator", got["PASSED_ON"])
	for _, secret := range []string{"GARO_TOKEN", "GARO_GITHUB_TOKEN", "GARO_TEMPORAL_API_KEY"} {
		assert.NotContains(t, got, secret)
	}
	require.Eventually(t, func() bool {
		in, err := p.Get(context.Background(), "r-1")
		return err == nil && in.State == provider.StateExited
	}, 10*time.Second, 10*time.Millisecond)
}
