// Package authz is Temporal's authorization for Garo: a claim mapper that
// names each caller by the common name of its mTLS client certificate,
// and an authorizer that lets an agent reach only its own task queue.
//
// Identities, by certificate common name:
//   - "agent:NAME": agent NAME. It may poll activity tasks of task queue
//     garo-agent-NAME in Garo's namespace, and answer and heartbeat the
//     activities whose ids start with "agent/NAME/" (the task token is not
//     signed, so its activity id is checked), describe the namespace and
//     shut its worker down. Nothing else: no starting, signalling,
//     querying, reading or terminating of workflows.
//   - one of Config.Servers: garo server, with every right in Garo's
//     namespace and none outside it.
//   - one of Config.Admins: an operator, with every right.
//
// Anyone may ask GetSystemInfo, which clients call before anything else,
// and gRPC's health check.
package authz

import (
	"context"
	"crypto/x509/pkix"
	"slices"
	"strings"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/tasktoken"
)

// healthAPI is gRPC's health service, which load balancers and readiness
// checks call: open to anyone, it tells nothing but that the frontend is
// up.
const healthAPI = "/grpc.health.v1.Health/"

// AgentPrefix starts the common name of an agent's certificate.
const AgentPrefix = "agent:"

// Config names Garo's namespace and the identities of its servers and of
// operators.
type Config struct {
	Namespace string
	Servers   []string
	Admins    []string
}

// ClaimMapper names a caller by its client certificate's common name.
type ClaimMapper struct{ cfg Config }

// NewClaimMapper returns the claim mapper of cfg.
func NewClaimMapper(cfg Config) *ClaimMapper { return &ClaimMapper{cfg: cfg} }

// GetClaims maps the caller's certificate to its claims: an operator is a
// system admin, a server an admin of Garo's namespace, an agent (or anyone
// else) a subject without roles, whom the Authorizer judges call by call.
func (m *ClaimMapper) GetClaims(info *authorization.AuthInfo) (*authorization.Claims, error) {
	cn := commonName(info.TLSSubject)
	switch {
	case cn == "":
		return &authorization.Claims{}, nil
	case slices.Contains(m.cfg.Admins, cn):
		return &authorization.Claims{Subject: cn, System: authorization.RoleAdmin}, nil
	case slices.Contains(m.cfg.Servers, cn):
		return &authorization.Claims{Subject: cn,
			Namespaces: map[string]authorization.Role{m.cfg.Namespace: authorization.RoleAdmin}}, nil
	}
	return &authorization.Claims{Subject: cn}, nil
}

// AuthInfoRequired tells Temporal to map claims for every call, with or
// without a certificate.
func (m *ClaimMapper) AuthInfoRequired() bool { return true }

func commonName(n *pkix.Name) string {
	if n == nil {
		return ""
	}
	return n.CommonName
}

// Authorizer allows a call by the caller's claims and what the call
// reaches.
type Authorizer struct {
	cfg    Config
	tokens *tasktoken.Serializer
}

// NewAuthorizer returns the authorizer of cfg.
func NewAuthorizer(cfg Config) *Authorizer {
	return &Authorizer{cfg: cfg, tokens: tasktoken.NewSerializer()}
}

var (
	allow = authorization.Result{Decision: authorization.DecisionAllow}
	deny  = authorization.Result{Decision: authorization.DecisionDeny}
)

// Authorize decides one call.
func (a *Authorizer) Authorize(_ context.Context, c *authorization.Claims, t *authorization.CallTarget) (authorization.Result, error) {
	if _, ok := t.Request.(*workflowservice.GetSystemInfoRequest); ok || strings.HasPrefix(t.APIName, healthAPI) {
		return allow, nil
	}
	if c == nil {
		return deny, nil
	}
	if c.System&authorization.RoleAdmin != 0 {
		return allow, nil
	}
	if t.Namespace != "" && c.Namespaces[t.Namespace]&authorization.RoleAdmin != 0 {
		return allow, nil
	}
	if agent, ok := strings.CutPrefix(c.Subject, AgentPrefix); ok && agent != "" && t.Namespace == a.cfg.Namespace &&
		a.agentMay(agent, t.Request) {
		return allow, nil
	}
	return deny, nil
}

// agentMay reports whether agent may make request: what an activity worker
// on its own task queue needs, and only for its own activities.
func (a *Authorizer) agentMay(agent string, request any) bool {
	switch r := request.(type) {
	case *workflowservice.DescribeNamespaceRequest, *workflowservice.ShutdownWorkerRequest:
		return true
	case *workflowservice.PollActivityTaskQueueRequest:
		return r.GetTaskQueue().GetName() == "garo-agent-"+agent
	case *workflowservice.RecordActivityTaskHeartbeatRequest:
		return a.ownToken(agent, r.GetTaskToken())
	case *workflowservice.RespondActivityTaskCompletedRequest:
		return a.ownToken(agent, r.GetTaskToken())
	case *workflowservice.RespondActivityTaskFailedRequest:
		return a.ownToken(agent, r.GetTaskToken())
	case *workflowservice.RespondActivityTaskCanceledRequest:
		return a.ownToken(agent, r.GetTaskToken())
	case *workflowservice.RecordActivityTaskHeartbeatByIdRequest:
		return ownActivity(agent, r.GetActivityId())
	case *workflowservice.RespondActivityTaskCompletedByIdRequest:
		return ownActivity(agent, r.GetActivityId())
	case *workflowservice.RespondActivityTaskFailedByIdRequest:
		return ownActivity(agent, r.GetActivityId())
	case *workflowservice.RespondActivityTaskCanceledByIdRequest:
		return ownActivity(agent, r.GetActivityId())
	}
	return false
}

// ownToken reports whether a task token is of an activity of agent.
func (a *Authorizer) ownToken(agent string, token []byte) bool {
	t, err := a.tokens.Deserialize(token)
	return err == nil && ownActivity(agent, t.GetActivityId())
}

// ownActivity: Garo names each activity on agent NAME's queue
// "agent/NAME/..." (workflows.AgentActivityID).
func ownActivity(agent, id string) bool { return strings.HasPrefix(id, "agent/"+agent+"/") }
