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

// garo agents: the registered agents (garo agent is the agent process).
func agentsCommands() []command {
	var wait bool
	return []command{
		{name: "agents list", nargs: [2]int{0, 0}, summary: "every registered agent", run: agentsList},
		{name: "agents get", args: "NAME", nargs: [2]int{1, 1}, summary: "one agent's record", run: agentsGet},
		{name: "agents create", args: "NAME", nargs: [2]int{1, 1}, summary: "create an agent; prints its token, once", run: agentsCreate},
		{name: "agents delete", args: "NAME", nargs: [2]int{1, 1}, long: true,
			summary: "unregister the agent: its pools drain, then it ends",
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&wait, "wait", false, "wait until the drain has ended, showing its progress")
			},
			run: func(ctx context.Context, c *cli, args []string) error { return agentsDelete(ctx, c, args, wait) }},
	}
}

func agentsList(ctx context.Context, c *cli, _ []string) error {
	agents, err := c.api.ListAgents(ctx)
	if err != nil {
		return err
	}
	return c.out.agents(agents)
}

func agentsGet(ctx context.Context, c *cli, args []string) error {
	a, err := c.api.GetAgent(ctx, args[0])
	if err != nil {
		return err
	}
	return c.out.agent(a)
}

func agentsCreate(ctx context.Context, c *cli, args []string) error {
	created, err := c.api.CreateAgent(ctx, args[0])
	if err != nil {
		return err
	}
	if c.out.json {
		return c.out.print(created, "", nil)
	}
	fmt.Fprintf(c.stdout, "Agent %s created. Its token, shown this once (give it to the agent as GARO_TOKEN):\n%s\n", args[0], created.Token)
	return nil
}

// drainPoll is how often agents delete --wait looks at the drain.
const drainPoll = 2 * time.Second

func agentsDelete(ctx context.Context, c *cli, args []string, wait bool) error {
	name := args[0]
	a, err := c.api.UnregisterAgent(ctx, name)
	if err != nil {
		return err
	}
	if !wait {
		return c.out.agent(a)
	}
	last := ""
	for {
		if p := drainLine(a); p != last && !c.out.json {
			fmt.Fprintf(c.stdout, "%s %s\n", time.Now().Format(time.TimeOnly), p)
			last = p
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("agent %s is still unregistering: %w", name, ctx.Err())
		case <-time.After(drainPoll):
		}
		if a, err = c.api.GetAgent(ctx, name); apiclient.IsStatus(err, 404) || apiclient.IsStatus(err, 410) {
			a.Name, a.Status, a.Drain = name, workflows.AgentUnregistered, nil
			if !c.out.json {
				fmt.Fprintf(c.stdout, "%s %s\n", time.Now().Format(time.TimeOnly), drainLine(a))
				return nil
			}
			return c.out.agent(a)
		} else if err != nil {
			return err
		}
	}
}

// drainLine tells how far an agent's unregistration has got.
func drainLine(a apiclient.Agent) string {
	if d := a.Drain; d != nil {
		return fmt.Sprintf("agent %s %s: %d pools of %d repositories draining, %d runners left", a.Name, a.Status, d.Pools,
			d.Repositories, d.Runners)
	}
	return fmt.Sprintf("agent %s %s", a.Name, a.Status)
}

func (p *printer) agents(agents []workflows.AgentState) error {
	return p.print(agents, "NAME\tSTATUS\tPROVIDERS\tVERSION\tLAST HEARTBEAT", func(tw io.Writer) {
		for _, a := range agents {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Name, a.Status, strings.Join(a.Capabilities.Providers, ","),
				a.Capabilities.Version, ago(a.LastHeartbeat))
		}
	})
}

// agent prints one agent: a one-row table and, while it unregisters, the
// drain's progress; or the object in JSON.
func (p *printer) agent(a apiclient.Agent) error {
	if p.json {
		return p.print(a, "", nil)
	}
	if err := p.agents([]workflows.AgentState{a.AgentState}); err != nil {
		return err
	}
	if a.Drain != nil {
		fmt.Fprintln(p.w, drainLine(a))
	}
	return nil
}
