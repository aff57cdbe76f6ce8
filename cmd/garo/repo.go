package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/garo-run/garo/workflows"
)

// garo repo: repositories, each with its pools. repo set and repo delete
// are pool set and pool delete of a repository's default pool, as before
// a repository had several.
func repoCommands() []command {
	var set poolFlags
	return []command{
		{name: "repo list", nargs: [2]int{0, 0}, summary: "every repository with its pools, a line each", run: repoList},
		{name: "repo get", args: "OWNER/REPO", nargs: [2]int{1, 1}, summary: "a repository's pools and how many queued jobs fit none",
			run: repoGet},
		{name: "repo set", args: "OWNER/REPO", nargs: [2]int{1, 1},
			summary: "create or change the default pool; only the fields its flags name change", flags: set.register,
			run: func(ctx context.Context, c *cli, args []string) error {
				owner, repo, err := repoArg(args[0])
				if err != nil {
					return err
				}
				return setPool(ctx, c, &set, owner, repo, "")
			}},
		{name: "repo delete", args: "OWNER/REPO", nargs: [2]int{1, 1}, summary: "drain the default pool, then remove it",
			run: func(ctx context.Context, c *cli, args []string) error {
				owner, repo, err := repoArg(args[0])
				if err != nil {
					return err
				}
				return deletePool(ctx, c, owner, repo, "")
			}},
	}
}

// repoArg reads OWNER/REPO, which is not one of its pools.
func repoArg(arg string) (owner, repo string, err error) {
	if owner, repo, err = workflows.ParseRepository(arg); err != nil {
		return "", "", fmt.Errorf("%w (garo pool set|delete OWNER/REPO/POOL for a pool other than the default)", err)
	}
	return owner, repo, nil
}

// repoRow sums the pools of one repository.
type repoRow struct {
	Repository string   `json:"repository"`
	Pools      []string `json:"pools"`
	Agents     []string `json:"agents"`
	Runners    int      `json:"runners"`
	Queued     int      `json:"queued"`
	Status     string   `json:"status"`
}

func repoList(ctx context.Context, c *cli, _ []string) error {
	pools, err := c.api.AllPools(ctx)
	if err != nil {
		return err
	}
	byRepo := map[string]*repoRow{}
	var rows []*repoRow
	for _, p := range pools {
		row := byRepo[p.Repository]
		if row == nil {
			row = &repoRow{Repository: p.Repository, Status: "ok"}
			byRepo[p.Repository] = row
			rows = append(rows, row)
		}
		row.Pools = append(row.Pools, p.Pool)
		if !slices.Contains(row.Agents, p.Config.Agent) {
			row.Agents = append(row.Agents, p.Config.Agent)
		}
		row.Runners += p.Counts.Provisioning + p.Counts.Idle + p.Counts.Busy + p.Counts.Deleting
		row.Queued += p.Counts.Queued
		if st := poolStatus(p); st != "ok" {
			row.Status = p.Pool + ": " + st
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Repository < rows[j].Repository })
	return c.out.print(rows, "REPOSITORY\tPOOLS\tAGENTS\tRUNNERS\tQUEUED\tSTATUS", func(tw io.Writer) {
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", r.Repository, strings.Join(r.Pools, ","), strings.Join(r.Agents, ","),
				r.Runners, r.Queued, r.Status)
		}
	})
}

func repoGet(ctx context.Context, c *cli, args []string) error {
	owner, repo, pools, err := repoPools(ctx, c, args[0])
	if err != nil {
		return err
	}
	unmatched, err := c.api.Unmatched(ctx, owner, repo)
	if err != nil {
		return err
	}
	if c.out.json {
		return c.out.print(map[string]any{"repository": owner + "/" + repo, "pools": pools,
			"unmatchedJobs": len(unmatched.Jobs), "unmatchedTotal": unmatched.Total}, "", nil)
	}
	if err := c.out.pools(pools); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "\n%d queued jobs fit no pool (garo unmatched %s/%s); %d since the first pool.\n",
		len(unmatched.Jobs), owner, repo, unmatched.Total)
	return nil
}
