package agentpools

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/api/serviceerror"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/internal/temporalclient"
	"github.com/garo-run/garo/workflows"
)

// registeredOrUnscheduled reports whether agent is registered; when it is
// not, it deletes the agent's schedule (its reaper's or its sweep's),
// which ends with it.
func (a *Activities) registeredOrUnscheduled(ctx context.Context, agent, schedule string) (bool, error) {
	if err := workflows.ValidateAgentName(agent); err != nil {
		return false, err
	}
	registered, err := temporalclient.Running(ctx, a.Client, workflows.AgentWorkflowID(agent))
	if err != nil {
		return false, fmt.Errorf("describe agent %s: %w", agent, err)
	}
	if registered {
		return true, nil
	}
	err = a.Client.ScheduleClient().GetHandle(ctx, schedule).Delete(ctx)
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) {
		return false, fmt.Errorf("delete schedule %s of agent %s: %w", schedule, agent, err)
	}
	return false, nil
}

// ReaperScope tells an agent's reaper whether the agent is registered and
// which repositories have pools of it. The schedule of an agent that is
// no longer registered is deleted here: its reaper ends with it.
func (a *Activities) ReaperScope(ctx context.Context, agent string) (activities.ReaperScope, error) {
	if registered, err := a.registeredOrUnscheduled(ctx, agent, workflows.ReaperScheduleID(agent)); err != nil || !registered {
		return activities.ReaperScope{}, err
	}
	ids, err := a.poolsOf(ctx, agent)
	if err != nil {
		return activities.ReaperScope{}, err
	}
	scope := activities.ReaperScope{Registered: true}
	for _, id := range ids {
		repo := activities.Repo{}
		if ref, ok := workflows.ParsePoolWorkflowID(id); ok {
			repo = activities.Repo{Owner: ref.Owner, Name: ref.Repo}
		} else if owner, name, ok := strings.Cut(strings.TrimPrefix(id, "garo/repo/"), "/"); ok {
			repo = activities.Repo{Owner: owner, Name: name}
		}
		if repo.Owner != "" && !slices.Contains(scope.Repositories, repo) {
			scope.Repositories = append(scope.Repositories, repo)
		}
	}
	return scope, nil
}

// ReaperOwned returns the items (as owner/repo/runner) whose runner
// workflow is running. A lookup that fails fails the whole answer: the
// reaper removes nothing it is not sure of.
func (a *Activities) ReaperOwned(ctx context.Context, items []activities.ReaperItem) ([]string, error) {
	var owned []string
	for _, it := range items {
		running, err := temporalclient.Running(ctx, a.Client, workflows.RunnerWorkflowID(it.Repo.Owner, it.Repo.Name, it.Name))
		if err != nil {
			return nil, fmt.Errorf("describe the workflow of runner %s: %w", it, err)
		}
		if running {
			owned = append(owned, it.String())
		}
	}
	return owned, nil
}
