package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/garo-run/garo/activities/github"
	"github.com/garo-run/garo/activities/provider"
	"github.com/garo-run/garo/activities/provider/ec2"
	"github.com/garo-run/garo/activities/provider/external"
	"github.com/garo-run/garo/activities/provider/process"
	"github.com/garo-run/garo/activities/provider/sim"
	"github.com/garo-run/garo/internal/agent"
	"github.com/garo-run/garo/internal/envflag"
	"github.com/garo-run/garo/internal/temporalclient"
	"github.com/prometheus/client_golang/prometheus"
)

// secretEnv are the variables that may hold a secret of the agent's; it
// removes them from its environment once it has read them.
var secretEnv = []string{"GARO_TOKEN", "GARO_GITHUB_TOKEN", "GARO_TEMPORAL_API_KEY", "GARO_ADMIN_TOKEN", "GARO_WEBHOOK_SECRET",
	"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}

func runAgent(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	fs := newFlagSet("agent", stderr)
	var (
		lf        logFlags
		topts     temporalclient.Options
		ghf       githubFlags
		pf        providerFlags
		labels    envflag.StringList
		name      = fs.String("name", "", "this agent's name (required): lower-case letters, digits and hyphens")
		serverURL = fs.String("server", "http://localhost:8080", "URL of garo server")
		tokenFile = fs.String("token-file", "", "file holding this agent's bearer token (or set GARO_TOKEN)")
		cfgPoll   = fs.Duration("config-poll-interval", 30*time.Second, "how often to ask the server for this agent's configuration")
		metrics   = fs.String("metrics-listen", "", "serve Prometheus metrics (GitHub requests by route and status) at this address, e.g. 127.0.0.1:9464; off by default")
	)
	fs.Var(&labels, "labels", "comma-separated labels this agent reports")
	pf.register(fs)
	ghf.register(fs)
	lf.register(fs)
	topts.Register(fs)
	if err := envflag.Parse(fs, "GARO", args, getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("garo agent runs an agent and takes no argument %q; the operator commands are garo agents list|get|create|delete", fs.Arg(0))
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
	providers, err := pf.providers(ctx, *name, gh, log)
	if err != nil {
		return err
	}
	// Its secrets are read: nothing this process starts inherits them.
	for _, k := range secretEnv {
		_ = os.Unsetenv(k)
	}
	return agent.Run(ctx, agent.Config{
		Name: *name, ServerURL: *serverURL, Token: token, Temporal: topts, GitHub: gh,
		MetricsListen: *metrics, Registry: reg, ConfigPollInterval: *cfgPoll,
		Labels: labels, Providers: providers, Version: versionString(), Logger: log,
	})
}

// providerFlags are the agent's flags of its providers.
type providerFlags struct {
	stateDir, procCmd, ec2Endpoint     *string
	externalsFile, listen, instanceURL *string
	simURL                             *string
	passEnv, ec2Regions                envflag.StringList
	externals                          declarations
}

func (pf *providerFlags) register(fs *flag.FlagSet) {
	pf.stateDir = fs.String("state-dir", "", "directory for the agent's state (the process and external providers' instance records)")
	pf.procCmd = fs.String("process-command", "", "enables the process provider: the runner command, split on spaces, each part a template over {{.Name}} and {{.Tags}} (e.g. \"/opt/actions-runner/run.sh\")")
	fs.Var(&pf.passEnv, "process-pass-env", "comma-separated names of this agent's environment variables its runners get, beyond PATH, HOME, LANG and TMPDIR")
	fs.Var(&pf.ec2Regions, "ec2-region", "enables the ec2 provider in these regions (comma-separated; a pool picks one with its region option, the first by default); credentials come from the standard AWS chain")
	pf.ec2Endpoint = fs.String("ec2-endpoint", "", "ec2 provider: EC2's endpoint, when not AWS's own (a VPC endpoint)")
	fs.Var(&pf.externals, "external-provider", "declares a GARM external provider, NAME=EXECUTABLE[,config=FILE][,env=PREFIX:PREFIX] (repeatable); a pool picks it with provider kind external, name NAME; needs --instance-listen and --state-dir")
	pf.externalsFile = fs.String("external-providers-file", "", "a file of external provider declarations, one per line (# comments)")
	pf.listen = fs.String("instance-listen", "", "serve the metadata and callback routes that instances of external providers call, at this address of the agent's own network, e.g. 10.0.0.5:9470; off by default")
	pf.instanceURL = fs.String("instance-url", "", "the URL instances reach --instance-listen at (default http://ADDRESS)")
	pf.simURL = fs.String("sim-provider", "", "enables the sim provider: runners hosted by the GitHub simulator at this URL, no process each (benchmarks)")
}

// providers builds the providers the flags enable.
func (pf *providerFlags) providers(ctx context.Context, name string, gh *github.Client, log *slog.Logger) ([]provider.Provider, error) {
	var out []provider.Provider
	if len(pf.ec2Regions) > 0 {
		p, err := ec2.New(ctx, ec2.Config{Regions: pf.ec2Regions, Endpoint: *pf.ec2Endpoint, Agent: name, Logger: log.With("provider", ec2.Kind)})
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if *pf.externalsFile != "" {
		if err := pf.externals.readFile(*pf.externalsFile); err != nil {
			return nil, err
		}
	}
	if len(pf.externals) > 0 {
		p, err := external.Start(ctx, external.Setup{Declarations: pf.externals, StateDir: *pf.stateDir, Agent: name,
			Listen: *pf.listen, URL: *pf.instanceURL, GitHub: gh, Logger: log})
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if *pf.simURL != "" {
		out = append(out, sim.New(*pf.simURL))
	}
	if *pf.procCmd != "" {
		if *pf.stateDir == "" {
			return nil, errors.New("--process-command needs --state-dir")
		}
		p, err := process.New(process.Config{StateDir: filepath.Join(*pf.stateDir, "process"),
			Command: strings.Fields(*pf.procCmd), PassEnv: pf.passEnv, Logger: log.With("provider", process.Kind)})
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// declarations are the repeatable --external-provider flag: each value
// one declaration (commas belong to it), or several on separate lines.
type declarations []string

func (d *declarations) String() string { return strings.Join(*d, "\n") }

func (d *declarations) Set(v string) error {
	for _, line := range strings.Split(v, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			*d = append(*d, line)
		}
	}
	return nil
}

func (d *declarations) readFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--external-providers-file: %w", err)
	}
	return d.Set(string(b))
}
