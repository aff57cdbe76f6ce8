package workflows

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// TokensWorkflow's contract: the one workflow `garo/tokens` of type
// TokensWorkflow on the server's task queue keeps the API's reader and admin
// tokens, by their SHA-256 hashes only; agents' tokens live in their
// AgentWorkflows. Its updates answer ErrTypeInvalidRequest, ErrTypeConflict
// (createToken: the id exists) and ErrTypeNotFound (revokeToken: no such
// token).
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
