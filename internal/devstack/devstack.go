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
	"syscall"
	"time"

	"github.com/garo-run/garo/activities/github"
	"github.com/garo-run/garo/activities/provider"
	"github.com/garo-run/garo/activities/provider/external"
	"github.com/garo-run/garo/activities/provider/process"
	"github.com/garo-run/garo/activities/provider/sim"
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
	NoDemo bool
	// ExternalProviders declares GARM external providers for the agent,
	// as garo agent --external-provider does; their instances reach the
	// agent's instance listener on loopback.
	ExternalProviders []string
	AgentName         string
	// CORSOrigins may call the API from a browser.
	CORSOrigins []string
	// Prices prices the runner-hours of pools without an hourlyPrice.
	Prices            []workflows.ProviderPrice
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
// the server, the simulator and Temporal, in that order.
func Run(ctx context.Context, cfg Config) error {
	s := &stack{cfg: cfg, log: cfg.Logger, errs: make(chan error, 3)}
	defer s.stop()
	if err := s.start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting
		}
		return err
	}
	return s.serve(ctx)
}

// stack is a dev stack: what start brings up, serve watches and stop
// takes down.
type stack struct {
	cfg   Config
	log   *slog.Logger
	token string
	// temporal and the GitHub simulator (sim, when no credentials are
	// configured) are child processes.
	temporal, sim  *childProcess
	simURL, apiURL string
	webhookSecrets []string
	gh             *github.Client
	providers      []provider.Provider
	topts          temporalclient.Options
	// errs receives the end of the server and the agent.
	errs chan error
	// stops undo what start did; stop runs them last first.
	stops []func()
}

func (s *stack) onStop(f func()) { s.stops = append(s.stops, f) }

// stop takes down whatever start brought up, in reverse order: agent,
// server, simulator, Temporal.
func (s *stack) stop() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
	s.stops = nil
}

// start brings the stack up, one step after another.
func (s *stack) start(ctx context.Context) error {
	if err := os.MkdirAll(s.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	token, err := secretFile(filepath.Join(s.cfg.StateDir, "admin-token"), "garo_")
	if err != nil {
		return err
	}
	s.token = token
	s.topts = temporalclient.Options{Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cfg.TemporalPort)), Namespace: Namespace}
	for _, step := range []func(context.Context) error{s.startTemporal, s.startGitHub, s.startExternal, s.waitTemporal,
		s.startServer, s.writeInfo, s.startAgent} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	s.printSummary()
	if s.simURL != "" && !s.cfg.NoDemo {
		demoCtx, stopDemo := context.WithCancel(context.Background())
		s.onStop(stopDemo)
		go runDemo(demoCtx, s.apiURL, s.token, s.simURL, s.cfg.AgentName, s.log.With("component", "demo"))
	}
	return nil
}

// serve runs until ctx ends, a component fails or Temporal exits.
func (s *stack) serve(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
	case e := <-s.errs:
		if !errors.Is(e, errStopped) {
			err = e
		}
	case <-s.temporal.exited:
		err = fmt.Errorf("temporal dev server exited (see %s)", s.temporal.logPath)
	}
	s.log.Info("Stopping dev stack")
	return err
}

// SQLitePragmas are the dev server's SQLite settings. Write-ahead logging
// lets readers (the Web UI, visibility) work beside the writer, and a
// commit appends to the log instead of rewriting pages through a rollback
// journal; synchronous=normal then syncs the log at checkpoints rather
// than at every commit. What that trades: every commit Temporal
// acknowledges (a signal, a started workflow) survives the dev server's
// crash or kill, but the last commits before a power loss or a kernel
// crash may be rolled back, never corrupted. The defaults (a rollback
// journal, synchronous=full) pay two or more fsyncs a commit for that.
var SQLitePragmas = []string{"journal_mode=wal", "synchronous=normal"}

func (s *stack) startTemporal(context.Context) error {
	bin, err := findTool(s.cfg.TemporalBin, "temporal")
	if err != nil {
		return err
	}
	args := []string{"server", "start-dev",
		"--ip", "127.0.0.1",
		"--port", strconv.Itoa(s.cfg.TemporalPort),
		"--ui-port", strconv.Itoa(s.cfg.UIPort),
		"--db-filename", filepath.Join(s.cfg.StateDir, "temporal.db"),
		"--namespace", Namespace,
		"--log-level", "error",
	}
	for _, a := range workflows.SearchAttributes() {
		args = append(args, "--search-attribute", a.Name+"="+a.TypeName())
	}
	for _, p := range SQLitePragmas {
		args = append(args, "--sqlite-pragma", p)
	}
	if s.temporal, err = startChild("temporal", bin, args, nil, filepath.Join(s.cfg.StateDir, "temporal.log"), s.log); err != nil {
		return err
	}
	s.onStop(func() { s.temporal.stop(s.log) })
	return nil
}

// startGitHub uses the configured GitHub, or else starts the simulator and
// points the agent's GitHub client and process provider at it.
func (s *stack) startGitHub(ctx context.Context) error {
	if s.gh = s.cfg.GitHub; s.gh != nil {
		return nil
	}
	secret, err := secretFile(filepath.Join(s.cfg.StateDir, "webhook-secret"), "whsec_")
	if err != nil {
		return err
	}
	s.webhookSecrets = []string{secret}
	simBin, err := findTool(s.cfg.GitHubSimBin, "githubsim")
	if err != nil {
		return err
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cfg.GitHubSimPort))
	apiAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cfg.APIPort))
	s.simURL = "http://" + listen
	s.sim, err = startChild("githubsim", simBin, []string{"--listen", listen,
		"--webhook-url", "http://" + apiAddr + "/webhooks/github", "--seed", "1",
	}, []string{"GITHUBSIM_WEBHOOK_SECRET=" + secret}, filepath.Join(s.cfg.StateDir, "githubsim.log"), s.log)
	if err != nil {
		return err
	}
	s.onStop(func() { s.sim.stop(s.log) })
	if err := waitHTTP(ctx, s.simURL+"/_sim/stats", time.Minute, s.sim.failure()); err != nil {
		return fmt.Errorf("GitHub simulator did not come up (see %s): %w", s.sim.logPath, err)
	}
	if s.gh, err = github.New(github.Config{URL: s.simURL, Token: "garo-dev"}); err != nil {
		return err
	}
	p, err := process.New(process.Config{StateDir: filepath.Join(s.cfg.StateDir, "agent", "process"),
		Command: []string{simBin, "runner"}, Logger: s.log.With("component", "agent", "provider", process.Kind)})
	if err != nil {
		return err
	}
	// And runners the simulator hosts, with no process each.
	s.providers = append(s.providers, p, sim.New(s.simURL))
	s.log.Info("GitHub simulator up", "url", s.simURL, "log", s.sim.logPath)
	return nil
}

// startExternal declares the external providers, with the instance
// listener on loopback.
func (s *stack) startExternal(context.Context) error {
	if len(s.cfg.ExternalProviders) == 0 {
		return nil
	}
	ctx, stop := context.WithCancel(context.Background())
	s.onStop(stop)
	p, err := external.Start(ctx, external.Setup{Declarations: s.cfg.ExternalProviders,
		StateDir: filepath.Join(s.cfg.StateDir, "agent"), Agent: s.cfg.AgentName, Listen: "127.0.0.1:0",
		GitHub: s.gh, Logger: s.log.With("component", "agent")})
	if err != nil {
		return err
	}
	s.providers = append(s.providers, p)
	return nil
}

// waitTemporal waits until the Temporal dev server answers.
func (s *stack) waitTemporal(ctx context.Context) error {
	copts, err := s.topts.ClientOptions("garo-dev", s.log)
	if err != nil {
		return err
	}
	dialCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	c, err := temporalclient.Dial(dialCtx, copts, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("temporal dev server did not come up (see %s): %w", s.temporal.logPath, err)
	}
	c.Close()
	s.log.Info("Temporal dev server up", "address", s.topts.Address, "ui", s.uiURL(), "log", s.temporal.logPath)
	return nil
}

func (s *stack) uiURL() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cfg.UIPort))
}

// startServer runs garo server in this process and waits until it is
// ready.
func (s *stack) startServer(ctx context.Context) error {
	serverCtx, stopServer := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.onStop(func() {
		stopServer()
		<-done
	})
	listening := make(chan string, 1)
	go func() {
		defer close(done)
		err := server.Run(serverCtx, server.Config{
			Listen:            net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cfg.APIPort)),
			Temporal:          s.topts,
			AdminToken:        s.token,
			WebhookSecrets:    s.webhookSecrets,
			HeartbeatInterval: s.cfg.HeartbeatInterval,
			OfflineAfter:      s.cfg.OfflineAfter,
			CORSOrigins:       s.cfg.CORSOrigins,
			Prices:            s.cfg.Prices,
			TemporalUI:        "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cfg.UIPort)),
			Version:           s.cfg.Version,
			Logger:            s.log.With("component", "server"),
			Listening:         func(addr string) { listening <- addr },
		})
		s.errs <- fmt.Errorf("server: %w", errOrStopped(err))
	}()
	select {
	case addr := <-listening:
		s.apiURL = "http://" + addr
	case err := <-s.errs:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
	return waitHTTP(ctx, s.apiURL+"/readyz", 90*time.Second, s.errs)
}

// info is what dev.json tells tools and tests.
func (s *stack) info() Info {
	return Info{API: s.apiURL, UI: s.uiURL(), Temporal: s.topts.Address, GitHubSim: s.simURL, Namespace: Namespace,
		AdminToken: s.token, Agent: s.cfg.AgentName, PID: os.Getpid()}
}

func (s *stack) infoPath() string { return filepath.Join(s.cfg.StateDir, "dev.json") }

// writeInfo writes dev.json; it is removed when the stack stops.
func (s *stack) writeInfo(context.Context) error {
	if err := writeJSONFile(s.infoPath(), s.info()); err != nil {
		return err
	}
	s.onStop(func() { os.Remove(s.infoPath()) })
	return nil
}

// startAgent runs the agent in this process.
func (s *stack) startAgent(context.Context) error {
	agentCtx, stopAgent := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.onStop(func() {
		stopAgent()
		<-done
	})
	go func() {
		defer close(done)
		err := agent.Run(agentCtx, agent.Config{
			Name:      s.cfg.AgentName,
			ServerURL: s.apiURL,
			Token:     s.token,
			Temporal:  s.topts,
			GitHub:    s.gh,
			Providers: s.providers,
			Version:   s.cfg.Version,
			Logger:    s.log.With("component", "agent"),
		})
		s.errs <- fmt.Errorf("agent: %w", errOrStopped(err))
	}()
	return nil
}

// printSummary tells the user where everything is.
func (s *stack) printSummary() {
	tokenPath := filepath.Join(s.cfg.StateDir, "admin-token")
	fmt.Fprintf(s.cfg.Out, `
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

`, s.apiURL, s.token, tokenPath, s.uiURL(), s.topts.Address, Namespace, githubLine(s.simURL), s.cfg.AgentName,
		s.infoPath(), tokenPath, s.apiURL, s.cfg.StateDir)
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

// DemoHourlyPrice is what a runner-hour of the demo pool costs, so that
// its usage shows a cost (a small cloud machine's price).
const DemoHourlyPrice = 0.10

// Demo is the repository of the demo pool that garo dev seeds with the
// simulator: a new user sees runners come and go in the Web UI.
const Demo = "demo/hello"

// runDemo configures the demo pool once the agent is online, then queues a
// job of a few seconds in the simulator every 20 seconds until ctx ends.
func runDemo(ctx context.Context, apiURL, token, simURL, agentName string, log *slog.Logger) {
	api := apiclient.New(apiURL, token)
	cfg := workflows.DefaultPoolConfig()
	cfg.Agent, cfg.MinIdle, cfg.MaxRunners, cfg.IdleGracePeriod = agentName, 1, 3, workflows.Duration(time.Minute)
	cfg.HourlyPrice = DemoHourlyPrice
	for {
		st, err := api.GetAgent(ctx, agentName)
		if err == nil && st.Status == workflows.AgentOnline {
			if _, err = api.ConfigurePool(ctx, "demo", "hello", workflows.DefaultPool, cfg); err == nil {
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
