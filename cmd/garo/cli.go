package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/garo-run/garo/api/apiclient"
	"github.com/garo-run/garo/internal/envflag"
	"github.com/garo-run/garo/workflows"
)

const cliUsage = `Operator commands, on the REST API (--server, --token; env GARO_SERVER, GARO_TOKEN):
  garo repo list
  garo repo get OWNER/REPO
  garo repo set OWNER/REPO [--agent A] [--labels a,b] [--min-idle N] [--max-runners N]
                           [--idle-grace D] [--bootstrap-timeout D] [--ephemeral=B] [--runner-group G] [--provider KIND]
  garo repo delete OWNER/REPO     drain the pool, then remove it
  garo agent list
  garo agent get NAME
  garo agent create NAME          prints the agent's token, once
  garo agent delete NAME          drain the agent's pools, then unregister it
  garo runners OWNER/REPO
  garo jobs OWNER/REPO
Output is a table; -o json prints JSON.
`

// cliFlags are the flags every operator command takes.
type cliFlags struct {
	server string
	token  string
	output string
}

func (c *cliFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", "http://localhost:8080", "URL of garo server")
	fs.StringVar(&c.token, "token", "", "bearer token (prefer the environment variable: flags show in process listings)")
	fs.StringVar(&c.output, "o", "table", "output: table or json")
}

// runCLI runs an operator command: args[0] is "repo", "agent", "runners"
// or "jobs".
func runCLI(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cmd := args[0]
	sub := ""
	rest := args[1:]
	if cmd == "repo" || cmd == "agent" {
		if len(rest) == 0 {
			fmt.Fprint(stderr, cliUsage)
			return errors.New(cmd + ": which subcommand?")
		}
		sub, rest = rest[0], rest[1:]
	}
	fs := newFlagSet(strings.TrimSpace(cmd+" "+sub), stderr)
	var cf cliFlags
	cf.register(fs)
	var set *poolFlags
	if cmd == "repo" && sub == "set" {
		set = &poolFlags{}
		set.register(fs)
	}
	// Flags may follow the positional argument: garo repo get o/r -o json.
	var pos []string
	for len(rest) > 0 {
		if !strings.HasPrefix(rest[0], "-") {
			pos, rest = append(pos, rest[0]), rest[1:]
			continue
		}
		if err := envflag.Parse(fs, "GARO", rest, getenv); err != nil {
			return err
		}
		rest = fs.Args()
	}
	if !fs.Parsed() {
		if err := envflag.Parse(fs, "GARO", nil, getenv); err != nil {
			return err
		}
	}
	if cf.token == "" {
		return errors.New("no token: set GARO_TOKEN (or --token)")
	}
	if cf.output != "table" && cf.output != "json" {
		return fmt.Errorf("-o %q: want table or json", cf.output)
	}
	api := apiclient.New(cf.server, cf.token)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out := &printer{w: stdout, json: cf.output == "json"}

	one := func() (string, error) {
		if len(pos) != 1 {
			return "", fmt.Errorf("%s %s takes one argument", cmd, sub)
		}
		return pos[0], nil
	}
	repoArg := func() (string, string, error) {
		arg, err := one()
		if err != nil {
			return "", "", err
		}
		return workflows.ParseRepository(arg)
	}
	switch cmd + " " + sub {
	case "repo list":
		pools, err := api.ListPools(ctx)
		if err != nil {
			return err
		}
		return out.pools(pools)
	case "repo get":
		owner, repo, err := repoArg()
		if err != nil {
			return err
		}
		v, err := api.GetPool(ctx, owner, repo)
		if err != nil {
			return err
		}
		return out.pool(v)
	case "repo set":
		owner, repo, err := repoArg()
		if err != nil {
			return err
		}
		req := workflows.PoolConfigRequest{}
		if cur, err := api.GetPool(ctx, owner, repo); err == nil {
			req = requestOf(cur.Config)
		} else if !apiclient.IsStatus(err, 404) {
			return err
		}
		set.apply(fs, &req)
		v, err := api.ConfigurePool(ctx, owner, repo, req)
		if err != nil {
			return err
		}
		return out.pool(v)
	case "repo delete":
		owner, repo, err := repoArg()
		if err != nil {
			return err
		}
		v, err := api.DrainPool(ctx, owner, repo)
		if err != nil {
			return err
		}
		return out.pool(v)
	case "agent list":
		agents, err := api.ListAgents(ctx)
		if err != nil {
			return err
		}
		return out.agents(agents)
	case "agent create":
		name, err := one()
		if err != nil {
			return err
		}
		created, err := api.CreateAgent(ctx, name)
		if err != nil {
			return err
		}
		if out.json {
			return out.table(created, "", nil)
		}
		fmt.Fprintf(stdout, "Agent %s created. Its token, shown this once (give it to the agent as GARO_TOKEN):\n%s\n", name, created.Token)
		return nil
	case "agent get", "agent delete":
		name, err := one()
		if err != nil {
			return err
		}
		var st workflows.AgentState
		if sub == "get" {
			st, err = api.GetAgent(ctx, name)
		} else {
			st, err = api.UnregisterAgent(ctx, name)
		}
		if err != nil {
			return err
		}
		return out.agent(st)
	case "runners ", "jobs ":
		owner, repo, err := repoArg()
		if err != nil {
			return err
		}
		v, err := api.GetPool(ctx, owner, repo)
		if err != nil {
			return err
		}
		if cmd == "runners" {
			return out.runners(v.Runners)
		}
		return out.jobs(v.Queue)
	}
	fmt.Fprint(stderr, cliUsage)
	return fmt.Errorf("unknown command %q", strings.TrimSpace(cmd+" "+sub))
}

// poolFlags are the settable fields of garo repo set; only flags given
// change the pool.
type poolFlags struct {
	agent, group, provider, labels string
	minIdle, maxRunners            int
	grace, bootstrap               time.Duration
	ephemeral                      bool
}

func (p *poolFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.agent, "agent", "", "agent that serves the pool")
	fs.StringVar(&p.labels, "labels", "", "comma-separated runner labels")
	fs.IntVar(&p.minIdle, "min-idle", 0, "idle runners to keep")
	fs.IntVar(&p.maxRunners, "max-runners", 0, "most runners at once")
	fs.DurationVar(&p.grace, "idle-grace", 0, "idle time before an extra runner is deleted")
	fs.DurationVar(&p.bootstrap, "bootstrap-timeout", 0, "time for a new runner to come online")
	fs.BoolVar(&p.ephemeral, "ephemeral", true, "one job per runner (JIT)")
	fs.StringVar(&p.group, "runner-group", "", `runner group: "default" or an id`)
	fs.StringVar(&p.provider, "provider", "", "provider kind")
}

func (p *poolFlags) apply(fs *flag.FlagSet, r *workflows.PoolConfigRequest) {
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "agent":
			r.Agent = &p.agent
		case "labels":
			r.Labels = strings.Split(p.labels, ",")
		case "min-idle":
			r.MinIdle = &p.minIdle
		case "max-runners":
			r.MaxRunners = &p.maxRunners
		case "idle-grace":
			d := workflows.Duration(p.grace)
			r.IdleGracePeriod = &d
		case "bootstrap-timeout":
			d := workflows.Duration(p.bootstrap)
			r.BootstrapTimeout = &d
		case "ephemeral":
			r.Ephemeral = &p.ephemeral
		case "runner-group":
			r.RunnerGroup = &p.group
		case "provider":
			r.Provider = workflows.ProviderConfig{"kind": p.provider}
		}
	})
}

// requestOf turns a pool's config back into a request, so that set
// changes only what its flags name.
func requestOf(c workflows.PoolConfig) workflows.PoolConfigRequest {
	return workflows.PoolConfigRequest{Agent: &c.Agent, Labels: c.Labels, MinIdle: &c.MinIdle, MaxRunners: &c.MaxRunners,
		IdleGracePeriod: &c.IdleGracePeriod, BootstrapTimeout: &c.BootstrapTimeout, Ephemeral: &c.Ephemeral,
		RunnerGroup: &c.RunnerGroup, Provider: c.Provider}
}

// printer writes tables or JSON.
type printer struct {
	w    io.Writer
	json bool
}

func (p *printer) table(v any, header string, rows func(tw io.Writer)) error {
	if p.json {
		enc := json.NewEncoder(p.w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	rows(tw)
	return tw.Flush()
}

func (p *printer) pools(pools []workflows.PoolView) error {
	return p.table(pools, "REPOSITORY\tAGENT\tMIN\tMAX\tPROVISIONING\tIDLE\tBUSY\tQUEUED\tSTATUS", func(tw io.Writer) {
		for _, v := range pools {
			c := v.Counts
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", v.Repository, v.Config.Agent, v.Config.MinIdle,
				v.Config.MaxRunners, c.Provisioning, c.Idle, c.Busy, c.Queued, poolStatus(v))
		}
	})
}

// pool prints one pool: a one-row table, or the object in JSON.
func (p *printer) pool(v workflows.PoolView) error {
	if p.json {
		return p.table(v, "", nil)
	}
	return p.pools([]workflows.PoolView{v})
}

// agent prints one agent: a one-row table, or the object in JSON.
func (p *printer) agent(a workflows.AgentState) error {
	if p.json {
		return p.table(a, "", nil)
	}
	return p.agents([]workflows.AgentState{a})
}

func poolStatus(v workflows.PoolView) string {
	switch {
	case v.Draining:
		return "draining"
	case v.AgentOffline:
		return "agent offline"
	case v.Degraded:
		return "degraded: " + v.LastError
	}
	return "ok"
}

func (p *printer) agents(agents []workflows.AgentState) error {
	return p.table(agents, "NAME\tSTATUS\tPROVIDERS\tVERSION\tLAST HEARTBEAT", func(tw io.Writer) {
		for _, a := range agents {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Name, a.Status, strings.Join(a.Capabilities.Providers, ","),
				a.Capabilities.Version, ago(a.LastHeartbeat))
		}
	})
}

func (p *printer) runners(rs []workflows.RunnerView) error {
	return p.table(rs, "NAME\tSTATE\tRUNNER ID\tJOB\tAGE", func(tw io.Writer) {
		for _, r := range rs {
			job := ""
			if r.JobID != 0 {
				job = fmt.Sprint(r.JobID)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", r.Name, r.State, r.RunnerID, job, ago(r.CreatedAt))
		}
	})
}

func (p *printer) jobs(js []workflows.QueuedJob) error {
	return p.table(js, "JOB\tRUN\tNAME\tLABELS\tWAITING", func(tw io.Writer) {
		for _, j := range js {
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\n", j.JobID, j.RunID, j.Name, strings.Join(j.Labels, ","), ago(j.QueuedAt))
		}
	})
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String()
}
