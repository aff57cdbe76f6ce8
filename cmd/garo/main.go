// Command garo is the single binary of Garo, the GitHub Actions runner
// orchestrator: garo server, garo agent, garo dev and garo version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/garo-run/garo/activities/github"
	"github.com/garo-run/garo/activities/provider"
	"github.com/garo-run/garo/activities/provider/process"
	"github.com/garo-run/garo/internal/agent"
	"github.com/garo-run/garo/internal/devstack"
	"github.com/garo-run/garo/internal/envflag"
	"github.com/garo-run/garo/internal/server"
	"github.com/garo-run/garo/internal/temporalclient"
	"github.com/garo-run/garo/workflows"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

const usage = `garo orchestrates GitHub Actions self-hosted runners on Temporal.

Usage:
  garo server [flags]            the REST API, webhook and control-plane worker
  garo agent --name NAME [flags] an agent: registers, heartbeats, runs its worker
  garo dev [flags]               the whole stack on this machine (Temporal dev server, server, agent)
  garo version                   print the version
  garo repo|agent|runners|jobs   operator commands on the REST API (garo repo -h)

Every flag can also be set from the environment: --temporal-address is
GARO_TEMPORAL_ADDRESS. Run "garo COMMAND -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "server":
		err = runServer(ctx, args[1:], stderr, getenv)
	case "agent":
		if len(args) > 1 && (args[1] == "list" || args[1] == "get" || args[1] == "delete" || args[1] == "create") {
			err = runCLI(ctx, args, stdout, stderr, getenv)
			break
		}
		err = runAgent(ctx, args[1:], stderr, getenv)
	case "dev":
		err = runDev(ctx, args[1:], stdout, stderr, getenv)
	case "repo", "runners", "jobs":
		err = runCLI(ctx, args, stdout, stderr, getenv)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "garo", versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "garo: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "garo:", err)
		return 1
	}
	return 0
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// logFlags are the logging flags every long-running command has.
type logFlags struct {
	level  string
	format string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&l.format, "log-format", "text", "log format: text or json")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", l.format)
}

// secret returns the content of file, or else the value of the environment
// variable env. Secrets are never taken from flags, which show in process
// listings.
func secret(file, env string, getenv func(string) string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read secret: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return getenv(env), nil
}

// githubFlags select GitHub and the agent's credentials for it.
type githubFlags struct {
	url            string
	appID          int64
	installationID int64
	keyFile        string
	tokenFile      string
}

func (g *githubFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.url, "github-url", "", "base URL of a GitHub Enterprise Server (default github.com)")
	fs.Int64Var(&g.appID, "github-app-id", 0, "GitHub App id (App auth, preferred)")
	fs.Int64Var(&g.installationID, "github-installation-id", 0, "GitHub App installation id")
	fs.StringVar(&g.keyFile, "github-private-key-file", "", "GitHub App private key PEM file")
	fs.StringVar(&g.tokenFile, "github-token-file", "", "file holding a GitHub token, instead of an App (or set GARO_GITHUB_TOKEN)")
}

// client returns the GitHub client the flags describe, or nil when no
// credentials are configured.
func (g *githubFlags) client(getenv func(string) string, reg prometheus.Registerer) (*github.Client, error) {
	token, err := secret(g.tokenFile, "GARO_GITHUB_TOKEN", getenv)
	if err != nil {
		return nil, err
	}
	cfg := github.Config{URL: g.url, Token: token, AppID: g.appID, InstallationID: g.installationID, Registerer: reg}
	if g.keyFile != "" {
		if cfg.PrivateKeyPEM, err = os.ReadFile(g.keyFile); err != nil {
			return nil, fmt.Errorf("read GitHub App key: %w", err)
		}
	}
	if cfg.Token == "" && cfg.AppID == 0 {
		return nil, nil
	}
	return github.New(cfg)
}

// lines splits s into its non-empty, trimmed lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("garo "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func runServer(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	fs := newFlagSet("server", stderr)
	var (
		lf        logFlags
		topts     temporalclient.Options
		listen    = fs.String("listen", ":8080", "address of the REST API and webhook")
		tokenFile = fs.String("admin-token-file", "", "file holding the admin bearer token (or set GARO_ADMIN_TOKEN)")
		whFile    = fs.String("webhook-secret-file", "", "file of GitHub webhook secrets, one a line, all accepted (or set GARO_WEBHOOK_SECRET)")
		hbEvery   = fs.Duration("heartbeat-interval", workflows.DefaultHeartbeatInterval, "how often agents send a heartbeat")
		offline   = fs.Duration("offline-after", workflows.DefaultOfflineAfter, "an agent without a heartbeat for this long is offline")
	)
	lf.register(fs)
	topts.Register(fs)
	if err := envflag.Parse(fs, "GARO", args, getenv); err != nil {
		return err
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	topts.APIKey = getenv("GARO_TEMPORAL_API_KEY")
	token, err := secret(*tokenFile, "GARO_ADMIN_TOKEN", getenv)
	if err != nil {
		return err
	}
	whSecrets, err := secret(*whFile, "GARO_WEBHOOK_SECRET", getenv)
	if err != nil {
		return err
	}
	return server.Run(ctx, server.Config{
		Listen: *listen, Temporal: topts, AdminToken: token, WebhookSecrets: lines(whSecrets),
		HeartbeatInterval: *hbEvery, OfflineAfter: *offline,
		Version: versionString(), Logger: log,
	})
}

func runAgent(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	fs := newFlagSet("agent", stderr)
	var (
		lf        logFlags
		topts     temporalclient.Options
		ghf       githubFlags
		labels    envflag.StringList
		name      = fs.String("name", "", "this agent's name (required): lower-case letters, digits and hyphens")
		serverURL = fs.String("server", "http://localhost:8080", "URL of garo server")
		tokenFile = fs.String("token-file", "", "file holding this agent's bearer token (or set GARO_TOKEN)")
		stateDir  = fs.String("state-dir", "", "directory for the agent's state (the process provider's instance records)")
		cfgPoll   = fs.Duration("config-poll-interval", 30*time.Second, "how often to ask the server for this agent's configuration")
		metrics   = fs.String("metrics-listen", "", "serve Prometheus metrics (GitHub requests by route and status) at this address, e.g. 127.0.0.1:9464; off by default")
		procCmd   = fs.String("process-command", "", "enables the process provider: the runner command, split on spaces, each part a template over {{.Name}} and {{.Tags}} (e.g. \"/opt/actions-runner/run.sh\")")
	)
	fs.Var(&labels, "labels", "comma-separated labels this agent reports")
	ghf.register(fs)
	lf.register(fs)
	topts.Register(fs)
	if err := envflag.Parse(fs, "GARO", args, getenv); err != nil {
		return err
	}
	if *name == "" {
		fs.Usage()
		return errors.New("--name is required")
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	topts.APIKey = getenv("GARO_TEMPORAL_API_KEY")
	token, err := secret(*tokenFile, "GARO_TOKEN", getenv)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	gh, err := ghf.client(getenv, reg)
	if err != nil {
		return err
	}
	var providers []provider.Provider
	if *procCmd != "" {
		if *stateDir == "" {
			return errors.New("--process-command needs --state-dir")
		}
		p, err := process.New(process.Config{StateDir: filepath.Join(*stateDir, "process"),
			Command: strings.Fields(*procCmd), Logger: log.With("provider", process.Kind)})
		if err != nil {
			return err
		}
		providers = append(providers, p)
	}
	return agent.Run(ctx, agent.Config{
		Name: *name, ServerURL: *serverURL, Token: token, Temporal: topts, GitHub: gh,
		MetricsListen: *metrics, Registry: reg, ConfigPollInterval: *cfgPoll,
		Labels: labels, Providers: providers, Version: versionString(), Logger: log,
	})
}

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newFlagSet("dev", stderr)
	var (
		lf           logFlags
		stateDir     = fs.String("state-dir", ".garo", "directory for all state of the dev stack")
		apiPort      = fs.Int("api-port", 8080, "port of the REST API (on 127.0.0.1)")
		temporalPort = fs.Int("temporal-port", 7233, "port of the Temporal frontend (on 127.0.0.1)")
		uiPort       = fs.Int("ui-port", 8233, "port of the Temporal Web UI (on 127.0.0.1)")
		temporalBin  = fs.String("temporal-bin", "", "temporal CLI binary (default ./bin/temporal, then $PATH)")
		simBin       = fs.String("githubsim-bin", "", "GitHub simulator binary, used without GitHub credentials (default ./bin/githubsim, then $PATH)")
		simPort      = fs.Int("githubsim-port", 9980, "port of the GitHub simulator (on 127.0.0.1)")
		noDemo       = fs.Bool("no-demo", false, "with the simulator, do not seed the demo pool demo/hello and its jobs")
		ghf          githubFlags
		agentName    = fs.String("agent-name", "local", "name of the dev agent")
		hbEvery      = fs.Duration("heartbeat-interval", 5*time.Second, "how often the agent sends a heartbeat")
		offline      = fs.Duration("offline-after", 20*time.Second, "an agent without a heartbeat for this long is offline")
	)
	ghf.register(fs)
	lf.register(fs)
	if err := envflag.Parse(fs, "GARO", args, getenv); err != nil {
		return err
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	gh, err := ghf.client(getenv, nil)
	if err != nil {
		return err
	}
	return devstack.Run(ctx, devstack.Config{
		GitHub: gh, GitHubSimBin: *simBin, GitHubSimPort: *simPort, NoDemo: *noDemo,
		StateDir: *stateDir, APIPort: *apiPort, TemporalPort: *temporalPort, UIPort: *uiPort,
		TemporalBin: *temporalBin, AgentName: *agentName,
		HeartbeatInterval: *hbEvery, OfflineAfter: *offline,
		Version: versionString(), Logger: log, Out: stdout,
	})
}
