package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

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

// poolSet sends the fields its flags name, as a merge patch: the pool's
// other fields stay as they are (a new pool takes the defaults).
func poolSet(ctx context.Context, c *cli, set *poolFlags, args []string) error {
	owner, repo, pool, err := parsePoolArg(args[0])
	if err != nil {
		return err
	}
	return setPool(ctx, c, set, owner, repo, pool)
}

// setPool patches a pool; pool "" is the default pool, by the repository's
// own route.
func setPool(ctx context.Context, c *cli, set *poolFlags, owner, repo, pool string) error {
	patch, err := set.patch(c.fs)
	if err != nil {
		return err
	}
	v, err := c.api.PatchPool(ctx, owner, repo, pool, patch)
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
	return deletePool(ctx, c, owner, repo, pool)
}

// deletePool drains a pool; pool "" is the default pool.
func deletePool(ctx context.Context, c *cli, owner, repo, pool string) error {
	v, err := c.api.DrainPool(ctx, owner, repo, pool)
	if err != nil {
		return err
	}
	return c.out.pool(v)
}

// poolFlags are the flags of garo pool set: one per field of the pool's
// config (workflows.PoolFields), in the field's text form.
type poolFlags struct {
	values map[string]*poolFlag // by flag name
}

func (p *poolFlags) register(fs *flag.FlagSet) {
	p.values = map[string]*poolFlag{}
	for _, f := range workflows.PoolFields() {
		v := &poolFlag{field: f}
		p.values[f.Flag] = v
		fs.Var(v, f.Flag, f.Usage+" (default "+f.Default+")")
	}
}

// patch is the merge patch of the flags given.
func (p *poolFlags) patch(fs *flag.FlagSet) ([]byte, error) {
	texts := map[string]string{}
	fs.Visit(func(f *flag.Flag) {
		if v, ok := p.values[f.Name]; ok {
			texts[v.field.Name] = v.text
		}
	})
	return workflows.PoolPatch(texts)
}

// poolFlag is the flag of one field: its text, checked as it is set.
type poolFlag struct {
	field workflows.PoolField
	text  string
}

func (v *poolFlag) String() string   { return v.text }
func (v *poolFlag) IsBoolFlag() bool { return v.field.Bool }

func (v *poolFlag) Set(text string) error {
	if _, err := v.field.JSON(text); err != nil {
		return err
	}
	v.text = text
	return nil
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
