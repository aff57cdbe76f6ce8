package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/garo-run/garo/activities/github"
	"github.com/prometheus/client_golang/prometheus"
)

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
