package workflows

import (
	"fmt"
	"sort"

	"go.temporal.io/sdk/workflow"
)

// TokensWorkflow holds the token records; it runs for ever, continuing as
// new when its history grows.
func TokensWorkflow(ctx workflow.Context, in TokensInput) error {
	tokens := append([]TokenRecord(nil), in.Tokens...)
	logger := workflow.GetLogger(ctx)
	find := func(id string) int {
		for i, t := range tokens {
			if t.ID == id {
				return i
			}
		}
		return -1
	}
	if err := workflow.SetQueryHandler(ctx, QueryTokens, func() ([]TokenRecord, error) {
		out := append([]TokenRecord(nil), tokens...)
		sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
		return out, nil
	}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateCreateToken,
		func(ctx workflow.Context, t TokenRecord) (TokenRecord, error) {
			t.CreatedAt = workflow.Now(ctx)
			tokens = append(tokens, t)
			logger.Info("Token created", "id", t.ID, "name", t.Name, "role", t.Role, "actor", t.CreatedBy)
			return t, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(t TokenRecord) error {
			if find(t.ID) >= 0 {
				return reject(ErrTypeConflict, "token id exists")
			}
			if len(tokens) >= MaxTokens {
				return reject(ErrTypeInvalidRequest, fmt.Sprintf("at most %d tokens", MaxTokens))
			}
			return invalidRequest(ValidateTokenRecord(t))
		}}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateRevokeToken,
		func(ctx workflow.Context, req RevokeTokenRequest) (bool, error) {
			if i := find(req.ID); i >= 0 {
				logger.Info("Token revoked", "id", req.ID, "actor", req.Actor)
				tokens = append(tokens[:i], tokens[i+1:]...)
			}
			return true, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(req RevokeTokenRequest) error {
			if find(req.ID) < 0 {
				return reject(ErrTypeNotFound, "no token "+req.ID)
			}
			return nil
		}}); err != nil {
		return err
	}
	if err := workflow.Await(ctx, func() bool { return workflow.GetInfo(ctx).GetContinueAsNewSuggested() }); err != nil {
		return err
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	return workflow.NewContinueAsNewError(ctx, TokensWorkflowName, TokensInput{Tokens: tokens})
}
