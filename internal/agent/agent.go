// Package agent runs garo agent: it registers with the server, keeps a
// heartbeat, and runs a Temporal worker on its own task queue for the
// activities that touch its credentials and compute. It opens no listening
// socket: every connection is outbound.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/garo-run/garo/activities/github"
	"github.com/garo-run/garo/activities/provider"
	"github.com/garo-run/garo/api/apiclient"
	"github.com/garo-run/garo/internal/backoff"
	"github.com/garo-run/garo/internal/temporalclient"
	"github.com/garo-run/garo/workers"
	"github.com/garo-run/garo/workflows"
)

// Config is the configuration of one agent process.
type Config struct {
	Name      string
	ServerURL string
	Token     string
	Temporal  temporalclient.Options
	Labels    []string
	Version   string
	// GitHub, when set, is the agent's GitHub client: its credentials
	// stay in this process.
	GitHub *github.Client
	// Providers are the compute providers this agent offers.
	Providers []provider.Provider
	Logger    *slog.Logger
	// MetricsListen, when set, serves Prometheus metrics of Registry at
	// /metrics there; the agent has no other listener. Bind it to
	// loopback unless a scraper must reach it.
	MetricsListen string
	Registry      *prometheus.Registry
	// ConfigPollInterval is how often the agent asks for its configuration
	// (a 304 while nothing changed); default 30s.
	ConfigPollInterval time.Duration
}

// Run registers the agent and serves until ctx ends. On the way out it
// stops its worker and tells the server it is stopping, so that it shows
// offline at once; it does not unregister, which would drain its pools.
func Run(ctx context.Context, cfg Config) error {
	if err := workflows.ValidateAgentName(cfg.Name); err != nil {
		return err
	}
	if cfg.ServerURL == "" {
		return errors.New("no server URL: set --server or GARO_SERVER")
	}
	if cfg.Token == "" {
		return errors.New("no token: set --token-file or GARO_TOKEN")
	}
	log := cfg.Logger.With("agent", cfg.Name)
	host, _ := os.Hostname()
	identity := fmt.Sprintf("garo-agent-%s@%s/%d", cfg.Name, host, os.Getpid())
	copts, err := cfg.Temporal.ClientOptions(identity, log)
	if err != nil {
		return err
	}
	if cfg.Registry != nil {
		sdkMetrics, closeMetrics := temporalclient.Metrics(cfg.Registry, log)
		defer closeMetrics.Close()
		copts.MetricsHandler = sdkMetrics
	}
	c, err := temporalclient.Dial(ctx, copts, log)
	if err != nil {
		return err
	}
	defer c.Close()

	var kinds []string
	schemas := map[string][]provider.Option{}
	for _, p := range cfg.Providers {
		kinds = append(kinds, p.Kind())
		schemas[p.Kind()] = p.Options()
	}
	if cfg.MetricsListen != "" {
		stop, err := serveMetrics(cfg.MetricsListen, cfg.Registry, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	a := &agent{cfg: cfg, log: log, api: apiclient.New(cfg.ServerURL, cfg.Token),
		caps: workflows.AgentCapabilities{Version: cfg.Version, Hostname: host, Providers: kinds, Labels: cfg.Labels,
			ProviderOptions: schemas}}
	st, err := a.register(ctx)
	if err != nil {
		return err
	}
	w := workers.NewAgent(c, cfg.Name, identity, workers.AgentDeps{Version: cfg.Version, GitHub: cfg.GitHub, Providers: cfg.Providers,
		Metrics: registerer(cfg.Registry), Reports: &reporter{api: a.api, name: cfg.Name, log: log}})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker on %s: %w", st.TaskQueue, err)
	}
	log.Info("Agent worker started", "taskQueue", st.TaskQueue)
	cfgCtx, stopConfig := context.WithCancel(ctx)
	defer stopConfig()
	go a.watchConfig(cfgCtx)
	hbErr := a.heartbeats(ctx, st.HeartbeatInterval.D())
	stopConfig()

	log.Info("Agent stopping")
	w.Stop()
	if hbErr != nil {
		return hbErr
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.api.Heartbeat(stopCtx, cfg.Name, true); err != nil {
		log.Warn("Could not tell the server the agent stops; it will show offline after its timeout", "error", err)
	}
	return nil
}

// serveMetrics serves reg at addr/metrics until stop is called.
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("Agent metrics listening", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

type agent struct {
	cfg  Config
	log  *slog.Logger
	api  *apiclient.Client
	caps workflows.AgentCapabilities
}

// register registers with the server, retrying with backoff while the
// server is unreachable or unavailable. Errors that retrying cannot fix
// (a bad token, a rejected registration) end it.
func (a *agent) register(ctx context.Context) (workflows.AgentState, error) {
	var st workflows.AgentState
	err := backoff.Retry(ctx, backoff.Policy{First: 500 * time.Millisecond, Max: 30 * time.Second}, func() (err error) {
		st, err = a.api.RegisterAgent(ctx, a.cfg.Name, a.caps)
		var apiErr *apiclient.Error
		if errors.As(err, &apiErr) && apiErr.StatusCode < 500 && apiErr.StatusCode != http.StatusConflict &&
			apiErr.StatusCode != http.StatusTooManyRequests {
			return backoff.Permanent(err)
		}
		return err
	}, func(err error, wait time.Duration) {
		a.log.Warn("Registration failed; retrying", "server", a.cfg.ServerURL, "retryIn", wait, "error", err)
	})
	switch {
	case err == nil:
		a.log.Info("Agent registered", "server", a.cfg.ServerURL, "taskQueue", st.TaskQueue,
			"heartbeatInterval", st.HeartbeatInterval.String())
		return st, nil
	case ctx.Err() != nil:
		return st, fmt.Errorf("register agent %s: %w", a.cfg.Name, ctx.Err())
	}
	return st, fmt.Errorf("register agent %s with %s: %w", a.cfg.Name, a.cfg.ServerURL, err)
}

// watchConfig polls the agent's configuration (cheaply: 304 while nothing
// changed) and applies it: it logs its pools (OWNER/REPO/POOL) and warns
// about pools that need a provider this agent does not offer, without a
// restart.
func (a *agent) watchConfig(ctx context.Context) {
	every := a.cfg.ConfigPollInterval
	if every == 0 {
		every = 30 * time.Second
	}
	offered := map[string]bool{}
	for _, p := range a.cfg.Providers {
		offered[p.Kind()] = true
	}
	etag := ""
	for {
		cfg, next, changed, err := a.api.GetAgentConfig(ctx, a.cfg.Name, etag)
		switch {
		case err != nil && ctx.Err() == nil:
			a.log.Debug("Configuration not fetched", "error", err)
		case changed:
			etag = next
			var pools []string
			for _, r := range cfg.Repositories {
				pools = append(pools, r.Repository+"/"+r.Pool)
				if kind := r.Config.Provider.Kind(); !offered[kind] {
					a.log.Warn("A pool needs a provider this agent does not offer", "repository", r.Repository, "pool", r.Pool,
						"provider", kind)
				}
			}
			a.log.Info("Configuration changed", "pools", len(pools), "names", pools)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// ErrUnregistered ends an agent that an operator unregistered.
var ErrUnregistered = errors.New("this agent was unregistered by an operator; stopping")

// heartbeats sends a heartbeat every interval until ctx ends. When the
// server has lost the agent's record, the agent registers again; when an
// operator unregistered it, it returns ErrUnregistered.
func (a *agent) heartbeats(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, interval)
		st, err := a.api.Heartbeat(hctx, a.cfg.Name, false)
		cancel()
		switch {
		case err == nil:
			if failing {
				a.log.Info("Heartbeats delivered again")
				failing = false
			}
			if st.HeartbeatInterval.D() > 0 && st.HeartbeatInterval.D() != interval {
				interval = st.HeartbeatInterval.D()
				t.Reset(interval)
			}
		case apiclient.IsStatus(err, http.StatusGone):
			return ErrUnregistered
		case apiclient.IsStatus(err, http.StatusUnauthorized), apiclient.IsStatus(err, http.StatusForbidden):
			return fmt.Errorf("the server rejects this agent's token (revoked, or the agent was removed): %w", err)
		case apiclient.IsStatus(err, http.StatusNotFound):
			a.log.Warn("Server does not know this agent; registering again")
			st, err := a.register(ctx)
			if err != nil {
				if ctx.Err() == nil {
					a.log.Error("Re-registration failed", "error", err)
				}
				continue
			}
			interval = st.HeartbeatInterval.D()
			t.Reset(interval)
		case ctx.Err() != nil:
			return nil
		default:
			if !failing {
				a.log.Warn("Heartbeat failed; the agent shows offline if this lasts", "error", err)
			}
			failing = true
		}
	}
}

// registerer is reg as a Registerer, or nil: a nil *Registry must not
// become a non-nil interface.
func registerer(reg *prometheus.Registry) prometheus.Registerer {
	if reg == nil {
		return nil
	}
	return reg
}
