package api

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/client"

	"github.com/garo-run/garo/workflows"
)

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
