package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/garo-run/garo/internal/devcerts"
	"github.com/garo-run/garo/internal/devstack"
	"github.com/garo-run/garo/internal/envflag"
	"github.com/garo-run/garo/workflows"
)

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) > 0 && args[0] == "certs" {
		return runCerts(args[1:], stdout, stderr)
	}
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
	var origins envflag.StringList
	fs.Var(&origins, "cors-origin", "an origin allowed to call the API from a browser (comma-separated or repeated; none by default)")
	fs.Var(&externals, "external-provider", "declares a GARM external provider for the dev agent, NAME=EXECUTABLE[,config=FILE][,env=PREFIX:PREFIX] (repeatable); its instances reach the agent on loopback")
	externalsFile := fs.String("external-providers-file", "", "a file of external provider declarations, one per line (# comments)")
	pricesFile := fs.String("hourly-prices", "", "file of runner-hour prices by provider option, as garo server takes it")
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
	prices, err := readPrices(*pricesFile)
	if err != nil {
		return err
	}
	return devstack.Run(ctx, devstack.Config{
		GitHub: gh, GitHubSimBin: *simBin, GitHubSimPort: *simPort, NoDemo: *noDemo, ExternalProviders: externals,
		StateDir: *stateDir, APIPort: *apiPort, TemporalPort: *temporalPort, UIPort: *uiPort,
		TemporalBin: *temporalBin, AgentName: *agentName,
		HeartbeatInterval: *hbEvery, OfflineAfter: *offline, CORSOrigins: origins, Prices: prices,
		Version: versionString(), Logger: log, Out: stdout,
	})
}

// runCerts writes the certificates of a deployment on Temporal with mTLS
// (garo dev certs): a private CA, the frontend's, garo server's, an
// operator's and one per agent.
func runCerts(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dev certs", stderr)
	dir := fs.String("dir", "certs", "directory to write ca.pem, frontend.pem, server.pem, admin.pem and agent-NAME.pem (each with NAME-key.pem)")
	var agents, hosts envflag.StringList
	fs.Var(&agents, "agent", "agents to make client certificates for (common name agent:NAME), comma-separated or repeated")
	fs.Var(&hosts, "host", "names and addresses of the Temporal frontend (default localhost,127.0.0.1), comma-separated or repeated")
	server := fs.String("server-subject", "garo-server", "common name of garo server's certificate")
	admin := fs.String("admin-subject", "temporal-admin", "common name of the operator's certificate")
	valid := fs.Duration("valid", 365*24*time.Hour, "how long the certificates last")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, a := range agents {
		if err := workflows.ValidateAgentName(a); err != nil {
			return err
		}
	}
	if err := devcerts.Write(devcerts.Set{Dir: *dir, Hosts: hosts, Agents: agents, Server: *server, Admin: *admin,
		Valid: *valid}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Certificates written to %s: ca.pem, frontend.pem, server.pem (%s), admin.pem (%s)", *dir, *server, *admin)
	for _, a := range agents {
		fmt.Fprintf(stdout, ", agent-%s.pem (agent:%s)", a, a)
	}
	fmt.Fprintln(stdout, "; each key in NAME-key.pem.")
	return nil
}
