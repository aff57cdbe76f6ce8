package workflows

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// TokensWorkflow keeps the API's reader and admin tokens, by their SHA-256
// hashes only; agents' tokens live in their AgentWorkflows.
const (
	TokensWorkflowName = "TokensWorkflow"
	TokensWorkflowID   = "garo/tokens"
	UpdateCreateToken  = "createToken"
	UpdateRevokeToken  = "revokeToken"
	QueryTokens        = "tokens"
)

// Token roles.
const (
	RoleAdmin  = "admin"
	RoleReader = "reader"
	RoleAgent  = "agent"
)

// TokenRecord is a stored token: never the token, only its hash.
type TokenRecord struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Hash      string    `json:"hash"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy,omitempty"`
}

// RevokeTokenRequest is the argument of the revokeToken update.
type RevokeTokenRequest struct {
	ID    string `json:"id"`
	Actor string `json:"actor,omitempty"`
}

// TokensInput starts or continues a TokensWorkflow.
type TokensInput struct {
	Tokens []TokenRecord `json:"tokens,omitempty"`
}

var (
	tokenIDPattern   = regexp.MustCompile(`^[a-z0-9]{8,32}$`)
	tokenHashPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// MaxTokens bounds the tokens one TokensWorkflow keeps.
const MaxTokens = 1000

// ValidateTokenRecord checks a token to be stored.
func ValidateTokenRecord(t TokenRecord) error {
	switch {
	case !tokenIDPattern.MatchString(t.ID):
		return errors.New("invalid token id")
	case t.Role != RoleAdmin && t.Role != RoleReader:
		return fmt.Errorf("role %q: want admin or reader", t.Role)
	case t.Name == "" || len(t.Name) > 64:
		return errors.New("name must be 1-64 characters")
	case !tokenHashPattern.MatchString(t.Hash):
		return errors.New("hash must be a hex SHA-256")
	}
	return nil
}

// TokensWorkflow holds the token records; it runs for ever, continuing as
// new when its history grows.
func TokensWorkflow(ctx workflow.Context, in TokensInput) error {
	tokens := append([]TokenRecord(nil), in.Tokens...)
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
			workflow.GetLogger(ctx).Info("Token created", "id", t.ID, "name", t.Name, "role", t.Role, "actor", t.CreatedBy)
			return t, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(t TokenRecord) error {
			if find(t.ID) >= 0 {
				return temporal.NewNonRetryableApplicationError("token id exists", ErrTypeInvalidRequest, nil)
			}
			if len(tokens) >= MaxTokens {
				return temporal.NewNonRetryableApplicationError(fmt.Sprintf("at most %d tokens", MaxTokens), ErrTypeInvalidRequest, nil)
			}
			return invalidRequest(ValidateTokenRecord(t))
		}}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateRevokeToken,
		func(ctx workflow.Context, req RevokeTokenRequest) (bool, error) {
			if i := find(req.ID); i >= 0 {
				workflow.GetLogger(ctx).Info("Token revoked", "id", req.ID, "actor", req.Actor)
				tokens = append(tokens[:i], tokens[i+1:]...)
			}
			return true, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(req RevokeTokenRequest) error {
			if find(req.ID) < 0 {
				return temporal.NewNonRetryableApplicationError("no token "+req.ID, ErrTypeNotRegistered, nil)
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
