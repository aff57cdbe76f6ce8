package main

import (
	"context"
	"io"

	"github.com/garo-run/garo/internal/devstack"
	"github.com/garo-run/garo/internal/envflag"
	"github.com/garo-run/garo/workflows"
)

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
		hbEvery      = fs.Duration("heartbeat-interval", workflows.DefaultHeartbeatInterval, "how often the agent sends a heartbeat")
		offline      = fs.Duration("offline-after", workflows.DefaultOfflineAfter, "an agent without a heartbeat for this long is offline")
	)
	var externals declarations
	fs.Var(&externals, "external-provider", "declares a GARM external provider for the dev agent, NAME=EXECUTABLE[,config=FILE][,env=PREFIX:PREFIX] (repeatable); its instances reach the agent on loopback")
	externalsFile := fs.String("external-providers-file", "", "a file of external provider declarations, one per line (# comments)")
	ghf.register(fs)
	lf.register(fs)
	if err := envflag.Parse(fs, "GARO", args, getenv); err != nil {
		return err
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	if *externalsFile != "" {
		if err := externals.readFile(*externalsFile); err != nil {
			return err
		}
	}
	gh, err := ghf.client(getenv, nil)
	if err != nil {
		return err
	}
	return devstack.Run(ctx, devstack.Config{
		GitHub: gh, GitHubSimBin: *simBin, GitHubSimPort: *simPort, NoDemo: *noDemo, ExternalProviders: externals,
		StateDir: *stateDir, APIPort: *apiPort, TemporalPort: *temporalPort, UIPort: *uiPort,
		TemporalBin: *temporalBin, AgentName: *agentName,
		HeartbeatInterval: *hbEvery, OfflineAfter: *offline,
		Version: versionString(), Logger: log, Out: stdout,
	})
}
