package workflows

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
)

var octo = activities.Repo{Owner: "octo", Name: "app"}

func item(name string, busy bool) activities.ReaperItem {
	return activities.ReaperItem{Repo: octo, Name: name, RunnerID: 1, Busy: busy}
}

// newReaperEnv runs a ReaperWorkflow whose agent is registered and has
// inv; owned are the items whose runner workflow runs. It records what
// the reaper asked to remove.
func newReaperEnv(t *testing.T, registered bool, inv activities.ReaperInventory, owned []string, removeAsked *activities.ReaperRemoveInput) *testsuite.TestWorkflowEnvironment {
	env := quietSuite().NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(ReaperWorkflow, workflow.RegisterOptions{Name: ReaperWorkflowName})
	env.RegisterActivityWithOptions(func(context.Context, string) (activities.ReaperScope, error) {
		return activities.ReaperScope{Registered: registered, Repositories: []activities.Repo{octo}}, nil
	}, activity.RegisterOptions{Name: activities.ReaperScopeName})
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.ReaperInventoryInput) (activities.ReaperInventory, error) {
		assert.Equal(t, []activities.Repo{octo}, in.Repositories)
		assert.Equal(t, AgentActivityID(in.Agent, "reap-inventory", 1), activity.GetInfo(ctx).ActivityID,
			"an agent's activities are named after it, for Temporal's authorizer")
		return inv, nil
	}, activity.RegisterOptions{Name: activities.ReaperInventoryName})
	env.RegisterActivityWithOptions(func(context.Context, []activities.ReaperItem) ([]string, error) { return owned, nil },
		activity.RegisterOptions{Name: activities.ReaperOwnedName})
	env.RegisterActivityWithOptions(func(ctx context.Context, in activities.ReaperRemoveInput) (activities.ReaperRemoved, error) {
		assert.Equal(t, AgentActivityID(in.Agent, "reap-remove", 2), activity.GetInfo(ctx).ActivityID)
		*removeAsked = in
		var out activities.ReaperRemoved
		for _, i := range in.Instances {
			out.Instances = append(out.Instances, i.String())
		}
		for _, r := range in.Registrations {
			out.Registrations = append(out.Registrations, r.String())
		}
		return out, nil
	}, activity.RegisterOptions{Name: activities.ReaperRemoveName})
	return env
}

// TestReaperRemovesWhatNoRunnerWorkflowOwns: of the agent's instances and
// registrations, those whose runner workflow runs are kept, a busy
// registration is kept although no workflow owns it, and the rest is
// removed and counted in GaroReaped.
func TestReaperRemovesWhatNoRunnerWorkflowOwns(t *testing.T) {
	var asked activities.ReaperRemoveInput
	inv := activities.ReaperInventory{
		Instances:     []activities.ReaperItem{item("garo-abcdef-1", false), item("garo-abcdef-2", false)},
		Registrations: []activities.ReaperItem{item("garo-abcdef-1", false), item("garo-abcdef-3", false), item("garo-abcdef-4", true)},
	}
	env := newReaperEnv(t, true, inv, []string{"octo/app/garo-abcdef-1"}, &asked)
	reaped := int64(-1)
	env.OnUpsertTypedSearchAttributes(mock.Anything).Return(nil).Run(func(args mock.Arguments) {
		if v, ok := args.Get(0).(temporal.SearchAttributes).GetInt64(SearchAttributeReaped); ok {
			reaped = v
		}
	})
	env.ExecuteWorkflow(ReaperWorkflowName, ReaperInput{Agent: "lab-1"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res ReaperResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Equal(t, []activities.ReaperItem{item("garo-abcdef-2", false)}, asked.Instances, "the instance no workflow owns")
	assert.Equal(t, []activities.ReaperItem{item("garo-abcdef-3", false)}, asked.Registrations, "the idle registration no workflow owns")
	assert.Equal(t, []string{"octo/app/garo-abcdef-2"}, res.Instances)
	assert.Equal(t, []string{"octo/app/garo-abcdef-3"}, res.Registrations)
	assert.Equal(t, []string{"octo/app/garo-abcdef-4"}, res.Busy, "a busy runner is never removed")
	assert.Equal(t, int64(2), reaped, "GaroReaped counts what was removed")
}

// TestReaperOfAnUnregisteredAgentEnds: the scope reports the agent gone
// (and has deleted the schedule): nothing is listed or removed.
func TestReaperOfAnUnregisteredAgentEnds(t *testing.T) {
	var asked activities.ReaperRemoveInput
	env := newReaperEnv(t, false, activities.ReaperInventory{Instances: []activities.ReaperItem{item("garo-abcdef-2", false)}}, nil, &asked)
	env.ExecuteWorkflow(ReaperWorkflowName, ReaperInput{Agent: "lab-1"})
	require.NoError(t, env.GetWorkflowError())
	var res ReaperResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.True(t, res.AgentGone)
	assert.Empty(t, asked.Instances)
}

// TestReaperSkipsAnAgentThatDoesNotAnswer: an agent away leaves its
// inventory unanswered: the run ends without removing anything, and the
// next one tries again.
func TestReaperSkipsAnAgentThatDoesNotAnswer(t *testing.T) {
	var asked activities.ReaperRemoveInput
	env := newReaperEnv(t, true, activities.ReaperInventory{}, nil, &asked)
	env.OnActivity(activities.ReaperInventoryName, mock.Anything, mock.Anything).Return(activities.ReaperInventory{},
		temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil))
	env.ExecuteWorkflow(ReaperWorkflowName, ReaperInput{Agent: "lab-1"})
	require.NoError(t, env.GetWorkflowError())
	var res ReaperResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Equal(t, "the agent did not answer", res.Skipped)
}
