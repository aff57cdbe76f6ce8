// Command githubsim is a standalone fake of the parts of GitHub that a
// runner orchestrator touches (see docs/githubsim.md):
//
//	githubsim --listen ADDR --webhook-url URL --webhook-secret S --seed N
//	githubsim runner [--url URL]   a simulated runner; JIT config from $ACTIONS_RUNNER_INPUT_JITCONFIG or stdin
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/garo-run/garo/internal/envflag"
	"github.com/garo-run/garo/internal/httpserve"
	"github.com/garo-run/garo/tests/githubsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var err error
	if len(os.Args) > 1 && os.Args[1] == "runner" {
		err = runRunner(ctx, os.Args[2:], os.Stdin, log)
	} else {
		err = serve(ctx, os.Args[1:], log)
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "githubsim:", err)
		os.Exit(1)
	}
}

func serve(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("githubsim", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9980", "address to serve GitHub's API and the control API on")
	hookURL := fs.String("webhook-url", "", "where to send workflow_job webhooks (every repository's)")
	hookSecret := fs.String("webhook-secret", "", "secret that signs the webhooks")
	seed := fs.Int64("seed", 1, "seed of the fault injection")
	offline := fs.Duration("runner-offline-after", 5*time.Second, "a silent runner is offline, and its job failed, after this")
	remove := fs.Duration("runner-remove-after", 24*time.Hour, "a runner offline this long is removed, as GitHub removes stale runners")
	concurrency := fs.Int("webhook-concurrency", 16, "webhook deliveries in flight at once, as GitHub sends several (1: in order)")
	deliveryLog := fs.Int("delivery-log", githubsim.DefaultDeliveryLog, "delivery attempts kept for the deliveries APIs, the oldest dropped")
	rateLimit := fs.Int("rate-limit", 15000, "each token's hourly request budget")
	if err := envflag.Parse(fs, "GITHUBSIM", args, os.Getenv); err != nil {
		return err
	}
	if *rateLimit < 1 {
		return fmt.Errorf("--rate-limit must be 1 or more, not %d", *rateLimit)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	sim := githubsim.New(githubsim.Options{WebhookURL: *hookURL, WebhookSecret: *hookSecret, Seed: *seed,
		RunnerOfflineAfter: *offline, RunnerRemoveAfter: *remove, WebhookConcurrency: *concurrency, DeliveryLog: *deliveryLog, RateLimit: *rateLimit, Logger: log})
	defer sim.Close()
	sim.SetBaseURL("http://" + ln.Addr().String())
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	log.Info("GitHub simulator listening", "addr", ln.Addr().String(), "webhookURL", *hookURL)
	return httpserve.Serve(ctx, srv, ln, 5*time.Second)
}

func runRunner(ctx context.Context, args []string, stdin io.Reader, log *slog.Logger) error {
	fs := flag.NewFlagSet("githubsim runner", flag.ContinueOnError)
	url := fs.String("url", os.Getenv(githubsim.EnvURL), "simulator URL (default: from the JIT config)")
	fromStdin := fs.Bool("jitconfig-stdin", false, "read the JIT config from stdin")
	ephemeral := fs.Bool("ephemeral", os.Getenv(githubsim.EnvEphemeral) == "true", "with a registration token: take one job, then exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := githubsim.RunnerConfig{URL: *url, JITConfig: os.Getenv(githubsim.EnvJITConfig),
		Token: os.Getenv(githubsim.EnvToken), Name: os.Getenv(githubsim.EnvName), Ephemeral: *ephemeral, Logger: log}
	if l := os.Getenv(githubsim.EnvLabels); l != "" {
		cfg.Labels = strings.Split(l, ",")
	}
	if *fromStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read JIT config from stdin: %w", err)
		}
		cfg.JITConfig = strings.TrimSpace(line)
	}
	return githubsim.RunRunner(ctx, cfg)
}
