// Command garo-temporal is a Temporal server (v1.29.1) for Garo: the
// upstream server with the postgres12 persistence plugin, and the claim
// mapper and authorizer of package authz, so that an agent's client
// certificate reaches only its own task queue. It lives in its own Go
// module: the server's dependencies cannot share one with the SDK's.
//
//	garo-temporal [-config-dir DIR] [-env garo] [-namespace garo]
//	              [-server-subject garo-server]... [-admin-subject temporal-admin]...
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
	_ "go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql" // the postgres12 plugin
	"go.temporal.io/server/temporal"

	"github.com/garo-run/garo/deploy/temporal/authz"
)

// list is a repeatable flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "garo-temporal:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("garo-temporal", flag.ContinueOnError)
	configDir := fs.String("config-dir", "deploy/temporal/config", "directory of the server's configuration (base.yaml, ENV.yaml)")
	env := fs.String("env", "garo", "configuration to load from the directory (ENV.yaml)")
	namespace := fs.String("namespace", "garo", "Garo's namespace: the servers' and agents' rights stop at it")
	var servers, admins list
	fs.Var(&servers, "server-subject", "common name of garo server's client certificate (repeatable; default garo-server)")
	fs.Var(&admins, "admin-subject", "common name of an operator's client certificate, with every right (repeatable; default temporal-admin)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(servers) == 0 {
		servers = list{"garo-server"}
	}
	if len(admins) == 0 {
		admins = list{"temporal-admin"}
	}
	cfg, err := config.LoadConfig(*env, *configDir, "")
	if err != nil {
		return fmt.Errorf("load configuration %s from %s: %w", *env, *configDir, err)
	}
	logger := log.NewZapLogger(log.BuildZapLogger(cfg.Log))
	dc := dynamicconfig.NewNoopClient()
	if cfg.DynamicConfigClient != nil {
		if dc, err = dynamicconfig.NewFileBasedClient(cfg.DynamicConfigClient, logger, temporal.InterruptCh()); err != nil {
			return fmt.Errorf("dynamic configuration: %w", err)
		}
	}
	rights := authz.Config{Namespace: *namespace, Servers: servers, Admins: admins}
	s, err := temporal.NewServer(
		// Every service, the internal frontend too: the worker service
		// (the server's own system workflows) reaches it on loopback,
		// without a client certificate.
		temporal.ForServices(temporal.Services),
		temporal.WithConfig(cfg),
		temporal.WithDynamicConfigClient(dc),
		temporal.WithLogger(logger),
		temporal.InterruptOn(temporal.InterruptCh()),
		temporal.WithAuthorizer(authz.NewAuthorizer(rights)),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return authz.NewClaimMapper(rights) }),
	)
	if err != nil {
		return fmt.Errorf("new server: %w", err)
	}
	logger.Info("Garo's Temporal server starting", tag.WorkflowNamespace(*namespace))
	if err := s.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	return nil
}
