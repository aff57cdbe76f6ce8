package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
)

// poolTargetsVersion is the workflow.GetVersion change after which a pool
// asks its agent's status when it is made or moved to another agent, and a
// config change cancels the runners provisioning beyond the new target. A
// run that began before it keeps, to its end, starting runners on an agent
// it has heard nothing of, and lets surplus runners come up.
const poolTargetsVersion = "pool-agent-and-target"

// onAgent pauses or resumes provisioning in the pools of an agent that
// went offline or came back. It is news newer than any answer a pool is
// still waiting for.
func (r *repository) onAgent(ev AgentStatusEvent) {
	for _, p := range r.pools {
		if ev.Agent != p.s.Config.Agent {
			continue
		}
		if p.s.AgentUnchecked || p.s.AgentOffline == ev.Online {
			p.s.AgentOffline, p.s.AgentUnchecked, r.dirty = !ev.Online, false, true
			p.log.Info("Pool's agent status changed", "agent", ev.Agent, "online", ev.Online)
			if ev.Online {
				// What happened while it was away is learnt from GitHub.
				r.pollNow = true
			}
		}
	}
}

// askAgents asks, for each pool that has not learnt it yet, whether its
// agent is online (activity AgentOnline on the server's queue). A pool
// starts no runner until it knows. If the question fails the pool takes
// its agent for online, as a pool did before it could ask, and learns of
// the next change from the agent's workflow.
func (r *repository) askAgents(ctx workflow.Context) {
	for _, p := range r.pools {
		if !p.s.AgentUnchecked || p.asking || p.s.Draining {
			continue
		}
		p.asking = true
		agent := p.s.Config.Agent
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:           ServerTaskQueue,
			StartToCloseTimeout: 30 * time.Second,
			Summary:             "is agent " + agent + " online?",
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 5},
		})
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer func() { p.asking, r.dirty = false, true }()
			online := true // what the pool takes if it cannot learn
			if err := workflow.ExecuteActivity(actx, activities.AgentOnlineName, agent).Get(ctx, &online); err != nil {
				p.log.Warn("Could not learn whether the pool's agent is online; taking it for online", "agent", agent, "error", err)
			}
			if p.s.AgentUnchecked && p.s.Config.Agent == agent {
				p.s.AgentOffline, p.s.AgentUnchecked = !online, false
				if !online {
					p.log.Info("The pool's agent is offline; runners start when it is back", "agent", agent)
				}
			}
		})
	}
}
