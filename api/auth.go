package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Tokens checks bearer tokens. Only SHA-256 hashes are kept, and they are
// compared in constant time.
type Tokens struct {
	admin [sha256.Size]byte
	set   bool
}

// NewTokens returns a checker that accepts adminToken as the admin token.
func NewTokens(adminToken string) *Tokens {
	return &Tokens{admin: sha256.Sum256([]byte(adminToken)), set: adminToken != ""}
}

// Identity is who made a request, as recorded in the workflows' histories.
type Identity struct {
	Subject string
	Role    string
}

// Roles.
const (
	RoleAdmin = "admin"
)

// authenticate returns the identity the token in r stands for.
func (t *Tokens) authenticate(r *http.Request) (Identity, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || !t.set {
		return Identity{}, false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if subtle.ConstantTimeCompare(sum[:], t.admin[:]) == 1 {
		return Identity{Subject: "admin", Role: RoleAdmin}, true
	}
	return Identity{}, false
}

type identityKey struct{}

// IdentityFrom returns the caller of the request that ctx belongs to.
func IdentityFrom(ctx context.Context) Identity {
	id, _ := ctx.Value(identityKey{}).(Identity)
	return id
}

// requireToken answers 401 to a request without a valid bearer token.
func (t *Tokens) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := t.authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="garo"`)
			writeProblem(w, r, http.StatusUnauthorized, ProblemUnauthorized, "a valid bearer token is required")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}
