// Command garo-bench measures Garo end to end on this machine: it starts
// a Temporal dev server, the GitHub simulator, garo server and one garo
// agent whose runners the simulator hosts (the sim provider: no process
// per runner), configures pools, enqueues jobs, waits until every job has
// completed and every pool has settled, and reports what it cost: time,
// GitHub requests, Temporal history and actions, CPU and memory of each
// process. It prints a table and writes JSON to bench/results.
//
//	garo-bench [-scenario small|burst|wide|reuse|steady|deep|fanout|fleet|ramp|idle|smoke] [-out DIR]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/garo-run/garo/internal/devstack"
)

// Scenario is one load shape.
type Scenario struct {
	Name        string
	Pools       int
	JobsPerPool int
	MaxRunners  int
	JobMs       int
	// Reusable runners (not ephemeral JIT ones).
	Reusable bool
	// Rate, when set, enqueues jobs at this many per second in all,
	// spread over the pools, instead of all at once.
	Rate float64
	// MinIdle warm runners per pool.
	MinIdle int
	// Idle, when set, enqueues no job: once the warm runners are idle and
	// Settle has passed, each process is measured at rest for this long.
	Idle, Settle time.Duration
	// Rest, when set, measures the stack at rest for this long once the
	// jobs are done and the pools have settled (and Settle has passed),
	// with the pools configured.
	Rest time.Duration
	// Ramp, when set, offers jobs at each of these rates in turn (jobs per
	// second over all pools) for Step each, until the p99 wait of a step's
	// jobs passes RampLimit.
	Ramp []float64
	Step time.Duration
	// Intake, when set, measures the webhook intake alone: the jobs fit
	// no pool (none runs), and "completed" counts those recorded.
	Intake bool
	// GitHubBudget is the simulator's hourly request budget (default
	// 15,000, a GitHub App's on Enterprise Cloud): raised for scenarios
	// with more jobs than a token's budget allows in an hour, whatever
	// the orchestrator does.
	GitHubBudget int
}

// RampLimit is the p99 wait (queued -> in progress) past which a rate is
// no longer sustained.
const RampLimit = 10 * time.Second

// Scenarios, chosen with -scenario (or BENCH in make bench).
var Scenarios = map[string]Scenario{
	"smoke":  {Name: "smoke", Pools: 2, JobsPerPool: 5, MaxRunners: 3, JobMs: 200},
	"small":  {Name: "small", Pools: 10, JobsPerPool: 50, MaxRunners: 10, JobMs: 1000},
	"burst":  {Name: "burst", Pools: 1, JobsPerPool: 2000, MaxRunners: 200, JobMs: 2000},
	"wide":   {Name: "wide", Pools: 500, JobsPerPool: 4, MaxRunners: 2, JobMs: 1000},
	"reuse":  {Name: "reuse", Pools: 5, JobsPerPool: 40, MaxRunners: 5, JobMs: 500, Reusable: true},
	"steady": {Name: "steady", Pools: 10, JobsPerPool: 600, MaxRunners: 40, JobMs: 1000, Rate: 20},
	// deep: one pool's queue far deeper than its runners.
	"deep": {Name: "deep", Pools: 1, JobsPerPool: 20000, MaxRunners: 200, JobMs: 100, GitHubBudget: 100000},
	// fanout: one pool starts a runner for each of 5,000 jobs at once.
	"fanout": {Name: "fanout", Pools: 1, JobsPerPool: 5000, MaxRunners: 5000, JobMs: 1000},
	// fleet: many small pools, then what they cost at rest.
	"fleet": {Name: "fleet", Pools: 2000, JobsPerPool: 2, MaxRunners: 2, JobMs: 1000, Rest: time.Minute, Settle: 2 * time.Minute,
		GitHubBudget: 100000},
	// ramp: the offered rate rises until waits pass RampLimit.
	"ramp": {Name: "ramp", Pools: 10, MaxRunners: 200, JobMs: 1000,
		Ramp: []float64{10, 20, 30, 40, 50, 60, 80, 100, 120}, Step: 30 * time.Second, GitHubBudget: 100000},
	"idle": {Name: "idle", Pools: 1, MaxRunners: 1, MinIdle: 1, Idle: time.Minute, Settle: 30 * time.Second},
	// intake: 5,000 queued webhooks, 64 in flight, for jobs no pool fits.
	"intake": {Name: "intake", Pools: 1, JobsPerPool: 5000, MaxRunners: 1, JobMs: 1000, Intake: true},
	// load-smoke keeps the ramp and at-rest harness working, in make test.
	"load-smoke": {Name: "load-smoke", Pools: 2, MaxRunners: 3, JobMs: 200, Ramp: []float64{2, 4}, Step: 12 * time.Second,
		Rest: 3 * time.Second},
	// idle-smoke keeps the idle harness working, in make test.
	"idle-smoke": {Name: "idle-smoke", Pools: 1, MaxRunners: 1, MinIdle: 1, Idle: 3 * time.Second},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "garo-bench:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("garo-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("scenario", envOr("BENCH", "small"), "scenario: "+strings.Join(slices.Sorted(maps.Keys(Scenarios)), ", "))
	out := fs.String("out", "bench/results", "directory of the JSON results")
	bin := fs.String("bin", "bin", "directory of garo, githubsim and temporal")
	temporalKind := fs.String("temporal", envOr("TEMPORAL", "dev"), "Temporal to run on: dev (the CLI's dev server on SQLite) or postgres (deploy/temporal's server on PostgreSQL)")
	deploy := fs.String("deploy", "deploy/temporal", "directory of deploy/temporal (its scripts and configuration), for -temporal postgres")
	keep := fs.Bool("keep", false, "keep the work directory (logs, Temporal's database)")
	pragmas := fs.String("sqlite-pragmas", strings.Join(devstack.SQLitePragmas, ","),
		"the dev server's SQLite pragmas, comma-separated, as garo dev sets them (empty: SQLite's defaults)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sc, ok := Scenarios[*name]
	if !ok {
		return fmt.Errorf("no scenario %q", *name)
	}
	if *temporalKind != "dev" && *temporalKind != "postgres" {
		return fmt.Errorf("-temporal %q: dev or postgres", *temporalKind)
	}
	postgres := *temporalKind == "postgres"
	if postgres && sc.Idle > 0 {
		return fmt.Errorf("scenario %s measures garo dev: it runs on the dev server only", sc.Name)
	}
	deployDir, err := filepath.Abs(*deploy)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "garo-bench-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(work)
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
	}
	logf("scenario %s: %d pools x %d jobs of %d ms, maxRunners %d; work dir %s", sc.Name, sc.Pools, sc.JobsPerPool, sc.JobMs, sc.MaxRunners, work)
	var pragmaList []string
	if *pragmas != "" {
		pragmaList = strings.Split(*pragmas, ",")
	}
	logf("SQLite pragmas: %q", pragmaList)
	res, err := runScenario(ctx, sc, *bin, work, pragmaList, postgres, deployDir, logf)
	if err != nil {
		return err
	}
	res.Temporal = *temporalKind
	if !postgres {
		res.SQLitePragmas = pragmaList
	}
	printTable(stdout, res)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	file := sc.Name
	if postgres {
		file += "-postgres"
	}
	path := filepath.Join(*out, fmt.Sprintf("%s-%s.json", file, res.StartedAt.Format("20060102T150405Z")))
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}
	logf("results in %s", path)
	if sc.Idle == 0 && (res.JobsCompleted != res.JobsEnqueued || res.RunnersLeft != 0) {
		return fmt.Errorf("%d of %d jobs completed (recorded, for intake), %d runners left", res.JobsCompleted, res.JobsEnqueued, res.RunnersLeft)
	}
	return nil
}

// runScenario starts the stack the scenario measures and measures it: the
// processes of make bench, or for an idle scenario garo dev itself.
func runScenario(ctx context.Context, sc Scenario, bin, work string, pragmas []string, postgres bool, deploy string, logf func(string, ...any)) (Result, error) {
	if sc.Idle > 0 {
		st, err := startDev(ctx, bin, work, logf)
		if st != nil {
			defer st.stop()
		}
		if err != nil {
			return Result{}, err
		}
		res := Result{Scenario: sc.Name, Version: os.Getenv("VERSION"), StartedAt: time.Now().UTC()}
		return res, measureIdle(ctx, st, sc, &res, logf)
	}
	st, err := startStack(ctx, bin, work, pragmas, postgres, deploy, sc.GitHubBudget, logf)
	if st != nil {
		defer st.stop()
	}
	if err != nil {
		return Result{}, err
	}
	return measure(ctx, st, sc, logf)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
