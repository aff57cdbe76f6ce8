package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/garo-run/garo/internal/temporalclient"
)

// postgresNamespace is the namespace of the production Temporal.
const postgresNamespace = "garo"

// startPostgresTemporal starts the production Temporal of deploy/temporal
// as tests/production_test.go does: a PostgreSQL of Debian's packages
// (postgres.sh), Temporal's schema (schema.sh), a private CA (garo dev
// certs) and garo-temporal with mTLS and the per-agent authorizer, then
// creates the namespace. It sets the stack's address, namespace and the
// certificates each process presents.
func (s *stack) startPostgresTemporal(ctx context.Context, bin, deploy string, logf func(string, ...any)) error {
	for _, b := range []string{"garo-temporal", "temporal-sql"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return fmt.Errorf("%s is not built (make temporal-server): %w", b, err)
		}
	}
	// PostgreSQL runs as its own user when we are root: it must reach
	// the work directory.
	if err := os.Chmod(s.work, 0o755); err != nil {
		return err
	}
	pgPort, err := freePort()
	if err != nil {
		return err
	}
	pgDir := filepath.Join(s.work, "pg")
	logf("starting PostgreSQL (%s)", pgDir)
	if err := script(ctx, deploy, "postgres.sh", nil, "start", pgDir, strconv.Itoa(pgPort)); err != nil {
		return err
	}
	s.cleanups = append(s.cleanups, func() {
		_ = exec.Command(filepath.Join(deploy, "postgres.sh"), "stop", pgDir).Run()
	})
	pass, err := os.ReadFile(filepath.Join(pgDir, "password"))
	if err != nil {
		return err
	}
	pgEnv := []string{"GARO_PG_PORT=" + strconv.Itoa(pgPort), "GARO_PG_PASSWORD=" + strings.TrimSpace(string(pass))}
	logf("creating Temporal's schema")
	if err := script(ctx, deploy, "schema.sh", append(pgEnv, "TEMPORAL_SQL="+filepath.Join(bin, "temporal-sql"))); err != nil {
		return err
	}
	s.certs = filepath.Join(s.work, "certs")
	if out, err := exec.CommandContext(ctx, filepath.Join(bin, "garo"), "dev", "certs", "--dir", s.certs, "--agent", "bench").CombinedOutput(); err != nil {
		return fmt.Errorf("garo dev certs: %w: %s", err, out)
	}
	env := append(pgEnv, "GARO_TEMPORAL_TLS_CERT="+filepath.Join(s.certs, "frontend.pem"),
		"GARO_TEMPORAL_TLS_KEY="+filepath.Join(s.certs, "frontend-key.pem"),
		"GARO_TEMPORAL_TLS_CLIENT_CA="+filepath.Join(s.certs, "ca.pem"),
		"GARO_TEMPORAL_DYNAMIC_CONFIG="+filepath.Join(deploy, "config", "dynamicconfig", "garo.yaml"))
	// Temporal keeps its services' ports in a smallint column: below
	// 32768, where the kernel hands out no ephemeral port.
	front := lowFreePort()
	s.temporalAddr, s.namespace = "127.0.0.1:"+strconv.Itoa(front), postgresNamespace
	env = append(env, "GARO_TEMPORAL_PORT="+strconv.Itoa(front))
	for _, v := range []string{"MEMBERSHIP_PORT", "HTTP_PORT", "INTERNAL_PORT", "INTERNAL_MEMBERSHIP_PORT", "INTERNAL_HTTP_PORT",
		"HISTORY_PORT", "HISTORY_MEMBERSHIP_PORT", "MATCHING_PORT", "MATCHING_MEMBERSHIP_PORT", "WORKER_PORT", "WORKER_MEMBERSHIP_PORT"} {
		env = append(env, "GARO_TEMPORAL_"+v+"="+strconv.Itoa(lowFreePort()))
	}
	logf("starting garo-temporal on PostgreSQL")
	if s.temporal, err = s.start("temporal", filepath.Join(bin, "garo-temporal"), env,
		"--config-dir", filepath.Join(deploy, "config"), "--namespace", postgresNamespace); err != nil {
		return err
	}
	return s.registerNamespace(ctx, logf)
}

// registerNamespace creates the namespace with the operator's certificate
// once the frontend answers, and waits until it is served.
func (s *stack) registerNamespace(ctx context.Context, logf func(string, ...any)) error {
	opts, err := s.temporalOptions("admin").ClientOptions("garo-bench", quiet())
	if err != nil {
		return err
	}
	opts.Namespace = "default"
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := temporalclient.Dial(dctx, opts, quiet())
	if err != nil {
		return fmt.Errorf("garo-temporal (see %s): %w", filepath.Join(s.work, "temporal.log"), err)
	}
	defer c.Close()
	logf("creating namespace %s", s.namespace)
	if _, err := c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{Namespace: s.namespace,
		WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour)}); err != nil {
		return fmt.Errorf("create namespace %s: %w", s.namespace, err)
	}
	for {
		_, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: s.namespace})
		if err == nil {
			return nil
		}
		if dctx.Err() != nil {
			return fmt.Errorf("namespace %s: %w", s.namespace, err)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
}

// quiet is a logger that logs nothing.
func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// temporalOptions are the Temporal options of a process that presents
// the certificate name (none on the dev server).
func (s *stack) temporalOptions(name string) temporalclient.Options {
	o := temporalclient.Options{Address: s.temporalAddr, Namespace: s.namespace}
	if s.certs != "" {
		o.TLSCert, o.TLSKey = filepath.Join(s.certs, name+".pem"), filepath.Join(s.certs, name+"-key.pem")
		o.TLSCA, o.TLSServerName = filepath.Join(s.certs, "ca.pem"), "localhost"
	}
	return o
}

// temporalArgs are garo's flags for the same.
func (s *stack) temporalArgs(name string) []string {
	o := s.temporalOptions(name)
	args := []string{"--temporal-address", o.Address, "--temporal-namespace", o.Namespace}
	if o.TLSCert != "" {
		args = append(args, "--temporal-tls-cert", o.TLSCert, "--temporal-tls-key", o.TLSKey,
			"--temporal-tls-ca", o.TLSCA, "--temporal-tls-server-name", o.TLSServerName)
	}
	return args
}

// script runs a deploy/temporal script.
func script(ctx context.Context, deploy, name string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(deploy, name), args...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, out)
	}
	return nil
}

// lowFreePort returns a TCP port below 32768 that was free a moment ago.
func lowFreePort() int {
	for {
		port := 20000 + rand.IntN(12000)
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			ln.Close()
			return port
		}
	}
}
