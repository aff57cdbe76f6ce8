// Package tests holds Garo's end-to-end tests: the real garo binary against
// a real Temporal dev server (the temporal CLI built into ../bin by
// `make tools`). Tests share one dev server and each works in its own
// namespace, so they run in parallel.
package tests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
)

// namespaces the shared dev server creates, one per test that needs one.
var namespaces = []string{"e2e-agents", "e2e-stop", "e2e-pool", "e2e-drain", "e2e-offline", "e2e-cli", "e2e-tokens", "e2e-missed", "e2e-pools", "e2e-runs",
	"e2e-crash-server", "e2e-crash-queued", "e2e-crash-provisioning", "e2e-crash-midjob", "e2e-faults", "e2e-reaper", "e2e-retry", "e2e-listen", "e2e-secrets", "e2e-ec2", "e2e-external", "e2e-crypt", "e2e-usage", "e2e-restart", "e2e-migrate"}

var (
	garoBin      string
	githubsimBin string
	// garmExampleBin is the example GARM provider in testdata.
	garmExampleBin string
	// binDir holds garo, githubsim, garo-bench and temporal.
	binDir       string
	temporalBin  string
	devServer    *testsuite.DevServer
	temporalAddr string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "garo-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	temporalBin, err = filepath.Abs("../bin/temporal")
	if err == nil {
		_, err = os.Stat(temporalBin)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "end-to-end tests need the temporal CLI at ../bin/temporal: run `make tools` (%v)\n", err)
		return 1
	}
	garoBin, githubsimBin = filepath.Join(tmp, "garo"), filepath.Join(tmp, "githubsim")
	garmExampleBin = filepath.Join(tmp, "garm-provider-example")
	binDir = tmp
	if err := os.Symlink(temporalBin, filepath.Join(tmp, "temporal")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	build := exec.Command("go", "build", "-o", tmp, "../cmd/garo", "../cmd/githubsim", "../cmd/garo-bench", "./testdata/garm-provider-example")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build garo and githubsim:", err)
		return 1
	}
	var extra []string
	for _, ns := range namespaces {
		extra = append(extra, "--namespace", ns)
	}
	devServer, err = startDevServer(extra...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	temporalAddr = devServer.FrontendHostPort()
	code := m.Run()
	if err := devServer.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop dev server:", err)
	}
	return code
}

// startDevServer starts a Temporal dev server (the temporal CLI) with
// extra arguments: namespaces, dynamic config.
func startDevServer(extra ...string) (*testsuite.DevServer, error) {
	var log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  temporalBin,
		ClientOptions: &client.Options{Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))},
		LogLevel:      "error",
		ExtraArgs:     extra,
		Stdout:        &log,
		Stderr:        &log,
	})
	if err != nil {
		return nil, fmt.Errorf("start Temporal dev server: %w\n%s", err, log.String())
	}
	return s, nil
}

// temporalClient returns a client of the shared dev server in namespace ns.
func temporalClient(t *testing.T, ns string) client.Client {
	t.Helper()
	return temporalClientOn(t, temporalAddr, ns)
}

// temporalClientOn returns a client of the Temporal frontend at addr in
// namespace ns.
func temporalClientOn(t *testing.T, addr, ns string) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{
		HostPort: addr, Namespace: ns,
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// proc is a garo process under test, its output kept for failure reports.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs garo with args and env; the process is killed when the test
// ends, and its output shown if the test failed.
func start(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	return startCmd(t, name, garoBin, env, args...)
}

// startCmd runs bin with args and env, as start does.
func startCmd(t *testing.T, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, p.cmd.Start())
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", p.name, p.out.String())
		}
	})
	return p
}

// kill ends the process and its children at once, as a crash would.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// signal sends sig and waits up to d for the process to exit.
func (p *proc) signal(t *testing.T, sig syscall.Signal, d time.Duration) error {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig))
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("%s did not exit within %s of %s", p.name, d, sig)
		return nil
	}
}

const (
	adminToken    = "e2e-admin-token-0123456789"
	webhookSecret = "e2e-webhook-secret"
)

// startServer runs garo server in namespace ns and waits until it is ready.
func startServer(t *testing.T, ns string, extra ...string) string {
	t.Helper()
	return startServerOn(t, temporalAddr, ns, extra...)
}

// startServerOn runs garo server on the Temporal frontend at addr.
func startServerOn(t *testing.T, addr, ns string, extra ...string) string {
	t.Helper()
	url, _ := runServer(t, addr, ns, freePort(t), extra...)
	return url
}

// runServer runs garo server on port and waits until it is ready.
func runServer(t *testing.T, addr, ns string, port int, extra ...string) (string, *proc) {
	t.Helper()
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{"server", "--listen", "127.0.0.1:" + strconv.Itoa(port),
		"--temporal-address", addr, "--temporal-namespace", ns}, extra...)
	p := start(t, "server", []string{"GARO_ADMIN_TOKEN=" + adminToken, "GARO_WEBHOOK_SECRET=" + webhookSecret}, args...)
	waitHTTP(t, p, url+"/readyz", 60*time.Second)
	return url, p
}

// startAgent runs garo agent called name against the server at url.
func startAgent(t *testing.T, ns, url, name string) *proc {
	t.Helper()
	return start(t, "agent "+name, []string{"GARO_TOKEN=" + adminToken},
		"agent", "--name", name, "--server", url, "--labels", "linux,e2e",
		"--temporal-address", temporalAddr, "--temporal-namespace", ns)
}

func waitHTTP(t *testing.T, p *proc, url string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before %s answered: %v\n%s", p.name, url, p.err, p.out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("%s not ready at %s within %s", p.name, url, d)
}

// eventually polls cond every 100ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
