package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/garo-run/garo/api"
	"github.com/garo-run/garo/workflows"
)

// garo usage: what the runners did and cost over a window.
func usageCommands() []command {
	var window, agent string
	return []command{
		{name: "usage", args: "[OWNER/REPO]", nargs: [2]int{0, 1},
			summary: "jobs, queue wait, runner time and cost over a window: of every repository, one, or an agent's pools",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&window, "window", api.DefaultUsageWindow, "1h, 24h or 7d")
				fs.StringVar(&agent, "agent", "", "the pools this agent serves")
			},
			run: func(ctx context.Context, c *cli, args []string) error { return usageShow(ctx, c, args, window, agent) }},
	}
}

const usageHeader = "\tSERVED\tFAILED\tLOST\tWAIT P50\tWAIT P95\tWAIT MAX\tBUSY\tIDLE\tBOOTING\tBOOT FAILURES\tCOST\tWASTE"

func usageShow(ctx context.Context, c *cli, args []string, window, agent string) error {
	if _, err := workflows.ParseUsageWindow(window); err != nil {
		return err
	}
	switch {
	case len(args) == 1 && agent != "":
		return errors.New("give a repository or --agent, not both")
	case len(args) == 1:
		owner, repo, err := workflows.ParseRepository(args[0])
		if err != nil {
			return err
		}
		u, err := c.api.RepositoryUsage(ctx, owner, repo, window)
		if err != nil {
			return err
		}
		return c.out.print(u, "POOL (AGENT)"+usageHeader, func(tw io.Writer) {
			for _, p := range u.Pools {
				usageRow(tw, p.Pool+" ("+p.Agent+")", p.Figures)
			}
			usageRow(tw, "total, "+u.Window, u.Figures)
		})
	case agent != "":
		u, err := c.api.AgentUsage(ctx, agent, window)
		if err != nil {
			return err
		}
		return c.out.print(u, "REPOSITORY"+usageHeader, func(tw io.Writer) {
			for _, r := range u.Repositories {
				usageRow(tw, r.Repository, r.Figures)
			}
			usageRow(tw, "total, "+u.Window, u.Figures)
		})
	}
	u, err := c.api.Usage(ctx, window)
	if err != nil {
		return err
	}
	return c.out.print(u, "REPOSITORY"+usageHeader, func(tw io.Writer) {
		for _, r := range u.TopByCost {
			usageRow(tw, r.Repository, r.Figures)
		}
		usageRow(tw, fmt.Sprintf("total of %d repositories, %s", u.Repositories, u.Window), u.Figures)
	})
}

func usageRow(tw io.Writer, name string, f api.UsageFigures) {
	w := f.QueueWait
	wait := func(s float64) string {
		if w.Count == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1fs", s)
	}
	fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%.1fm\t%.1fm\t%.1fm\t%d\t%s\t%s\n", name, f.Jobs.Served, f.Jobs.Failed,
		f.Jobs.Lost, wait(w.P50), wait(w.P95), wait(w.Max), f.RunnerMinutes.Busy, f.RunnerMinutes.Idle,
		f.RunnerMinutes.Booting, f.BootstrapFailures, money(f.Cost.Total), money(f.Cost.Waste))
}

// money shows a cost to the cent, or to 1/10000 below a cent.
func money(x float64) string {
	if x > 0 && x < 0.005 {
		return fmt.Sprintf("%.4f", x)
	}
	return fmt.Sprintf("%.2f", x)
}
