package runners

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/activities/provider"
)

// TestReaperLooksOnlyAtGarosOwn: the inventory has the agent's tagged
// instance and the registrations Garo named, not another tool's runner
// nor an instance without the agent's tag; removal deletes both kinds,
// counts them, and treats what is already gone as removed.
func TestReaperLooksOnlyAtGarosOwn(t *testing.T) {
	e := newEnv(t)
	e.a.Reaped = NewReapedCounter(prometheus.NewRegistry())
	in := createInput(true)
	in.Name = "garo-abcdef-1"
	_, err := e.create(t, in)
	require.NoError(t, err)
	_, err = e.proc.Create(t.Context(), provider.CreateRequest{Name: "not-garos", Tags: map[string]string{"team": "x"}})
	require.NoError(t, err)
	_, err = e.gh.CreateJITConfig(t.Context(), activities.Repo{Owner: "octo", Name: "app"}, "other-tool-runner", []string{"self-hosted"}, 1)
	require.NoError(t, err)

	v, err := e.act.ExecuteActivity(activities.ReaperInventoryName, activities.ReaperInventoryInput{Agent: "lab-1"})
	require.NoError(t, err)
	var inv activities.ReaperInventory
	require.NoError(t, v.Get(&inv))
	require.Len(t, inv.Instances, 1)
	assert.Equal(t, "octo/app/garo-abcdef-1", inv.Instances[0].String())
	require.Len(t, inv.Registrations, 1, "the repository is found from the instance's tag; other runners are not Garo's")
	assert.Equal(t, "garo-abcdef-1", inv.Registrations[0].Name)

	v, err = e.act.ExecuteActivity(activities.ReaperRemoveName, activities.ReaperRemoveInput{Agent: "lab-1",
		Instances: inv.Instances, Registrations: inv.Registrations})
	require.NoError(t, err)
	var out activities.ReaperRemoved
	require.NoError(t, v.Get(&out))
	assert.Equal(t, []string{"octo/app/garo-abcdef-1"}, out.Instances)
	assert.Equal(t, []string{"octo/app/garo-abcdef-1"}, out.Registrations)
	_, err = e.proc.Get(t.Context(), "garo-abcdef-1")
	assert.ErrorIs(t, err, provider.ErrNotFound)
	_, err = e.proc.Get(t.Context(), "not-garos")
	assert.NoError(t, err, "an instance without the agent's tag is never touched")
	assert.Equal(t, 1.0, testutil.ToFloat64(e.a.Reaped.WithLabelValues("instance")))
	assert.Equal(t, 1.0, testutil.ToFloat64(e.a.Reaped.WithLabelValues("registration")))
}
