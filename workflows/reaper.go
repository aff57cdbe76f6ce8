package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
)

// ReaperWorkflow removes what an agent's runners left behind: instances
// whose runner workflow has ended (it died before deleting them) and GitHub
// registrations no runner workflow owns (an ephemeral runner lost mid-job,
// a create that crashed after registering). Ownership is decided by name:
// an item is owned while the RunnerWorkflow of that name runs, whatever
// the item's age. A busy registration is never removed, and nothing
// without Garo's mark is looked at: instances carry the agent's tag,
// registrations Garo's runner names.
//
// The inventory is taken on the agent before ownership is checked on the
// server, so an item a runner workflow is creating belongs to a workflow
// that is already running, and is kept.
func ReaperWorkflow(ctx workflow.Context, in ReaperInput) (ReaperResult, error) {
	if err := ValidateAgentName(in.Agent); err != nil {
		return ReaperResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidRequest, nil)
	}
	lg := log.With(workflow.GetLogger(ctx), "agent", in.Agent)
	if err := ensureSearchAttribute(ctx, SearchAttributeAgent, in.Agent); err != nil {
		return ReaperResult{}, err
	}
	res, err := reap(ctx, lg, in.Agent)
	if err != nil {
		return res, err
	}
	removed := len(res.Instances) + len(res.Registrations)
	if err := workflow.UpsertTypedSearchAttributes(ctx, SearchAttributeReaped.ValueSet(int64(removed))); err != nil {
		return res, fmt.Errorf("upsert search attribute %s: %w", SearchAttributeReaped.GetName(), err)
	}
	workflow.SetCurrentDetails(ctx, "Reaper of agent **"+in.Agent+"**: "+res.Summary()+".")
	if removed > 0 || len(res.Busy) > 0 {
		lg.Info("Reaper removed orphans", "instances", res.Instances, "registrations", res.Registrations, "keptBusy", res.Busy)
	}
	return res, nil
}

func reap(ctx workflow.Context, lg log.Logger, agent string) (ReaperResult, error) {
	var res ReaperResult
	server := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           ServerTaskQueue,
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 5},
	})
	// The agent's calls wait a minute for it; an agent that is away is
	// reaped at a later run.
	supported(ctx, agentActivityIDsVersion)
	onAgent := func(what string, n int) workflow.Context {
		return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:              AgentTaskQueue(agent),
			ActivityID:             AgentActivityID(agent, what, n),
			ScheduleToStartTimeout: time.Minute,
			StartToCloseTimeout:    2 * time.Minute,
			RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3},
		})
	}
	var scope activities.ReaperScope
	if err := workflow.ExecuteActivity(server, activities.ReaperScopeName, agent).Get(ctx, &scope); err != nil {
		return res, err
	}
	if !scope.Registered {
		lg.Info("Agent unregistered; its reaper's schedule is deleted")
		res.AgentGone = true
		return res, nil
	}
	var inv activities.ReaperInventory
	err := workflow.ExecuteActivity(onAgent("reap-inventory", 1), activities.ReaperInventoryName,
		activities.ReaperInventoryInput{Agent: agent, Repositories: scope.Repositories}).Get(ctx, &inv)
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		lg.Warn("Agent did not answer the reaper; the next run tries again", "error", err)
		res.Skipped = "the agent did not answer"
		return res, nil
	} else if err != nil {
		return res, err
	}
	all := append(append([]activities.ReaperItem{}, inv.Instances...), inv.Registrations...)
	if len(all) == 0 {
		return res, nil
	}
	var owned []string
	if err := workflow.ExecuteActivity(server, activities.ReaperOwnedName, all).Get(ctx, &owned); err != nil {
		return res, err
	}
	orphans := activities.ReaperRemoveInput{Agent: agent}
	for _, i := range inv.Instances {
		if !slices.Contains(owned, i.String()) {
			orphans.Instances = append(orphans.Instances, i)
		}
	}
	for _, r := range inv.Registrations {
		switch {
		case slices.Contains(owned, r.String()):
		case r.Busy:
			res.Busy = append(res.Busy, r.String())
		default:
			orphans.Registrations = append(orphans.Registrations, r)
		}
	}
	if len(orphans.Instances)+len(orphans.Registrations) == 0 {
		return res, nil
	}
	var removed activities.ReaperRemoved
	if err := workflow.ExecuteActivity(onAgent("reap-remove", 2), activities.ReaperRemoveName, orphans).Get(ctx, &removed); err != nil {
		return res, err
	}
	res.Instances, res.Registrations = removed.Instances, removed.Registrations
	res.Busy = append(res.Busy, removed.Busy...)
	return res, nil
}
