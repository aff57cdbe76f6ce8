package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/garo-run/garo/workflows"
)

// TemporalAgents implements Agents on AgentWorkflows.
type TemporalAgents struct {
	Client    client.Client
	Namespace string
}

// Register starts the agent's workflow if it is not running and sends it
// the register update, in one call (update-with-start).
func (t *TemporalAgents) Register(ctx context.Context, name string, req workflows.RegisterRequest) (workflows.AgentState, error) {
	var st workflows.AgentState
	err := t.updateWithStart(ctx, name, workflows.UpdateRegister, req, &st)
	return st, err
}

// updateWithStart sends an update to the agent's workflow, starting it if
// it is not running.
func (t *TemporalAgents) updateWithStart(ctx context.Context, name, update string, arg, out any) error {
	return runUpdateWithStart(ctx, t.Client, client.StartWorkflowOptions{
		ID:                    workflows.AgentWorkflowID(name),
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.SearchAttributeAgent.ValueSet(name)),
		StaticSummary:         "agent " + name,
	}, workflows.AgentWorkflowName, workflows.AgentWorkflowInput{Name: name}, update, arg, out)
}

func (t *TemporalAgents) update(ctx context.Context, name, update string, arg any) (workflows.AgentState, error) {
	var st workflows.AgentState
	err := runUpdate(ctx, t.Client, workflows.AgentWorkflowID(name), update, arg, &st)
	if errors.Is(err, ErrNotFound) && t.wasUnregistered(ctx, name) {
		return st, ErrUnregistered
	}
	return st, err
}

// runUpdate sends an update to the workflow id and waits for its result.
func runUpdate(ctx context.Context, c client.Client, id, update string, arg, out any) error {
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   update,
		Args:         []any{arg},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return mapTemporalError(err)
	}
	return mapTemporalError(h.Get(ctx, out))
}

// runUpdateWithStart sends an update to the workflow opts.ID, starting it
// on the server's queue first if it is not running, in one call, and
// waits for the update's result.
func runUpdateWithStart(ctx context.Context, c client.Client, opts client.StartWorkflowOptions, workflowType string, input any,
	update string, arg, out any) error {
	opts.TaskQueue = workflows.ServerTaskQueue
	opts.WorkflowIDConflictPolicy = enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
	h, err := c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: c.NewWithStartWorkflowOperation(opts, workflowType, input),
		UpdateOptions: client.UpdateWorkflowOptions{
			WorkflowID:   opts.ID,
			UpdateName:   update,
			Args:         []any{arg},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return mapTemporalError(err)
	}
	return mapTemporalError(h.Get(ctx, out))
}

// wasUnregistered reports whether the agent's last workflow run completed,
// which it does only when the agent is unregistered.
func (t *TemporalAgents) wasUnregistered(ctx context.Context, name string) bool {
	d, err := t.Client.DescribeWorkflow(ctx, workflows.AgentWorkflowID(name), "")
	return err == nil && d.Status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
}

// Heartbeat records that the agent is alive.
func (t *TemporalAgents) Heartbeat(ctx context.Context, name string, req workflows.HeartbeatRequest) (workflows.AgentState, error) {
	return t.update(ctx, name, workflows.UpdateHeartbeat, req)
}

// Unregister ends the agent's workflow and returns its final record.
func (t *TemporalAgents) Unregister(ctx context.Context, name string, req workflows.UnregisterRequest) (workflows.AgentState, error) {
	return t.update(ctx, name, workflows.UpdateUnregister, req)
}

// Get returns the exact record of a registered agent from its workflow.
func (t *TemporalAgents) Get(ctx context.Context, name string) (workflows.AgentState, error) {
	var st workflows.AgentState
	err := queryRunning(ctx, t.Client, workflows.AgentWorkflowID(name), &st)
	return st, err
}

// queryRunning answers the state query of a running workflow into out;
// ErrNotFound when the workflow is not running.
func queryRunning(ctx context.Context, c client.Client, id string, out any) error {
	return queryRunningAs(ctx, c, id, workflows.QueryState, out)
}

// queryRunningAs answers the named query of a running workflow into out.
func queryRunningAs(ctx context.Context, c client.Client, id, query string, out any) error {
	d, err := c.DescribeWorkflow(ctx, id, "")
	if err != nil {
		return mapTemporalError(err)
	}
	if d.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return ErrNotFound
	}
	v, err := c.QueryWorkflow(ctx, id, "", query)
	if err != nil {
		return mapTemporalError(err)
	}
	if err := v.Get(out); err != nil {
		return fmt.Errorf("decode state of %s: %w", id, err)
	}
	return nil
}

// listRunning returns one page of the running workflows of a type from the
// visibility store; cursor and the returned cursor wrap its page token.
func listRunning(ctx context.Context, c client.Client, namespace, workflowType, agent string, limit int, cursor string) ([]*workflowpb.WorkflowExecutionInfo, string, error) {
	token, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return nil, "", ErrBadCursor
	}
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace:     namespace,
		PageSize:      int32(limit),
		NextPageToken: token,
		Query:         workflows.RunningQuery(workflowType, agent),
	})
	if err != nil {
		var inv *serviceerror.InvalidArgument
		if cursor != "" && errors.As(err, &inv) {
			return nil, "", ErrBadCursor
		}
		return nil, "", mapTemporalError(err)
	}
	return resp.Executions, base64.RawURLEncoding.EncodeToString(resp.NextPageToken), nil
}

// memoSummary decodes the summary memo of e into out; false when it has
// none yet.
func memoSummary(e *workflowpb.WorkflowExecutionInfo, out any) (bool, error) {
	p, ok := e.GetMemo().GetFields()[workflows.MemoSummary]
	if !ok {
		return false, nil
	}
	if err := converter.GetDefaultDataConverter().FromPayload(p, out); err != nil {
		return false, fmt.Errorf("decode memo of %s: %w", e.GetExecution().GetWorkflowId(), err)
	}
	return true, nil
}

// List returns the registered agents from the visibility store, one page at
// a time, using each workflow's memo so that listing costs one call.
func (t *TemporalAgents) List(ctx context.Context, limit int, cursor string) ([]workflows.AgentState, string, error) {
	execs, next, err := listRunning(ctx, t.Client, t.Namespace, workflows.AgentWorkflowName, "", limit, cursor)
	if err != nil {
		return nil, "", err
	}
	agents := make([]workflows.AgentState, 0, len(execs))
	for _, e := range execs {
		name := strings.TrimPrefix(e.GetExecution().GetWorkflowId(), workflows.AgentWorkflowID(""))
		st := workflows.AgentState{Name: name, TaskQueue: workflows.AgentTaskQueue(name), Status: workflows.AgentOffline}
		if _, err := memoSummary(e, &st); err != nil {
			return nil, "", err
		}
		st.Name = name
		agents = append(agents, st)
	}
	return agents, next, nil
}

// mapTemporalError turns Temporal's errors into the API's.
func mapTemporalError(err error) error {
	if err == nil {
		return nil
	}
	var (
		notFound *serviceerror.NotFound
		unavail  *serviceerror.Unavailable
		deadline *serviceerror.DeadlineExceeded
		appErr   *temporal.ApplicationError
	)
	switch {
	case errors.As(err, &notFound):
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	case errors.As(err, &appErr):
		return &RejectedError{Type: appErr.Type(), Message: appErr.Message()}
	case errors.As(err, &unavail), errors.As(err, &deadline):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

// TemporalJobs delivers job events as signals to repository workflows.
type TemporalJobs struct {
	Client client.Client
}

// SignalJob signals the pool of owner/repo; ErrNotFound when it has none.
func (t *TemporalJobs) SignalJob(ctx context.Context, owner, repo string, ev workflows.JobEvent) error {
	err := t.Client.SignalWorkflow(ctx, workflows.RepositoryWorkflowID(owner, repo), "", workflows.SignalJob, ev)
	if err != nil {
		return mapTemporalError(err)
	}
	return nil
}

// TemporalPools implements Pools on RepositoryWorkflows.
type TemporalPools struct {
	Client    client.Client
	Namespace string
}

// Configure starts the pool's workflow if it is not running and sends it
// the validated configure update, in one call.
func (t *TemporalPools) Configure(ctx context.Context, owner, repo string, req workflows.ConfigureRequest) (workflows.PoolView, error) {
	var v workflows.PoolView
	err := runUpdateWithStart(ctx, t.Client, client.StartWorkflowOptions{
		ID:                    workflows.RepositoryWorkflowID(owner, repo),
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchAttributeRepository.ValueSet(owner+"/"+repo),
			workflows.SearchAttributeAgent.ValueSet(req.Config.Agent)),
		StaticSummary: "runner pool of " + owner + "/" + repo,
	}, workflows.RepositoryWorkflowName, workflows.RepositoryInput{Owner: owner, Repo: repo}, workflows.UpdateConfigure, req, &v)
	return v, err
}

// Get returns the pool's live state from its workflow.
func (t *TemporalPools) Get(ctx context.Context, owner, repo string) (workflows.PoolView, error) {
	var view workflows.PoolView
	err := queryRunning(ctx, t.Client, workflows.RepositoryWorkflowID(owner, repo), &view)
	return view, err
}

// Drain starts draining the pool; its workflow ends when its runners are
// gone.
func (t *TemporalPools) Drain(ctx context.Context, owner, repo string, req workflows.DrainRequest) (workflows.PoolView, error) {
	var v workflows.PoolView
	err := runUpdate(ctx, t.Client, workflows.RepositoryWorkflowID(owner, repo), workflows.UpdateDrain, req, &v)
	return v, err
}

// List returns the running pools from the visibility store's memos.
func (t *TemporalPools) List(ctx context.Context, limit int, cursor, agent string) ([]workflows.PoolView, string, error) {
	execs, next, err := listRunning(ctx, t.Client, t.Namespace, workflows.RepositoryWorkflowName, agent, limit, cursor)
	if err != nil {
		return nil, "", err
	}
	pools := make([]workflows.PoolView, 0, len(execs))
	for _, e := range execs {
		var v workflows.PoolView
		found, err := memoSummary(e, &v)
		if err != nil {
			return nil, "", err
		}
		if !found {
			v.Repository = strings.TrimPrefix(e.GetExecution().GetWorkflowId(), "garo/repo/")
		}
		pools = append(pools, v)
	}
	return pools, next, nil
}

// TemporalTokens implements TokenStore on TokensWorkflow and the agents'
// workflows.
type TemporalTokens struct {
	Client client.Client
}

// ListTokens returns the stored reader and admin tokens.
func (t *TemporalTokens) ListTokens(ctx context.Context) ([]workflows.TokenRecord, error) {
	v, err := t.Client.QueryWorkflow(ctx, workflows.TokensWorkflowID, "", workflows.QueryTokens)
	if err != nil {
		if errors.Is(mapTemporalError(err), ErrNotFound) {
			return nil, nil // no token was ever created
		}
		return nil, mapTemporalError(err)
	}
	var recs []workflows.TokenRecord
	if err := v.Get(&recs); err != nil {
		return nil, fmt.Errorf("decode tokens: %w", err)
	}
	return recs, nil
}

// CreateToken stores a token, starting the TokensWorkflow on first use.
func (t *TemporalTokens) CreateToken(ctx context.Context, rec workflows.TokenRecord) (workflows.TokenRecord, error) {
	err := runUpdateWithStart(ctx, t.Client, client.StartWorkflowOptions{
		ID: workflows.TokensWorkflowID, StaticSummary: "API tokens (hashes only)",
	}, workflows.TokensWorkflowName, workflows.TokensInput{}, workflows.UpdateCreateToken, rec, &rec)
	return rec, err
}

// RevokeToken removes a token.
func (t *TemporalTokens) RevokeToken(ctx context.Context, id, actor string) error {
	return runUpdate(ctx, t.Client, workflows.TokensWorkflowID, workflows.UpdateRevokeToken,
		workflows.RevokeTokenRequest{ID: id, Actor: actor}, nil)
}

// AgentTokenHash returns the token hash a running agent's workflow holds.
func (t *TemporalAgents) AgentTokenHash(ctx context.Context, name string) (string, error) {
	var auth workflows.AgentAuth
	if err := queryRunningAs(ctx, t.Client, workflows.AgentWorkflowID(name), workflows.QueryAuth, &auth); err != nil {
		return "", err
	}
	return auth.TokenHash, nil
}

// AgentTokenHash returns the token hash of agent name.
func (t *TemporalTokens) AgentTokenHash(ctx context.Context, name string) (string, error) {
	return (&TemporalAgents{Client: t.Client}).AgentTokenHash(ctx, name)
}

// CreateAgent starts the agent's workflow with its token hash.
func (t *TemporalTokens) CreateAgent(ctx context.Context, name string, req workflows.CreateAgentRequest) (workflows.AgentState, error) {
	var st workflows.AgentState
	err := (&TemporalAgents{Client: t.Client}).updateWithStart(ctx, name, workflows.UpdateCreateAgent, req, &st)
	return st, err
}
