// Command garo is the single binary of Garo, the GitHub Actions runner
// orchestrator: the processes (garo server, garo agent, garo dev) and the
// operator commands on the REST API (garo repo, pool, agents, runners,
// jobs, unmatched).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

const usage = `garo orchestrates GitHub Actions self-hosted runners on Temporal.

Usage, processes:
  garo server [flags]            the REST API, webhook and control-plane worker
  garo agent --name NAME [flags] an agent: registers, heartbeats, runs its worker
  garo dev [flags]               the whole stack on this machine (Temporal dev server, server, agent)
  garo dev certs [flags]         a private CA and mTLS certificates for Temporal (server, agents, operator)
  garo codec-server [flags]      decrypts encrypted payloads for the Web UI and the temporal CLI
  garo version                   print the version

Operator commands, on the REST API (--server, --token; env GARO_SERVER, GARO_TOKEN):
%s
Every flag can also be set from the environment: --temporal-address is
GARO_TEMPORAL_ADDRESS. Run "garo COMMAND --help" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

func printUsage(w io.Writer) { fmt.Fprintf(w, usage, commandList("")) }

func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch name := args[0]; {
	case name == "server":
		err = runServer(ctx, args[1:], stderr, getenv)
	case name == "agent":
		err = runAgent(ctx, args[1:], stderr, getenv)
	case name == "dev":
		err = runDev(ctx, args[1:], stdout, stderr, getenv)
	case name == "codec-server":
		err = runCodecServer(ctx, args[1:], stderr, getenv)
	case name == "version" || name == "--version" || name == "-version":
		fmt.Fprintln(stdout, "garo", versionString())
		return 0
	case name == "help" || name == "-h" || name == "--help":
		printUsage(stdout)
		return 0
	case isOperatorCommand(name):
		err = runOperator(ctx, args, stdout, stderr, getenv)
	default:
		fmt.Fprintf(stderr, "garo: unknown command %q\n\n", name)
		printUsage(stderr)
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
