// Package devstack runs the whole of Garo on a laptop: a Temporal dev server
// with its Web UI (a child process of the temporal CLI), garo server and one
// agent, all state kept under one directory so that a restart continues
// where it stopped.
package devstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/garo-run/garo/activities/github"
	"github.com/garo-run/garo/activities/provider"
	"github.com/garo-run/garo/activities/provider/process"
	"github.com/garo-run/garo/api/apiclient"
	"github.com/garo-run/garo/internal/agent"
	"github.com/garo-run/garo/internal/server"
	"github.com/garo-run/garo/internal/temporalclient"
	"github.com/garo-run/garo/workflows"
)

// Config is the configuration of a dev stack.
type Config struct {
	StateDir     string
	APIPort      int
	TemporalPort int
	UIPort       int
	// TemporalBin is the temporal CLI; empty means ./bin/temporal, then
	// $PATH.
	TemporalBin string
	// GitHubSimBin is the githubsim binary; empty means ./bin/githubsim,
	// then $PATH. It is used when GitHub is nil.
	GitHubSimBin  string
	GitHubSimPort int
	// GitHub is the agent's GitHub client when credentials are
	// configured; nil runs the GitHub simulator instead.
	GitHub *github.Client
	// NoDemo leaves out the demo pool (demo/hello) and its jobs.
	NoDemo            bool
	AgentName         string
	HeartbeatInterval time.Duration
	OfflineAfter      time.Duration
	Version           string
	Logger            *slog.Logger
	// Out receives the human summary (URLs, token).
	Out io.Writer
}

// Info is what dev.json holds: where tools and tests find the stack.
type Info struct {
	API        string `json:"api"`
	UI         string `json:"ui"`
	Temporal   string `json:"temporal"`
	GitHubSim  string `json:"githubsim,omitempty"`
	Namespace  string `json:"namespace"`
	AdminToken string `json:"adminToken"`
	Agent      string `json:"agent"`
	PID        int    `json:"pid"`
}

// Namespace is the Temporal namespace of the dev stack.
const Namespace = "default"

// Run starts the stack and runs it until ctx ends, then stops the agent,
// the server and Temporal, in that order.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	token, err := secretFile(filepath.Join(cfg.StateDir, "admin-token"), "garo_")
	if err != nil {
		return err
	}
	bin, err := findTool(cfg.TemporalBin, "temporal")
	if err != nil {
		return err
	}

	temporalAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.TemporalPort))
	tmp, err := startTemporal(bin, cfg, log)
	if err != nil {
		return err
	}
	defer tmp.stop(log)
	uiURL := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.UIPort))
	apiAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.APIPort))

	// Without GitHub credentials, the simulator stands in for GitHub.
	var webhookSecrets []string
	var simURL string
	gh := cfg.GitHub
	var providers []provider.Provider
	if gh == nil {
		secret, err := secretFile(filepath.Join(cfg.StateDir, "webhook-secret"), "whsec_")
		if err != nil {
			return err
		}
		webhookSecrets = []string{secret}
		simBin, err := findTool(cfg.GitHubSimBin, "githubsim")
		if err != nil {
			return err
		}
		simURL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.GitHubSimPort))
		sim, err := startChild("githubsim", simBin, []string{
			"--listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.GitHubSimPort)),
			"--webhook-url", "http://" + apiAddr + "/webhooks/github", "--seed", "1",
		}, []string{"GITHUBSIM_WEBHOOK_SECRET=" + secret}, filepath.Join(cfg.StateDir, "githubsim.log"), log)
		if err != nil {
			return err
		}
		defer sim.stop(log)
		if err := waitHTTP(ctx, simURL+"/_sim/stats", time.Minute, sim.failure()); err != nil {
			return fmt.Errorf("GitHub simulator did not come up (see %s): %w", sim.logPath, err)
		}
		if gh, err = github.New(github.Config{URL: simURL, Token: "garo-dev"}); err != nil {
			return err
		}
		p, err := process.New(process.Config{StateDir: filepath.Join(cfg.StateDir, "agent", "process"),
			Command: []string{simBin, "runner"}, Logger: log.With("component", "agent", "provider", process.Kind)})
		if err != nil {
			return err
		}
		providers = append(providers, p)
		log.Info("GitHub simulator up", "url", simURL, "log", sim.logPath)
	}

	topts := temporalclient.Options{Address: temporalAddr, Namespace: Namespace}
	copts, err := topts.ClientOptions("garo-dev", log)
	if err != nil {
		return err
	}
	dialCtx, cancelDial := context.WithTimeout(ctx, 90*time.Second)
	c, err := temporalclient.Dial(dialCtx, copts, slog.New(slog.DiscardHandler))
	cancelDial()
	if err != nil && ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("temporal dev server did not come up (see %s): %w", tmp.logPath, err)
	}
	c.Close()
	log.Info("Temporal dev server up", "address", temporalAddr, "ui", uiURL, "log", tmp.logPath)

	// Components stop in reverse order: agent, then server.
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	serverCtx, stopServer := context.WithCancel(context.Background())
	defer stopServer()
	listening := make(chan string, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := server.Run(serverCtx, server.Config{
			Listen:            apiAddr,
			Temporal:          topts,
			AdminToken:        token,
			WebhookSecrets:    webhookSecrets,
			HeartbeatInterval: cfg.HeartbeatInterval,
			OfflineAfter:      cfg.OfflineAfter,
			Version:           cfg.Version,
			Logger:            log.With("component", "server"),
			Listening:         func(addr string) { listening <- addr },
		})
		errs <- fmt.Errorf("server: %w", errOrStopped(err))
	}()
	var apiURL string
	select {
	case addr := <-listening:
		apiURL = "http://" + addr
	case err := <-errs:
		return err
	case <-ctx.Done():
		stopServer()
		wg.Wait()
		return nil
	}
	if err := waitHTTP(ctx, apiURL+"/readyz", 90*time.Second, errs); err != nil {
		stopServer()
		wg.Wait()
		return err
	}

	info := Info{API: apiURL, UI: uiURL, Temporal: temporalAddr, GitHubSim: simURL, Namespace: Namespace,
		AdminToken: token, Agent: cfg.AgentName, PID: os.Getpid()}
	infoPath := filepath.Join(cfg.StateDir, "dev.json")
	if err := writeJSONFile(infoPath, info); err != nil {
		stopServer()
		wg.Wait()
		return err
	}
	defer os.Remove(infoPath)

	agentCtx, stopAgent := context.WithCancel(context.Background())
	defer stopAgent()
	var agentWG sync.WaitGroup
	agentWG.Add(1)
	go func() {
		defer agentWG.Done()
		err := agent.Run(agentCtx, agent.Config{
			Name:      cfg.AgentName,
			ServerURL: apiURL,
			Token:     token,
			Temporal:  topts,
			GitHub:    gh,
			Providers: providers,
			Version:   cfg.Version,
			Logger:    log.With("component", "agent"),
		})
		errs <- fmt.Errorf("agent: %w", errOrStopped(err))
	}()

	fmt.Fprintf(cfg.Out, `
Garo dev stack is up.
  API          %s
  Admin token  %s   (also in %s)
  Temporal UI  %s
  Temporal     %s   namespace %s
  GitHub       %s
  Agent        %s
  dev.json     %s
Try:  curl -H "Authorization: Bearer $(cat %s)" %s/api/v1/agents
Ctrl-C stops everything; state stays in %s.

`, apiURL, token, filepath.Join(cfg.StateDir, "admin-token"), uiURL, temporalAddr, Namespace, githubLine(simURL), cfg.AgentName,
		infoPath, filepath.Join(cfg.StateDir, "admin-token"), apiURL, cfg.StateDir)

	if simURL != "" && !cfg.NoDemo {
		go runDemo(agentCtx, apiURL, token, simURL, cfg.AgentName, log.With("component", "demo"))
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-errs:
		if !errors.Is(err, errStopped) {
			runErr = err
		}
	case <-tmp.exited:
		runErr = fmt.Errorf("temporal dev server exited (see %s)", tmp.logPath)
	}
	log.Info("Stopping dev stack")
	stopAgent()
	agentWG.Wait()
	stopServer()
	wg.Wait()
	return runErr
}

var errStopped = errors.New("stopped")

func errOrStopped(err error) error {
	if err == nil {
		return errStopped
	}
	return err
}

func githubLine(simURL string) string {
	if simURL == "" {
		return "as configured"
	}
	return simURL + "   (simulator; control API at /_sim/)"
}

// secretFile reads a secret kept in path, creating a random one (with the
// given prefix, mode 0600) on first use.
func secretFile(path, prefix string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	t := prefix + hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return t, nil
}

// findTool returns bin, or else ./bin/NAME, or else NAME on $PATH.
func findTool(bin, name string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	if _, err := os.Stat(filepath.Join("bin", name)); err == nil {
		return filepath.Abs(filepath.Join("bin", name))
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found in ./bin or $PATH: run `make tools build` (or pass --%s-bin)", name, name)
}

// childProcess is a tool the dev stack runs: the Temporal dev server or
// the GitHub simulator.
type childProcess struct {
	name    string
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

func startTemporal(bin string, cfg Config, log *slog.Logger) (*childProcess, error) {
	args := []string{"server", "start-dev",
		"--ip", "127.0.0.1",
		"--port", strconv.Itoa(cfg.TemporalPort),
		"--ui-port", strconv.Itoa(cfg.UIPort),
		"--db-filename", filepath.Join(cfg.StateDir, "temporal.db"),
		"--namespace", Namespace,
		"--log-level", "error",
	}
	for _, k := range workflows.SearchAttributeKeys() {
		args = append(args, "--search-attribute", k.GetName()+"=Keyword")
	}
	return startChild("temporal", bin, args, nil, filepath.Join(cfg.StateDir, "temporal.log"), log)
}

// startChild starts bin with its output appended to logPath.
func startChild(name, bin string, args, env []string, logPath string, log *slog.Logger) (*childProcess, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = childAttrs()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	log.Info("Started "+name, "pid", cmd.Process.Pid, "bin", bin)
	p := &childProcess{name: name, cmd: cmd, exited: make(chan struct{}), logPath: logPath}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	return p, nil
}

// stop ends the child: SIGTERM, then SIGKILL after 15 s.
func (p *childProcess) stop(log *slog.Logger) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		log.Warn(p.name + " did not stop; killing it")
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// failure yields an error once the child exits.
func (p *childProcess) failure() <-chan error {
	ch := make(chan error, 1)
	go func() {
		<-p.exited
		ch <- fmt.Errorf("%s exited", p.name)
	}()
	return ch
}

// waitHTTP polls url until it answers 200; it gives up when stop yields
// an error (what it waits for failed), ctx ends, or limit passes.
func waitHTTP(ctx context.Context, url string, limit time.Duration, stop <-chan error) error {
	deadline := time.After(limit)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-stop:
			return err
		case <-deadline:
			return fmt.Errorf("no answer at %s after %s", url, limit)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// Demo is the repository of the demo pool that garo dev seeds with the
// simulator: a new user sees runners come and go in the Web UI.
const Demo = "demo/hello"

// runDemo configures the demo pool once the agent is online, then queues a
// job of a few seconds in the simulator every 20 seconds until ctx ends.
func runDemo(ctx context.Context, apiURL, token, simURL, agentName string, log *slog.Logger) {
	api := apiclient.New(apiURL, token)
	minIdle, maxRunners, grace := 1, 3, workflows.Duration(time.Minute)
	req := workflows.PoolConfigRequest{Agent: &agentName, MinIdle: &minIdle, MaxRunners: &maxRunners, IdleGracePeriod: &grace}
	for {
		st, err := api.GetAgent(ctx, agentName)
		if err == nil && st.Status == workflows.AgentOnline {
			if _, err = api.ConfigurePool(ctx, "demo", "hello", req); err == nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	log.Info("Demo pool configured; queueing a job every 20s (--no-demo turns it off)", "repository", Demo)
	body := `{"repo":"` + Demo + `","labels":["self-hosted","linux"],"durationMs":5000,"count":1,"name":"demo"}`
	t := time.NewTicker(20 * time.Second)
	defer t.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, simURL+"/_sim/jobs", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		} else if ctx.Err() == nil {
			log.Warn("Demo job not queued", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
