package tests

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/garo-run/garo/api/apiclient"
	"github.com/garo-run/garo/tests/githubsim"
	"github.com/garo-run/garo/workflows"
)

// prodEnv is Garo on its production Temporal server: PostgreSQL, mTLS,
// and the per-agent authorizer of deploy/temporal.
type prodEnv struct {
	t        *testing.T
	work     string
	certs    string
	frontend string
	temporal *proc
}

// TestProductionTemporalOnPostgreSQL: Garo's Temporal server runs on
// PostgreSQL with mTLS and its authorizer; two garo server replicas and
// two agents, each with its own certificate, serve the jobs of both
// agents' repositories; killing one replica mid-run loses nothing; and an
// agent's certificate is refused on the other agent's queue, on the
// server's queue and on workflow APIs, and accepted on its own queue.
func TestProductionTemporalOnPostgreSQL(t *testing.T) {
	t.Parallel()
	e := newProdEnv(t)
	const ns = "garo"
	e.registerNamespace(ns)

	ports := []int{freePort(t), freePort(t)}
	var replicas []*proc
	for i, port := range ports {
		_, p := runServer(t, e.frontend, ns, port, append(e.tlsArgs("server"), "--heartbeat-interval", "1s",
			"--offline-after", "10s")...)
		p.name = "server " + strconv.Itoa(i+1)
		replicas = append(replicas, p)
	}
	front := failover(t, ports)

	sim := githubsim.New(githubsim.Options{WebhookURL: front + "/webhooks/github", WebhookSecret: webhookSecret,
		Seed: 1, RunnerOfflineAfter: 3 * time.Second})
	t.Cleanup(sim.Close)
	simSrv := httptest.NewServer(sim.Handler())
	t.Cleanup(simSrv.Close)
	sim.SetBaseURL(simSrv.URL)

	api := apiclient.New(front, adminToken)
	agents := []string{"prod-a", "prod-b"}
	for _, name := range agents {
		start(t, "agent "+name, []string{"GARO_TOKEN=" + adminToken, "GARO_GITHUB_TOKEN=ghs_e2e"},
			append([]string{"agent", "--name", name, "--server", front, "--temporal-address", e.frontend,
				"--temporal-namespace", ns, "--github-url", simSrv.URL, "--state-dir", t.TempDir(),
				"--process-command", githubsimBin + " runner"}, e.tlsArgs("agent-"+name)...)...)
	}
	for _, name := range agents {
		eventually(t, time.Minute, "agent "+name+" online", func() bool {
			st, err := api.GetAgent(context.Background(), name)
			return err == nil && st.Status == workflows.AgentOnline
		})
	}
	const jobs = 6
	for _, name := range agents {
		cfg := `{"agent":"` + name + `","maxRunners":2,"idleGracePeriod":"2s","bootstrapTimeout":"1m"}`
		code, b := call(t, front, "PUT", "/api/v1/repositories/e2e/"+name, cfg)
		require.Equal(t, http.StatusOK, code, "%s", b)
		sim.Enqueue("e2e", name, []string{"self-hosted", "linux"}, 500*time.Millisecond, jobs, "build")
	}
	eventually(t, 2*time.Minute, "a first job done", func() bool { return completed(sim, "e2e/prod-a")+completed(sim, "e2e/prod-b") > 0 })
	replicas[0].kill() // mid-run: the other replica carries on
	for _, name := range agents {
		eventually(t, 3*time.Minute, "every job of e2e/"+name+" served", func() bool { return completed(sim, "e2e/"+name) == jobs })
	}

	e.assertAgentConfined(ns)
}

// assertAgentConfined checks prod-a's certificate call by call.
func (e *prodEnv) assertAgentConfined(ns string) {
	t := e.t
	svc := e.client(ns, "agent-prod-a").WorkflowService()
	ctx := context.Background()
	poll := func(queue string) error {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := svc.PollActivityTaskQueue(pctx, &workflowservice.PollActivityTaskQueueRequest{Namespace: ns,
			TaskQueue: &taskqueuepb.TaskQueue{Name: queue}, Identity: "e2e"})
		return err
	}
	var denied *serviceerror.PermissionDenied
	err := poll(workflows.AgentTaskQueue("prod-a"))
	assert.False(t, errors.As(err, &denied), "its own queue is open to it: %v", err)
	for what, err := range map[string]error{
		"the other agent's queue": poll(workflows.AgentTaskQueue("prod-b")),
		"the server's queue":      poll(workflows.ServerTaskQueue),
		"starting a workflow": func() error {
			_, err := svc.StartWorkflowExecution(ctx, &workflowservice.StartWorkflowExecutionRequest{Namespace: ns,
				WorkflowId: "intruder", RequestId: "intruder"})
			return err
		}(),
		"signalling a repository": func() error {
			_, err := svc.SignalWorkflowExecution(ctx, &workflowservice.SignalWorkflowExecutionRequest{Namespace: ns})
			return err
		}(),
		"listing workflows": func() error {
			_, err := svc.ListWorkflowExecutions(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: ns})
			return err
		}(),
		"terminating a workflow": func() error {
			_, err := svc.TerminateWorkflowExecution(ctx, &workflowservice.TerminateWorkflowExecutionRequest{Namespace: ns})
			return err
		}(),
	} {
		assert.True(t, errors.As(err, &denied), "%s: want PermissionDenied, got %v", what, err)
	}
}

func newProdEnv(t *testing.T) *prodEnv {
	pg := postgresBin(t)
	work, err := os.MkdirTemp("", "garo-prod-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(work) })
	require.NoError(t, os.Chmod(work, 0o755)) // PostgreSQL runs as its own user
	e := &prodEnv{t: t, work: work, certs: filepath.Join(work, "certs")}
	t.Logf("PostgreSQL from %s; building garo-temporal", pg)
	for out, pkg := range map[string]string{"garo-temporal": ".", "sql": "go.temporal.io/server/cmd/tools/sql"} {
		build := exec.Command("go", "build", "-o", filepath.Join(work, out), pkg)
		build.Dir = "../deploy/temporal"
		b, err := build.CombinedOutput()
		require.NoError(t, err, "build %s of deploy/temporal: %s", pkg, b)
	}

	pgPort := strconv.Itoa(freePort(t))
	e.script("postgres.sh", nil, "start", filepath.Join(work, "pg"), pgPort)
	t.Cleanup(func() { _ = exec.Command("../deploy/temporal/postgres.sh", "stop", filepath.Join(work, "pg")).Run() })
	pass, err := os.ReadFile(filepath.Join(work, "pg", "password"))
	require.NoError(t, err)
	pgEnv := []string{"GARO_PG_PORT=" + pgPort, "GARO_PG_PASSWORD=" + strings.TrimSpace(string(pass))}
	e.script("schema.sh", append(pgEnv, "TEMPORAL_SQL="+filepath.Join(work, "sql")))

	certs := exec.Command(garoBin, "dev", "certs", "--dir", e.certs, "--agent", "prod-a,prod-b")
	out, err := certs.CombinedOutput()
	require.NoError(t, err, "%s", out)

	env := append(pgEnv, "GARO_TEMPORAL_TLS_CERT="+filepath.Join(e.certs, "frontend.pem"),
		"GARO_TEMPORAL_TLS_KEY="+filepath.Join(e.certs, "frontend-key.pem"),
		"GARO_TEMPORAL_TLS_CLIENT_CA="+filepath.Join(e.certs, "ca.pem"),
		"GARO_TEMPORAL_DYNAMIC_CONFIG="+filepath.Join("..", "deploy", "temporal", "config", "dynamicconfig", "garo.yaml"))
	// Temporal keeps its services' ports in a smallint column: below
	// 32768, where the kernel hands out no ephemeral port.
	port := lowFreePort(t)
	e.frontend = "127.0.0.1:" + strconv.Itoa(port)
	env = append(env, "GARO_TEMPORAL_PORT="+strconv.Itoa(port))
	for _, v := range []string{"MEMBERSHIP_PORT", "HTTP_PORT", "INTERNAL_PORT", "INTERNAL_MEMBERSHIP_PORT", "INTERNAL_HTTP_PORT",
		"HISTORY_PORT", "HISTORY_MEMBERSHIP_PORT", "MATCHING_PORT", "MATCHING_MEMBERSHIP_PORT", "WORKER_PORT", "WORKER_MEMBERSHIP_PORT"} {
		env = append(env, "GARO_TEMPORAL_"+v+"="+strconv.Itoa(lowFreePort(t)))
	}
	e.temporal = startCmd(t, "garo-temporal", filepath.Join(work, "garo-temporal"), env,
		"--config-dir", "../deploy/temporal/config", "--namespace", "garo")
	return e
}

// script runs a deploy/temporal script, failing the test on error.
func (e *prodEnv) script(name string, env []string, args ...string) {
	cmd := exec.Command(filepath.Join("..", "deploy", "temporal", name), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	require.NoError(e.t, err, "%s: %s", name, out)
}

// postgresBin finds Debian's PostgreSQL; without it the test is skipped,
// and fails under CI=true, where .ci/run installs it.
func postgresBin(t *testing.T) string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("PostgreSQL is not installed (apt-get install postgresql): .ci/run installs it")
		}
		t.Skip("PostgreSQL is not installed (apt-get install postgresql)")
	}
	return filepath.Dir(dirs[len(dirs)-1])
}

// tlsArgs are garo's flags to reach the frontend with certificate name.
func (e *prodEnv) tlsArgs(name string) []string {
	return []string{"--temporal-tls-cert", filepath.Join(e.certs, name+".pem"),
		"--temporal-tls-key", filepath.Join(e.certs, name+"-key.pem"),
		"--temporal-tls-ca", filepath.Join(e.certs, "ca.pem"), "--temporal-tls-server-name", "localhost"}
}

// client is an SDK client of the frontend in ns with certificate name,
// once the frontend answers.
func (e *prodEnv) client(ns, name string) client.Client {
	cert, err := tls.LoadX509KeyPair(filepath.Join(e.certs, name+".pem"), filepath.Join(e.certs, name+"-key.pem"))
	require.NoError(e.t, err)
	ca, err := os.ReadFile(filepath.Join(e.certs, "ca.pem"))
	require.NoError(e.t, err)
	pool := x509.NewCertPool()
	require.True(e.t, pool.AppendCertsFromPEM(ca))
	opts := client.Options{HostPort: e.frontend, Namespace: ns,
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		ConnectionOptions: client.ConnectionOptions{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool,
			ServerName: "localhost", MinVersion: tls.VersionTLS12}}}
	var c client.Client
	eventually(e.t, 2*time.Minute, "the Temporal frontend", func() bool {
		select {
		case <-e.temporal.done:
			e.t.Fatalf("garo-temporal exited: %v", e.temporal.err)
		default:
		}
		c, err = client.Dial(opts)
		return err == nil
	})
	e.t.Cleanup(c.Close)
	return c
}

// registerNamespace creates ns with the operator's certificate.
func (e *prodEnv) registerNamespace(ns string) {
	c := e.client("default", "admin")
	ctx := context.Background()
	_, err := c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{Namespace: ns,
		WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour)})
	require.NoError(e.t, err)
	eventually(e.t, time.Minute, "namespace "+ns, func() bool {
		_, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
		return err == nil
	})
}

// failover serves every request on the first of the local ports that
// answers: a load balancer in front of the server replicas.
func failover(t *testing.T, ports []int) string {
	var alive atomic.Int32
	proxies := make([]*httputil.ReverseProxy, len(ports))
	for i, p := range ports {
		u, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(p))
		proxies[i] = httputil.NewSingleHostReverseProxy(u)
		proxies[i].ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			alive.CompareAndSwap(int32(i), int32(min(i+1, len(ports)-1)))
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxies[alive.Load()].ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// call sends a request with the admin token.
func call(t *testing.T, base, method, path, body string) (int, []byte) {
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// lowFreePort returns a TCP port below 32768 that was free a moment ago.
func lowFreePort(t *testing.T) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(12000)
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port below 32768")
	return 0
}
