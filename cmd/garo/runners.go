package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/garo-run/garo/api/apiclient"
	"github.com/garo-run/garo/workflows"
)

// garo runners, jobs and unmatched: what a repository's pools run and
// what waits.
func runnerCommands() []command {
	return []command{
		{name: "runners", args: "OWNER/REPO", nargs: [2]int{1, 1}, summary: "the runners of every pool of a repository", run: runnersList},
		{name: "jobs", args: "OWNER/REPO", nargs: [2]int{1, 1}, summary: "the jobs waiting for a runner, oldest first", run: jobsList},
		{name: "unmatched", args: "OWNER/REPO", nargs: [2]int{1, 1}, summary: "the queued jobs no pool fits", run: unmatchedList},
	}
}

func runnersList(ctx context.Context, c *cli, args []string) error {
	owner, repo, err := workflows.ParseRepository(args[0])
	if err != nil {
		return err
	}
	rs, err := c.api.Runners(ctx, owner, repo)
	if err != nil {
		return err
	}
	return c.out.print(rs, "NAME\tPOOL\tSTATE\tRUNNER ID\tJOB\tAGE", func(tw io.Writer) {
		for _, r := range rs {
			job := ""
			if r.JobID != 0 {
				job = fmt.Sprint(r.JobID)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.Name, r.Pool, r.State, r.RunnerID, job, ago(r.CreatedAt))
		}
	})
}

func jobsList(ctx context.Context, c *cli, args []string) error {
	owner, repo, err := workflows.ParseRepository(args[0])
	if err != nil {
		return err
	}
	js, err := c.api.Jobs(ctx, owner, repo)
	if err != nil {
		return err
	}
	return c.out.print(js, "JOB\tRUN\tPOOL\tNAME\tLABELS\tWAITING", func(tw io.Writer) {
		for _, j := range js {
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\n", j.JobID, j.RunID, j.Pool, j.Name, strings.Join(j.Labels, ","), ago(j.QueuedAt))
		}
	})
}

func unmatchedList(ctx context.Context, c *cli, args []string) error {
	owner, repo, err := workflows.ParseRepository(args[0])
	if err != nil {
		return err
	}
	u, err := c.api.Unmatched(ctx, owner, repo)
	if err != nil {
		return err
	}
	if u.Jobs == nil {
		u.Jobs = []apiclient.UnmatchedJob{}
	}
	return c.out.print(u, "JOB\tRUN\tNAME\tLABELS\tWAITING", func(tw io.Writer) {
		for _, j := range u.Jobs {
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\n", j.JobID, j.RunID, j.Name, strings.Join(j.Labels, ","), j.Age)
		}
	})
}
