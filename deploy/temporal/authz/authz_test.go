package authz

import (
	"context"
	"crypto/x509/pkix"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	tokenspb "go.temporal.io/server/api/token/v1"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/tasktoken"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

var cfg = Config{Namespace: "garo", Servers: []string{"garo-server"}, Admins: []string{"operator"}}

func claims(t *testing.T, cn string) *authorization.Claims {
	t.Helper()
	c, err := NewClaimMapper(cfg).GetClaims(&authorization.AuthInfo{TLSSubject: &pkix.Name{CommonName: cn}})
	require.NoError(t, err)
	return c
}

func allowed(t *testing.T, cn, namespace string, request any) bool {
	t.Helper()
	res, err := NewAuthorizer(cfg).Authorize(context.Background(), claims(t, cn),
		&authorization.CallTarget{APIName: "/temporal.api.workflowservice.v1.WorkflowService/Any", Namespace: namespace, Request: request})
	require.NoError(t, err)
	return res.Decision == authorization.DecisionAllow
}

func token(t *testing.T, activityID string) []byte {
	t.Helper()
	b, err := tasktoken.NewSerializer().Serialize(&tokenspb.Task{WorkflowId: "garo/repo/o/r", ActivityId: activityID})
	require.NoError(t, err)
	return b
}

func poll(queue string) *workflowservice.PollActivityTaskQueueRequest {
	return &workflowservice.PollActivityTaskQueueRequest{Namespace: "garo", TaskQueue: &taskqueuepb.TaskQueue{Name: queue}}
}

// TestAnAgentReachesOnlyItsOwnTaskQueue: agent a polls and answers its own
// queue's activities, and nothing of agent b's, of the server's, or of
// the workflows.
func TestAnAgentReachesOnlyItsOwnTaskQueue(t *testing.T) {
	assert.True(t, allowed(t, "agent:a", "garo", poll("garo-agent-a")))
	assert.True(t, allowed(t, "agent:a", "garo", &workflowservice.DescribeNamespaceRequest{Namespace: "garo"}))
	assert.True(t, allowed(t, "agent:a", "garo", &workflowservice.ShutdownWorkerRequest{Namespace: "garo"}))
	assert.True(t, allowed(t, "agent:a", "", &workflowservice.GetSystemInfoRequest{}))
	for _, id := range []string{"agent/a/create/r-1/1", "agent/a/reconcile/3"} {
		tok := token(t, id)
		assert.True(t, allowed(t, "agent:a", "garo", &workflowservice.RecordActivityTaskHeartbeatRequest{TaskToken: tok}), id)
		assert.True(t, allowed(t, "agent:a", "garo", &workflowservice.RespondActivityTaskCompletedRequest{TaskToken: tok}), id)
		assert.True(t, allowed(t, "agent:a", "garo", &workflowservice.RespondActivityTaskFailedRequest{TaskToken: tok}), id)
		assert.True(t, allowed(t, "agent:a", "garo", &workflowservice.RespondActivityTaskCanceledRequest{TaskToken: tok}), id)
	}
	assert.True(t, allowed(t, "agent:a", "garo", &workflowservice.RespondActivityTaskCompletedByIdRequest{ActivityId: "agent/a/watch/r/2"}))

	refused := map[string]any{
		"another agent's queue":           poll("garo-agent-b"),
		"an agent whose name extends its": poll("garo-agent-ab"),
		"the server's queue":              poll("garo-server"),
		"another agent's activity":        &workflowservice.RespondActivityTaskCompletedRequest{TaskToken: token(t, "agent/b/create/r/1")},
		"a prefix of another's name":      &workflowservice.RespondActivityTaskCompletedRequest{TaskToken: token(t, "agent/ab/create/r/1")},
		"a server activity":               &workflowservice.RespondActivityTaskFailedRequest{TaskToken: token(t, "7")},
		"a heartbeat of another's":        &workflowservice.RecordActivityTaskHeartbeatRequest{TaskToken: token(t, "agent/b/watch/r/1")},
		"another's activity by id":        &workflowservice.RespondActivityTaskCompletedByIdRequest{ActivityId: "agent/b/watch/r/2"},
		"a forged token":                  &workflowservice.RespondActivityTaskCompletedRequest{TaskToken: []byte("not a token")},
		"workflow tasks":                  &workflowservice.PollWorkflowTaskQueueRequest{Namespace: "garo", TaskQueue: &taskqueuepb.TaskQueue{Name: "garo-agent-a"}},
		"starting a workflow":             &workflowservice.StartWorkflowExecutionRequest{Namespace: "garo"},
		"signalling a workflow":           &workflowservice.SignalWorkflowExecutionRequest{Namespace: "garo"},
		"querying a workflow":             &workflowservice.QueryWorkflowRequest{Namespace: "garo"},
		"reading a history":               &workflowservice.GetWorkflowExecutionHistoryRequest{Namespace: "garo"},
		"listing workflows":               &workflowservice.ListWorkflowExecutionsRequest{Namespace: "garo"},
		"terminating a workflow":          &workflowservice.TerminateWorkflowExecutionRequest{Namespace: "garo"},
		"updating a workflow":             &workflowservice.UpdateWorkflowExecutionRequest{Namespace: "garo"},
		"describing a workflow":           &workflowservice.DescribeWorkflowExecutionRequest{Namespace: "garo"},
		"resetting a workflow":            &workflowservice.ResetWorkflowExecutionRequest{Namespace: "garo"},
		"describing another's task queue": &workflowservice.DescribeTaskQueueRequest{Namespace: "garo"},
		"listing namespaces":              &workflowservice.ListNamespacesRequest{},
	}
	for what, req := range refused {
		assert.False(t, allowed(t, "agent:a", "garo", req), what)
	}
	assert.False(t, allowed(t, "agent:a", "other", poll("garo-agent-a")), "its own queue in another namespace")
}

// TestTheServerHasItsNamespaceAndOperatorsEverything: the server may do
// anything in Garo's namespace and nothing in another; an operator
// anything; a certificate of no known identity, or none, nothing.
func TestTheServerHasItsNamespaceAndOperatorsEverything(t *testing.T) {
	for _, req := range []any{poll("garo-server"), poll("garo-agent-a"), &workflowservice.StartWorkflowExecutionRequest{Namespace: "garo"},
		&workflowservice.SignalWorkflowExecutionRequest{Namespace: "garo"}, &workflowservice.QueryWorkflowRequest{Namespace: "garo"}} {
		assert.True(t, allowed(t, "garo-server", "garo", req))
		assert.True(t, allowed(t, "operator", "garo", req))
		assert.True(t, allowed(t, "operator", "other", req))
		assert.False(t, allowed(t, "garo-server", "other", req), "another namespace")
		assert.False(t, allowed(t, "stranger", "garo", req))
		assert.False(t, allowed(t, "", "garo", req))
	}
	assert.False(t, allowed(t, "garo-server", "", &workflowservice.ListNamespacesRequest{}), "cluster-wide calls")
	assert.True(t, allowed(t, "operator", "", &workflowservice.ListNamespacesRequest{}))
	assert.True(t, allowed(t, "stranger", "", &workflowservice.GetSystemInfoRequest{}), "before anything else")
	res, err := NewAuthorizer(cfg).Authorize(context.Background(), claims(t, "garo-server"),
		&authorization.CallTarget{APIName: "/grpc.health.v1.Health/Check", Request: &healthpb.HealthCheckRequest{}})
	require.NoError(t, err)
	assert.Equal(t, authorization.DecisionAllow, res.Decision, "health checks")

	res, err = NewAuthorizer(cfg).Authorize(context.Background(), nil,
		&authorization.CallTarget{Namespace: "garo", Request: &workflowservice.StartWorkflowExecutionRequest{}})
	require.NoError(t, err)
	assert.Equal(t, authorization.DecisionDeny, res.Decision, "no claims")
}
