package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/garo-run/garo/internal/envflag"
	"github.com/garo-run/garo/internal/server"
	"github.com/garo-run/garo/internal/temporalclient"
	"github.com/garo-run/garo/workflows"
)

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
	ui := fs.String("temporal-ui-url", "", "the Temporal Web UI's address, such as https://temporal.example.com, for the portal's links to workflows")
	pricesFile := fs.String("hourly-prices", "", "file of runner-hour prices by provider option, a line each (\"ec2 instanceType=m5.large 0.096\", \"process 0.01\"), for the cost of pools whose hourlyPrice is 0")
	var origins envflag.StringList
	fs.Var(&origins, "cors-origin", "an origin allowed to call the API from a browser, such as a portal's https://portal.example.com (comma-separated or repeated; none by default)")
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
	prices, err := readPrices(*pricesFile)
	if err != nil {
		return err
	}
	return server.Run(ctx, server.Config{
		Listen: *listen, Temporal: topts, AdminToken: token, WebhookSecrets: lines(whSecrets),
		HeartbeatInterval: *hbEvery, OfflineAfter: *offline, CORSOrigins: origins,
		TemporalUI: *ui, Prices: prices, Version: versionString(), Logger: log,
	})
}

// readPrices reads the price list of --hourly-prices; none without a file.
func readPrices(file string) ([]workflows.ProviderPrice, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("hourly prices: %w", err)
	}
	prices, err := workflows.ParsePrices(string(b))
	if err != nil {
		return nil, fmt.Errorf("hourly prices %s: %w", file, err)
	}
	return prices, nil
}
