// Command garo-bench measures Garo end to end on this machine: it starts
// a Temporal dev server, the GitHub simulator, garo server and one garo
// agent whose runners the simulator hosts (the sim provider: no process
// per runner), configures pools, enqueues jobs, waits until every job has
// completed and every pool has settled, and reports what it cost: time,
// GitHub requests, Temporal history and actions, CPU and memory of each
// process. It prints a table and writes JSON to bench/results.
//
//	garo-bench [-scenario small|burst|wide|reuse|steady|idle|smoke] [-out DIR]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
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
}

// Scenarios, chosen with -scenario (or BENCH in make bench).
var Scenarios = map[string]Scenario{
	"smoke":  {Name: "smoke", Pools: 2, JobsPerPool: 5, MaxRunners: 3, JobMs: 200},
	"small":  {Name: "small", Pools: 10, JobsPerPool: 50, MaxRunners: 10, JobMs: 1000},
	"burst":  {Name: "burst", Pools: 1, JobsPerPool: 2000, MaxRunners: 200, JobMs: 2000},
	"wide":   {Name: "wide", Pools: 500, JobsPerPool: 4, MaxRunners: 2, JobMs: 1000},
	"reuse":  {Name: "reuse", Pools: 5, JobsPerPool: 40, MaxRunners: 5, JobMs: 500, Reusable: true},
	"steady": {Name: "steady", Pools: 10, JobsPerPool: 600, MaxRunners: 40, JobMs: 1000, Rate: 20},
	"idle":   {Name: "idle", Pools: 1, MaxRunners: 1, MinIdle: 1, Idle: time.Minute, Settle: 30 * time.Second},
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
	name := fs.String("scenario", envOr("BENCH", "small"), "scenario: smoke, small, burst, wide, reuse, steady or idle")
	out := fs.String("out", "bench/results", "directory of the JSON results")
	bin := fs.String("bin", "bin", "directory of garo, githubsim and temporal")
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
	res, err := runScenario(ctx, sc, *bin, work, pragmaList, logf)
	if err != nil {
		return err
	}
	res.SQLitePragmas = pragmaList
	printTable(stdout, res)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	path := filepath.Join(*out, fmt.Sprintf("%s-%s.json", sc.Name, res.StartedAt.Format("20060102T150405Z")))
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}
	logf("results in %s", path)
	if sc.Idle == 0 && (res.JobsCompleted != res.JobsEnqueued || res.RunnersLeft != 0) {
		return fmt.Errorf("%d of %d jobs completed, %d runners left", res.JobsCompleted, res.JobsEnqueued, res.RunnersLeft)
	}
	return nil
}

// runScenario starts the stack the scenario measures and measures it: the
// processes of make bench, or for an idle scenario garo dev itself.
func runScenario(ctx context.Context, sc Scenario, bin, work string, pragmas []string, logf func(string, ...any)) (Result, error) {
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
	st, err := startStack(ctx, bin, work, pragmas, logf)
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
