package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/garo-run/garo/workflows"
)

// garo agents: the registered agents (garo agent is the agent process).
func agentsCommands() []command {
	return []command{
		{name: "agents list", nargs: [2]int{0, 0}, summary: "every registered agent", run: agentsList},
		{name: "agents get", args: "NAME", nargs: [2]int{1, 1}, summary: "one agent's record", run: agentsGet},
		{name: "agents create", args: "NAME", nargs: [2]int{1, 1}, summary: "create an agent; prints its token, once", run: agentsCreate},
		{name: "agents delete", args: "NAME", nargs: [2]int{1, 1}, summary: "drain the agent's pools, then unregister it", run: agentsDelete},
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
	st, err := c.api.GetAgent(ctx, args[0])
	if err != nil {
		return err
	}
	return c.out.agent(st)
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

func agentsDelete(ctx context.Context, c *cli, args []string) error {
	st, err := c.api.UnregisterAgent(ctx, args[0])
	if err != nil {
		return err
	}
	return c.out.agent(st)
}

func (p *printer) agents(agents []workflows.AgentState) error {
	return p.print(agents, "NAME\tSTATUS\tPROVIDERS\tVERSION\tLAST HEARTBEAT", func(tw io.Writer) {
		for _, a := range agents {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Name, a.Status, strings.Join(a.Capabilities.Providers, ","),
				a.Capabilities.Version, ago(a.LastHeartbeat))
		}
	})
}

// agent prints one agent: a one-row table, or the object in JSON.
func (p *printer) agent(a workflows.AgentState) error {
	if p.json {
		return p.print(a, "", nil)
	}
	return p.agents([]workflows.AgentState{a})
}
