package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/garo-run/garo/api/apiclient"
	"github.com/garo-run/garo/workflows"
)

// garo pool: the runner pools of a repository.
func poolCommands() []command {
	var set poolFlags
	return []command{
		{name: "pool list", args: "[OWNER/REPO]", nargs: [2]int{0, 1}, summary: "the pools of a repository, or of every repository",
			run: poolList},
		{name: "pool get", args: "OWNER/REPO[/POOL]", nargs: [2]int{1, 1}, summary: "one pool (POOL default: default)", run: poolGet},
		{name: "pool set", args: "OWNER/REPO[/POOL]", nargs: [2]int{1, 1},
			summary: "create or change a pool; only the fields its flags name change", flags: set.register,
			run: func(ctx context.Context, c *cli, args []string) error { return poolSet(ctx, c, &set, args) }},
		{name: "pool delete", args: "OWNER/REPO[/POOL]", nargs: [2]int{1, 1}, summary: "drain the pool, then remove it", run: poolDelete},
	}
}

func poolList(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		pools, err := c.api.AllPools(ctx)
		if err != nil {
			return err
		}
		return c.out.pools(pools)
	}
	_, _, pools, err := repoPools(ctx, c, args[0])
	if err != nil {
		return err
	}
	return c.out.pools(pools)
}

// repoPools gets the pools of the repository OWNER/REPO.
func repoPools(ctx context.Context, c *cli, arg string) (owner, repo string, pools []workflows.PoolView, err error) {
	if owner, repo, err = workflows.ParseRepository(arg); err != nil {
		return "", "", nil, err
	}
	pools, err = c.api.ListPools(ctx, owner, repo)
	return owner, repo, pools, err
}

func poolGet(ctx context.Context, c *cli, args []string) error {
	owner, repo, pool, err := parsePoolArg(args[0])
	if err != nil {
		return err
	}
	v, err := c.api.GetPool(ctx, owner, repo, pool)
	if err != nil {
		return err
	}
	return c.out.pool(v)
}

func poolSet(ctx context.Context, c *cli, set *poolFlags, args []string) error {
	owner, repo, pool, err := parsePoolArg(args[0])
	if err != nil {
		return err
	}
	req := workflows.PoolConfigRequest{}
	if cur, err := c.api.GetPool(ctx, owner, repo, pool); err == nil {
		req = requestOf(cur.Config)
	} else if !apiclient.IsStatus(err, 404) {
		return err
	}
	set.apply(c.fs, &req)
	v, err := c.api.ConfigurePool(ctx, owner, repo, pool, req)
	if err != nil {
		return err
	}
	return c.out.pool(v)
}

func poolDelete(ctx context.Context, c *cli, args []string) error {
	owner, repo, pool, err := parsePoolArg(args[0])
	if err != nil {
		return err
	}
	v, err := c.api.DrainPool(ctx, owner, repo, pool)
	if err != nil {
		return err
	}
	return c.out.pool(v)
}

// poolFlags are the settable fields of garo pool set; only flags given
// change the pool.
type poolFlags struct {
	agent, group, provider, labels string
	minIdle, maxRunners            int
	grace, bootstrap, poll         time.Duration
	ephemeral                      bool
}

func (p *poolFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.agent, "agent", "", "agent that serves the pool")
	fs.StringVar(&p.labels, "labels", "", "comma-separated runner labels")
	fs.IntVar(&p.minIdle, "min-idle", 0, "idle runners to keep")
	fs.IntVar(&p.maxRunners, "max-runners", 0, "most runners at once")
	fs.DurationVar(&p.grace, "idle-grace", 0, "idle time before an extra runner is deleted")
	fs.DurationVar(&p.bootstrap, "bootstrap-timeout", 0, "time for a new runner to come online")
	fs.DurationVar(&p.poll, "queue-poll-interval", 0, "how often to ask GitHub for queued jobs whose webhook was missed (0s: never)")
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
			r.IdleGracePeriod = durationOf(p.grace)
		case "bootstrap-timeout":
			r.BootstrapTimeout = durationOf(p.bootstrap)
		case "queue-poll-interval":
			r.QueuePollInterval = durationOf(p.poll)
		case "ephemeral":
			r.Ephemeral = &p.ephemeral
		case "runner-group":
			r.RunnerGroup = &p.group
		case "provider":
			r.Provider = workflows.ProviderConfig{"kind": p.provider}
		}
	})
}

func durationOf(d time.Duration) *workflows.Duration {
	w := workflows.Duration(d)
	return &w
}

// requestOf turns a pool's config back into a request, so that set
// changes only what its flags name.
func requestOf(c workflows.PoolConfig) workflows.PoolConfigRequest {
	return workflows.PoolConfigRequest{Agent: &c.Agent, Labels: c.Labels, MinIdle: &c.MinIdle, MaxRunners: &c.MaxRunners,
		IdleGracePeriod: &c.IdleGracePeriod, BootstrapTimeout: &c.BootstrapTimeout, QueuePollInterval: &c.QueuePollInterval,
		Ephemeral: &c.Ephemeral, RunnerGroup: &c.RunnerGroup, Provider: c.Provider}
}

func (p *printer) pools(pools []workflows.PoolView) error {
	return p.print(pools, "REPOSITORY\tPOOL\tAGENT\tLABELS\tMIN\tMAX\tPROVISIONING\tIDLE\tBUSY\tQUEUED\tSTATUS", func(tw io.Writer) {
		for _, v := range pools {
			c := v.Counts
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", v.Repository, v.Pool, v.Config.Agent,
				strings.Join(v.Config.Labels, ","), v.Config.MinIdle, v.Config.MaxRunners, c.Provisioning, c.Idle, c.Busy, c.Queued,
				poolStatus(v))
		}
	})
}

// pool prints one pool: a one-row table, or the object in JSON.
func (p *printer) pool(v workflows.PoolView) error {
	if p.json {
		return p.print(v, "", nil)
	}
	return p.pools([]workflows.PoolView{v})
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
