package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
)

// SweepWorkflow's contract: one Temporal Schedule per agent,
// `garo/sweep/NAME`, starts a SweepWorkflow on the server's task queue
// every SweepEvery (overlaps skipped). A dormant pool (no job, no runner)
// sets no timer of its own, so that thousands of them cost nothing at
// rest; the sweep looks, on the agent, at the repositories of the agent's
// dormant pools, each at its pools' queuePollInterval, for runs queued or
// in progress (conditional requests: an unchanged answer costs no rate
// limit), and asks the pools of those that have some to reconcile: a job
// whose webhook was lost is found so. GaroAgent is the agent.
const SweepWorkflowName = "SweepWorkflow"

// SweepEvery is how often an agent's sweep runs.
const SweepEvery = 30 * time.Second

// SweepScheduleID is the id of the schedule of agent's sweep.
func SweepScheduleID(agent string) string { return "garo/sweep/" + agent }

// SweepInput starts a SweepWorkflow.
type SweepInput struct {
	Agent string `json:"agent"`
}

// SweepResult is what one run of the sweep did.
type SweepResult struct {
	// Repos is how many repositories the agent had dormant pools in,
	// Found how many had runs, Told how many pools were asked to
	// reconcile.
	Repos int `json:"repos"`
	Found int `json:"found"`
	Told  int `json:"told"`
	// AgentGone: the agent is not registered any more; its schedule was
	// deleted. Skipped says why nothing was looked at.
	AgentGone bool   `json:"agentGone,omitempty"`
	Skipped   string `json:"skipped,omitempty"`
}

// SweepWorkflow runs an agent's sweep once.
func SweepWorkflow(ctx workflow.Context, in SweepInput) (SweepResult, error) {
	if err := ValidateAgentName(in.Agent); err != nil {
		return SweepResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidRequest, nil)
	}
	server := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           ServerTaskQueue,
		StartToCloseTimeout: time.Minute,
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3},
	})
	var scope activities.SweepScope
	if err := workflow.ExecuteActivity(server, activities.SweepScopeName, in.Agent).Get(ctx, &scope); err != nil {
		return SweepResult{}, err
	}
	res := SweepResult{Repos: len(scope.Repos)}
	switch {
	case !scope.Registered:
		res.AgentGone = true
		return res, nil
	case len(scope.Repos) == 0:
		return res, nil
	}
	// The agent has a minute to take it; an agent that is away is swept
	// at a later run.
	onAgent := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              AgentTaskQueue(in.Agent),
		ActivityID:             AgentActivityID(in.Agent, "sweep", 1),
		ScheduleToStartTimeout: time.Minute,
		StartToCloseTimeout:    2 * time.Minute,
		HeartbeatTimeout:       30 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 2},
	})
	var found []activities.Repo
	err := workflow.ExecuteActivity(onAgent, activities.SweepReposName, scope.Repos).Get(ctx, &found)
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		res.Skipped = "the agent did not answer"
		return res, nil
	} else if err != nil {
		return res, err
	}
	res.Found = len(found)
	if len(found) == 0 {
		return res, nil
	}
	var tell []activities.SweepRepo
	for _, r := range scope.Repos {
		for _, f := range found {
			if f == r.Repo {
				tell = append(tell, r)
			}
		}
	}
	if err := workflow.ExecuteActivity(server, activities.SweepSignalName, tell).Get(ctx, &res.Told); err != nil {
		return res, err
	}
	workflow.GetLogger(ctx).Info("Sweep found runs in repositories of dormant pools; they reconcile", "agent", in.Agent,
		"repositories", res.Found, "pools", res.Told)
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("Sweep of agent **%s**: %d repositories looked at, runs in %d, %d pools told.",
		in.Agent, res.Repos, res.Found, res.Told))
	return res, nil
}
