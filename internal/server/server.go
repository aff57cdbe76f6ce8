// Package server runs garo server: the REST API, the GitHub webhook and the
// Temporal worker of the control-plane workflows. It keeps no state of its
// own; any number of replicas can share one Temporal namespace.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/garo-run/garo/api"
	"github.com/garo-run/garo/internal/backoff"
	"github.com/garo-run/garo/internal/temporalclient"
	"github.com/garo-run/garo/workers"
	"github.com/garo-run/garo/workflows"
)

// Config is the configuration of one server process.
type Config struct {
	Listen     string
	Temporal   temporalclient.Options
	AdminToken string
	// WebhookSecrets are the GitHub webhook secrets accepted, in order.
	WebhookSecrets    []string
	HeartbeatInterval time.Duration
	OfflineAfter      time.Duration
	// CORSOrigins may call the API from a browser; none by default.
	CORSOrigins []string
	// TemporalUI is the Web UI's address, for the portal's links.
	TemporalUI string
	// Prices prices the runner-hours of pools without an hourlyPrice.
	Prices  []workflows.ProviderPrice
	Version string
	Logger  *slog.Logger
	// Listening, when set, is called with the bound address once the API
	// listens.
	Listening func(addr string)
}

// Run serves until ctx ends, then shuts down gracefully.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if cfg.AdminToken == "" {
		return errors.New("no admin token: set --admin-token-file or GARO_ADMIN_TOKEN")
	}
	host, _ := os.Hostname()
	reg := prometheus.NewRegistry()
	c, dc, closeClient, err := temporalClient(cfg, host, reg)
	if err != nil {
		return err
	}
	defer closeClient()

	cursors := api.NewCursors(cfg.AdminToken)
	legacy := &api.LegacyRepositories{Client: c, Namespace: cfg.Temporal.Namespace, Cursors: cursors, Converter: dc}
	routes := &api.RouteCache{Client: c, Namespace: cfg.Temporal.Namespace, Converter: dc}
	intake := &api.Intake{Client: c, Routes: routes, Converter: dc, Logger: log, Legacy: &api.TemporalJobs{Client: c}}
	s := &server{cfg: cfg, client: c, log: log, dc: dc}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	if len(cfg.WebhookSecrets) == 0 {
		log.Warn("No webhook secret configured: POST /webhooks/github answers 503 (set --webhook-secret-file or GARO_WEBHOOK_SECRET)")
	}
	repos := &api.TemporalRepositories{Client: c, Namespace: cfg.Temporal.Namespace, Cursors: cursors, Converter: dc, Routes: routes,
		Logger: log, Legacy: legacy}
	s.legacy = legacy
	register(reg, repos, log)
	handler := api.NewRouter(api.Config{
		Agents:            &api.TemporalAgents{Client: c, Namespace: cfg.Temporal.Namespace, Logger: log, Cursors: cursors, Converter: dc},
		Repositories:      repos,
		Webhook:           api.NewWebhook(cfg.WebhookSecrets, intake, log, reg),
		RunnerReports:     intake,
		Metrics:           promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		Tokens:            api.NewTokens(cfg.AdminToken, &api.TemporalTokens{Client: c}, api.DefaultTokenCacheTTL),
		Logger:            log,
		Ready:             s.ready,
		HeartbeatInterval: cfg.HeartbeatInterval,
		OfflineAfter:      cfg.OfflineAfter,
		CORSOrigins:       cfg.CORSOrigins,
		TemporalUI:        cfg.TemporalUI,
		Namespace:         cfg.Temporal.Namespace,
		Prices:            cfg.Prices,
	})
	srv := httpServer(handler)
	log.Info("Garo server listening", "addr", ln.Addr().String(), "temporal", cfg.Temporal.Address,
		"namespace", cfg.Temporal.Namespace, "version", cfg.Version)
	if cfg.Listening != nil {
		cfg.Listening(ln.Addr().String())
	}

	workerCtx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		s.runWorker(workerCtx, host)
	}()
	go intake.ResyncRefused(workerCtx, 2*time.Second, log)
	go intake.Legacy.ResyncRefused(workerCtx, 2*time.Second, log)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		stopWorker()
		<-workerDone
		return fmt.Errorf("serve API: %w", err)
	}
	log.Info("Garo server stopping")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn("API shutdown incomplete", "error", err)
	}
	stopWorker()
	<-workerDone
	return nil
}

// httpServer serves the API with bounds on slow and large requests.
func httpServer(handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

type server struct {
	cfg     Config
	client  client.Client
	log     *slog.Logger
	legacy  *api.LegacyRepositories
	dc      converter.DataConverter
	started atomic.Bool
	// notReady says why the worker has not started yet.
	notReady atomic.Pointer[string]
}

func (s *server) setNotReady(why string) { s.notReady.Store(&why) }

func (s *server) ready(ctx context.Context) error {
	if !s.started.Load() {
		why := "worker not started"
		if p := s.notReady.Load(); p != nil {
			why = *p
		}
		return errors.New(why)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := s.client.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("temporal unreachable: %w", err)
	}
	return nil
}

// runWorker registers the search attributes and runs the server's worker,
// retrying while Temporal is unreachable, until ctx ends.
func (s *server) runWorker(ctx context.Context, host string) {
	policy := backoff.Policy{First: 500 * time.Millisecond, Max: 15 * time.Second}
	notReady := func(what string) func(error, time.Duration) {
		return func(err error, wait time.Duration) {
			s.setNotReady(fmt.Sprintf("%s: %v", what, err))
			s.log.Warn("Server not ready; retrying", "step", what, "retryIn", wait, "error", err)
		}
	}
	if err := backoff.Retry(ctx, policy, func() error {
		return EnsureSearchAttributes(ctx, s.client, s.cfg.Temporal.Namespace)
	}, notReady("register search attributes")); err != nil {
		return // ctx ended
	}
	w := workers.NewServer(s.client, s.cfg.Temporal.Namespace, fmt.Sprintf("garo-server@%s/%d", host, os.Getpid()), s.dc)
	if err := backoff.Retry(ctx, policy, w.Start, notReady("start worker")); err != nil {
		return // ctx ended
	}
	s.log.Info("Server worker started", "taskQueue", workflows.ServerTaskQueue)
	s.setNotReady("warming up: asking the repositories to reconcile")
	warm := make(chan struct{})
	go func() {
		defer close(warm)
		s.resyncRepositories(ctx)
	}()
	select {
	case <-warm:
	case <-time.After(warmUpFor):
		s.log.Warn("Warm-up still going; ready anyway", "after", warmUpFor)
	case <-ctx.Done():
	}
	s.started.Store(true)
	<-ctx.Done()
	s.started.Store(false)
	w.Stop()
}

// EnsureSearchAttributes registers Garo's custom search attributes on the
// namespace unless they exist. Without permission to add them it returns an
// error that says how an operator can.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, a := range workflows.SearchAttributes() {
		if t, ok := resp.GetCustomAttributes()[a.Name]; !ok {
			missing[a.Name] = a.Type
		} else if t != a.Type {
			return fmt.Errorf("search attribute %s of namespace %s has type %s, want %s", a.Name, namespace, t, a.TypeName())
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        namespace,
		SearchAttributes: missing,
	})
	if err != nil {
		return fmt.Errorf("add search attributes to namespace %s (or run deploy/temporal/search-attributes.sh): %w", namespace, err)
	}
	return nil
}

// temporalClient is the server's Temporal client, connecting lazily, with
// its SDK metrics on reg, and its data converter (nil: Temporal's
// default); stop closes both.
func temporalClient(cfg Config, host string, reg *prometheus.Registry) (c client.Client, dc converter.DataConverter, stop func(), err error) {
	copts, err := cfg.Temporal.ClientOptions(fmt.Sprintf("garo-server@%s/%d", host, os.Getpid()), cfg.Logger)
	if err != nil {
		return nil, nil, nil, err
	}
	sdkMetrics, closeMetrics := temporalclient.Metrics(reg, cfg.Logger)
	copts.MetricsHandler = sdkMetrics
	if c, err = client.NewLazyClient(copts); err != nil {
		closeMetrics.Close()
		return nil, nil, nil, fmt.Errorf("temporal client: %w", err)
	}
	return c, copts.DataConverter, func() { c.Close(); closeMetrics.Close() }, nil
}

// register adds to the server's Prometheus registry the Go runtime, the
// process, and the pools (the webhook registers its own, the Temporal
// client too).
func register(reg *prometheus.Registry, repos api.Repositories, log *slog.Logger) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		api.NewPoolMetrics(repos, log))
}
