package tests

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/garo-run/garo/api/apiclient"
	"github.com/garo-run/garo/workflows"
)

func listed(t *testing.T, api *apiclient.Client, name string) (workflows.AgentState, bool) {
	t.Helper()
	agents, err := api.ListAgents(context.Background())
	require.NoError(t, err)
	for _, a := range agents {
		if a.Name == name {
			return a, true
		}
	}
	return workflows.AgentState{}, false
}

func getAgent(t *testing.T, api *apiclient.Client, name string) workflows.AgentState {
	t.Helper()
	st, err := api.GetAgent(context.Background(), name)
	require.NoError(t, err)
	return st.AgentState
}

// TestAgentLifecycle: an agent registers, is listed online with its worker
// proven by a probe on its own task queue, goes offline when it dies, comes
// back when it restarts, and stops when an operator unregisters it.
func TestAgentLifecycle(t *testing.T) {
	t.Parallel()
	const ns, name = "e2e-agents", "lab-1"
	url := startServer(t, ns, "--heartbeat-interval", "1s", "--offline-after", "3s")
	api := apiclient.New(url, adminToken)
	c := temporalClient(t, ns)

	a := startAgent(t, ns, url, name)
	eventually(t, 30*time.Second, "agent listed online with its worker seen", func() bool {
		st, ok := listed(t, api, name)
		return ok && st.Status == workflows.AgentOnline && st.WorkerSeenAt != nil
	})
	st := getAgent(t, api, name)
	assert.Equal(t, workflows.AgentOnline, st.Status)
	assert.Equal(t, "garo-agent-lab-1", st.TaskQueue)
	assert.Equal(t, []string{"linux", "e2e"}, st.Capabilities.Labels)
	require.NotNil(t, st.Worker)
	assert.Equal(t, a.cmd.Process.Pid, st.Worker.PID, "the probe was answered by the agent's own worker")
	firstRegistration := st.RegisteredAt

	// Heartbeats keep it online well past the offline timeout (3s).
	eventually(t, 20*time.Second, "heartbeats past the offline timeout", func() bool {
		st := getAgent(t, api, name)
		require.Equal(t, workflows.AgentOnline, st.Status)
		return st.LastHeartbeat.Sub(st.RegisteredAt) > 4*time.Second
	})

	// The run is findable in the Web UI by its search attribute.
	eventually(t, 10*time.Second, "workflow found by GaroAgent", func() bool {
		resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: ns, Query: "GaroAgent = 'lab-1' AND ExecutionStatus = 'Running'"})
		require.NoError(t, err)
		return len(resp.Executions) == 1 && resp.Executions[0].Execution.WorkflowId == "garo/agent/lab-1"
	})

	// A crashed agent goes offline once its heartbeats stop.
	a.kill()
	eventually(t, 15*time.Second, "agent offline after its crash", func() bool {
		return getAgent(t, api, name).Status == workflows.AgentOffline
	})
	eventually(t, 10*time.Second, "agent listed offline", func() bool {
		st, ok := listed(t, api, name)
		return ok && st.Status == workflows.AgentOffline
	})

	// Restarted, it registers again and its new worker is probed.
	a2 := startAgent(t, ns, url, name)
	eventually(t, 30*time.Second, "restarted agent online with its new worker, heartbeating", func() bool {
		st := getAgent(t, api, name)
		return st.Status == workflows.AgentOnline && st.Worker != nil && st.Worker.PID == a2.cmd.Process.Pid &&
			st.LastHeartbeat.After(st.RegisteredAt)
	})
	assert.True(t, getAgent(t, api, name).RegisteredAt.After(firstRegistration))

	// Unregistered by an operator: the record ends and the agent stops.
	first := unregister(t, api, name)
	assert.Contains(t, []workflows.AgentStatus{workflows.AgentUnregistering, workflows.AgentUnregistered}, first.Status)
	eventually(t, 10*time.Second, "agent gone from the list", func() bool {
		_, ok := listed(t, api, name)
		return !ok
	})
	select {
	case <-a2.done:
		assert.Error(t, a2.err, "an unregistered agent exits with an error")
		assert.Contains(t, a2.out.String(), "unregistered by an operator")
	case <-time.After(15 * time.Second):
		t.Fatal("the unregistered agent kept running")
	}
	d, err := c.DescribeWorkflow(context.Background(), "garo/agent/lab-1", "")
	require.NoError(t, err)
	assert.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, d.Status)

	history := historyJSON(t, c, "garo/agent/lab-1", d.WorkflowExecution.RunID)
	assert.False(t, strings.Contains(history, adminToken), "a secret is in the workflow history")
	for _, want := range []string{`"register"`, `"heartbeat"`, `"unregister"`, `"ProbeAgent"`, "garo-agent-lab-1", "timerFiredEventAttributes"} {
		assert.True(t, strings.Contains(history, want), "the recorded history lacks %s", want)
	}
	recordHistory(t, "agent_lifecycle.json", history)
}

// TestAgentStopsCleanly: an agent stopped with SIGTERM tells the server, so
// it shows offline at once rather than after the offline timeout.
func TestAgentStopsCleanly(t *testing.T) {
	t.Parallel()
	const ns, name = "e2e-stop", "edge-1"
	url := startServer(t, ns, "--heartbeat-interval", "1s", "--offline-after", "10m")
	api := apiclient.New(url, adminToken)
	a := startAgent(t, ns, url, name)
	eventually(t, 30*time.Second, "agent online", func() bool {
		st, err := api.GetAgent(context.Background(), name)
		return err == nil && st.Status == workflows.AgentOnline
	})
	require.NoError(t, a.signal(t, syscall.SIGTERM, 20*time.Second), "a clean stop exits 0")
	assert.Equal(t, workflows.AgentOffline, getAgent(t, api, name).Status)

	// The server restarts; the agent's record survives in Temporal and the
	// agent comes back without losing it.
	a2 := startAgent(t, ns, url, name)
	eventually(t, 30*time.Second, "agent online again", func() bool {
		st := getAgent(t, api, name)
		return st.Status == workflows.AgentOnline && st.Worker != nil && st.Worker.PID == a2.cmd.Process.Pid
	})
}

// unregister unregisters the agent called name, waits until its
// registration has ended (GET answers 404), and returns the first answer.
func unregister(t *testing.T, api *apiclient.Client, name string) apiclient.Agent {
	t.Helper()
	a, err := api.UnregisterAgent(context.Background(), name)
	require.NoError(t, err)
	eventually(t, 90*time.Second, "agent "+name+" unregistered", func() bool {
		_, err := api.GetAgent(context.Background(), name)
		return apiclient.IsStatus(err, http.StatusNotFound)
	})
	return a
}

// historyJSON returns the history of a run in the JSON form that
// worker.WorkflowReplayer reads.
func historyJSON(t *testing.T, c client.Client, id, runID string) string {
	t.Helper()
	var events []*historypb.HistoryEvent
	it := c.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		events = append(events, e)
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&historypb.History{Events: events})
	require.NoError(t, err)
	return string(b)
}

// recordRelease is the directory of workflows/testdata that this
// release's recordings go to.
const recordRelease = "v8"

// recordHistory writes a history into workflows/testdata/RELEASE and its
// line into MANIFEST when GARO_RECORD_HISTORIES is set, for the replay
// tests. It never overwrites one: a recorded history stands for workflows
// still running, so a change to a workflow records a new history under a
// new name beside the old.
func recordHistory(t *testing.T, file, history string) {
	if os.Getenv("GARO_RECORD_HISTORIES") == "" {
		return
	}
	dir := filepath.Join("..", "workflows", "testdata")
	rel := filepath.Join(recordRelease, file)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, recordRelease), 0o755))
	f, err := os.OpenFile(filepath.Join(dir, rel), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		t.Logf("kept %s: recorded histories are never overwritten; record a new one under a new name", rel)
		return
	}
	require.NoError(t, err)
	b := []byte(history + "\n")
	_, err = f.Write(b)
	require.NoError(t, errors.Join(err, f.Close()))
	sum := sha256.Sum256(b)
	m, err := os.OpenFile(filepath.Join(dir, "MANIFEST"), os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	_, err = fmt.Fprintf(m, "%s  %s\n", hex.EncodeToString(sum[:]), filepath.ToSlash(rel))
	require.NoError(t, errors.Join(err, m.Close()))
	t.Logf("recorded %s", rel)
}
