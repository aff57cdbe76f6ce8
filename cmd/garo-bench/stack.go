package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/garo-run/garo/workflows"
)

// proc is one process of the stack.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// stack is what the benchmark runs and measures.
type stack struct {
	temporal, sim, server, agent *proc
	temporalAddr, simURL, apiURL string
	// namespace is Garo's Temporal namespace; certs, on the production
	// Temporal, the directory of each process's certificate.
	namespace, certs string
	token            string
	work             string
	procs            []*proc
	// cleanups run after every process has stopped.
	cleanups []func()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *stack) start(name, bin string, env []string, args ...string) (*proc, error) {
	logFile, err := os.Create(filepath.Join(s.work, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	s.procs = append(s.procs, p)
	return p, nil
}

// stop stops the agent first, then the server, the simulator, Temporal.
func (s *stack) stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	for _, f := range s.cleanups {
		f()
	}
}

// startStack starts Temporal (the dev server with the SQLite pragmas, or
// on postgres the production Temporal of deploy), the simulator, the
// server and the agent and waits until the agent is online.
func startStack(ctx context.Context, bin, work string, pragmas []string, postgres bool, deploy string, budget int, logf func(string, ...any)) (*stack, error) {
	s := &stack{work: work, namespace: "default"}
	ports := make([]int, 3)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	s.token, s.temporalAddr = "garo_bench_"+hex.EncodeToString(tok), "127.0.0.1:"+strconv.Itoa(ports[0])
	s.simURL, s.apiURL = "http://127.0.0.1:"+strconv.Itoa(ports[1]), "http://127.0.0.1:"+strconv.Itoa(ports[2])
	secret := "whsec_bench_" + hex.EncodeToString(tok[:8])
	args := []string{"server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", strconv.Itoa(ports[0]),
		"--db-filename", filepath.Join(work, "temporal.db"), "--namespace", "default", "--log-level", "error"}
	for _, a := range workflows.SearchAttributes() {
		args = append(args, "--search-attribute", a.Name+"="+a.TypeName())
	}
	for _, p := range pragmas {
		args = append(args, "--sqlite-pragma", p)
	}
	var err error
	if postgres {
		if err := s.startPostgresTemporal(ctx, bin, deploy, logf); err != nil {
			return s, err
		}
	} else {
		logf("starting the Temporal dev server")
		if s.temporal, err = s.start("temporal", filepath.Join(bin, "temporal"), nil, args...); err != nil {
			return s, err
		}
	}
	simArgs := []string{"--listen", "127.0.0.1:" + strconv.Itoa(ports[1]), "--webhook-url", s.apiURL + "/webhooks/github", "--seed", "1",
		// Every delivery is kept, for webhook -> create; 64 are in flight
		// at once, as GitHub sends many.
		"--delivery-log", "1000000", "--webhook-concurrency", "64",
		// A runner that a loaded machine keeps silent for a while is not
		// failed for it (GitHub gives a runner minutes).
		"--runner-offline-after", "2m"}
	if budget > 0 {
		simArgs = append(simArgs, "--rate-limit", strconv.Itoa(budget))
	}
	if s.sim, err = s.start("githubsim", filepath.Join(bin, "githubsim"), []string{"GITHUBSIM_WEBHOOK_SECRET=" + secret}, simArgs...); err != nil {
		return s, err
	}
	if err := waitHTTP(ctx, s.simURL+"/_sim/stats", time.Minute); err != nil {
		return s, fmt.Errorf("simulator: %w", err)
	}
	env := []string{"GARO_ADMIN_TOKEN=" + s.token, "GARO_WEBHOOK_SECRET=" + secret, "GARO_TOKEN=" + s.token, "GARO_GITHUB_TOKEN=bench"}
	if s.server, err = s.start("server", filepath.Join(bin, "garo"), env, append([]string{"server", "--listen", "127.0.0.1:" + strconv.Itoa(ports[2])},
		s.temporalArgs("server")...)...); err != nil {
		return s, err
	}
	logf("waiting for garo server to be ready")
	if err := waitHTTP(ctx, s.apiURL+"/readyz", 2*time.Minute); err != nil {
		return s, fmt.Errorf("server (see %s): %w", filepath.Join(work, "server.log"), err)
	}
	if s.agent, err = s.start("agent", filepath.Join(bin, "garo"), env, append([]string{"agent", "--name", "bench", "--server", s.apiURL,
		"--github-url", s.simURL, "--sim-provider", s.simURL}, s.temporalArgs("agent-bench")...)...); err != nil {
		return s, err
	}
	return s, s.waitAgent(ctx, "bench")
}

// waitAgent waits until the agent name is online.
func (s *stack) waitAgent(ctx context.Context, name string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var a workflows.AgentState
		if code, _ := s.api(ctx, "GET", "/api/v1/agents/"+name, nil, &a); code == http.StatusOK && a.Status == workflows.AgentOnline {
			return nil
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("agent %s did not come online (see the logs in %s)", name, s.work)
}

func waitHTTP(ctx context.Context, url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %w", url, err)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// call sends a JSON request to base+path and decodes the answer into out.
func call(ctx context.Context, method, url, token string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(b, out)
	}
	return resp.StatusCode, nil
}

func (s *stack) api(ctx context.Context, method, path string, body, out any) (int, error) {
	return call(ctx, method, s.apiURL+path, s.token, body, out)
}

func (s *stack) simCall(ctx context.Context, method, path string, body, out any) (int, error) {
	return call(ctx, method, s.simURL+path, "", body, out)
}
