package tests

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/api/apiclient"
	"github.com/garo-run/garo/workflows"
)

// TestAgentsAndReadersWithTheirOwnTokens: an agent created by an admin
// runs with its own token and reaches only its own endpoints; a reader
// reads and cannot write; tokens are kept (hashed) in Temporal, so a second
// server knows them too; revoked or unregistered, a token stops working.
func TestAgentsAndReadersWithTheirOwnTokens(t *testing.T) {
	t.Parallel()
	const ns = "e2e-tokens"
	url := startServer(t, ns, "--heartbeat-interval", "1s", "--offline-after", "5s")
	admin := apiclient.New(url, adminToken)
	ctx := context.Background()

	code, out, errOut := garo(t, url, adminToken, "agents", "create", "tok-1")
	require.Equal(t, 0, code, errOut)
	i := strings.Index(out, "garoa_tok-1_")
	require.GreaterOrEqual(t, i, 0, out)
	agentToken := strings.TrimSpace(out[i:])
	other, err := admin.CreateAgent(ctx, "tok-2")
	require.NoError(t, err)

	a := start(t, "agent tok-1", []string{"GARO_TOKEN=" + agentToken}, "agent", "--name", "tok-1", "--server", url,
		"--temporal-address", temporalAddr, "--temporal-namespace", ns)
	eventually(t, 30*time.Second, "agent online with its own token", func() bool {
		st, err := admin.GetAgent(ctx, "tok-1")
		return err == nil && st.Status == workflows.AgentOnline && st.WorkerSeenAt != nil
	})
	self := apiclient.New(url, agentToken)
	_, err = self.GetAgent(ctx, "tok-1")
	require.NoError(t, err)
	_, err = self.GetAgent(ctx, "tok-2")
	assert.True(t, apiclient.IsStatus(err, http.StatusForbidden), "another agent's endpoint: %v", err)
	_, err = self.ListAgents(ctx)
	assert.True(t, apiclient.IsStatus(err, http.StatusForbidden), "%v", err)
	_, err = apiclient.New(url, other.Token).Heartbeat(ctx, "tok-1", false)
	assert.True(t, apiclient.IsStatus(err, http.StatusForbidden), "%v", err)

	rt, err := admin.CreateToken(ctx, "portal", workflows.RoleReader)
	require.NoError(t, err)
	reader := apiclient.New(url, rt.Token)
	agents, err := reader.ListAgents(ctx)
	require.NoError(t, err)
	assert.NotEmpty(t, agents)
	cfg := workflows.DefaultPoolConfig()
	cfg.Agent, cfg.MinIdle = "tok-1", 1
	_, err = reader.ConfigurePool(ctx, "e2e", "tok", "", cfg)
	assert.True(t, apiclient.IsStatus(err, http.StatusForbidden), "a reader cannot write: %v", err)

	// A second server replica knows the same tokens: they live in Temporal.
	url2 := startServer(t, ns)
	_, err = apiclient.New(url2, rt.Token).ListAgents(ctx)
	require.NoError(t, err)
	require.NoError(t, admin.RevokeToken(ctx, rt.ID))
	_, err = reader.ListAgents(ctx)
	assert.True(t, apiclient.IsStatus(err, http.StatusUnauthorized), "revoked at once where it was revoked: %v", err)
	eventually(t, 10*time.Second, "revoked on the replica within 5s", func() bool {
		_, err := apiclient.New(url2, rt.Token).ListAgents(ctx)
		return apiclient.IsStatus(err, http.StatusUnauthorized)
	})

	// Unregistered, the agent's token no longer opens anything; the agent stops.
	_, err = admin.UnregisterAgent(ctx, "tok-1")
	require.NoError(t, err)
	select {
	case <-a.done:
		assert.Error(t, a.err)
	case <-time.After(20 * time.Second):
		t.Fatal("the unregistered agent kept running")
	}
	eventually(t, 10*time.Second, "the agent's token rejected", func() bool {
		_, err := self.GetAgent(ctx, "tok-1")
		return apiclient.IsStatus(err, http.StatusUnauthorized)
	})
}
