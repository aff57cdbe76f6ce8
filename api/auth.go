package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/time/rate"

	"github.com/go-chi/chi/v5"

	"github.com/garo-run/garo/workflows"
)

// TokenStore keeps the API's tokens, by hash, in Temporal.
type TokenStore interface {
	ListTokens(ctx context.Context) ([]workflows.TokenRecord, error)
	CreateToken(ctx context.Context, rec workflows.TokenRecord) (workflows.TokenRecord, error)
	// RevokeToken returns ErrNotFound for an unknown id.
	RevokeToken(ctx context.Context, id, actor string) error
	// AgentTokenHash returns the token hash of a registered (running)
	// agent; ErrNotFound when there is none.
	AgentTokenHash(ctx context.Context, agent string) (string, error)
	// CreateAgent creates an agent with its token hash; a RejectedError
	// of type Conflict when it exists.
	CreateAgent(ctx context.Context, name string, req workflows.CreateAgentRequest) (workflows.AgentState, error)
}

// DefaultTokenCacheTTL bounds how long a revoked token keeps working.
const DefaultTokenCacheTTL = 5 * time.Second

// Tokens authenticates bearer tokens: the bootstrap admin token, reader and
// admin tokens (TokensWorkflow) and agents' own tokens (AgentWorkflow).
// Only SHA-256 hashes are kept; they are compared in constant time, and
// looked up at most once per TTL.
type Tokens struct {
	admin [sha256.Size]byte
	set   bool
	store TokenStore
	ttl   time.Duration
	now   func() time.Time

	mu     sync.Mutex
	listAt time.Time
	list   []workflows.TokenRecord
	// agents caches each agent's token hash, or that it has none (a
	// negative entry), for the TTL; the least recently used go first.
	agents *expirable.LRU[string, agentHash]
	// failures limits failed authentications per client address: a burst
	// of failBurst, then one every failEvery.
	failures  *expirable.LRU[string, *rate.Limiter]
	failBurst int
	failEvery time.Duration
}

type agentHash struct {
	hash  string
	found bool
}

// Bounds of the authentication caches.
const (
	maxCachedAgents = 10000
	maxClients      = 10000
	// A client address may fail authentication failedAuthBurst times at
	// once, then once every failedAuthEvery.
	failedAuthBurst = 20
	failedAuthEvery = 3 * time.Second
)

// NewTokens returns an authenticator; store may be nil, when only the
// bootstrap admin token is accepted.
func NewTokens(adminToken string, store TokenStore, ttl time.Duration) *Tokens {
	if ttl == 0 {
		ttl = DefaultTokenCacheTTL
	}
	return &Tokens{admin: sha256.Sum256([]byte(adminToken)), set: adminToken != "", store: store, ttl: ttl,
		now:       time.Now,
		agents:    expirable.NewLRU[string, agentHash](maxCachedAgents, nil, ttl),
		failures:  expirable.NewLRU[string, *rate.Limiter](maxClients, nil, failedAuthBurst*failedAuthEvery),
		failBurst: failedAuthBurst, failEvery: failedAuthEvery}
}

// Identity is who made a request, as recorded in the workflows' histories.
type Identity struct {
	Subject string
	Role    string
	// Agent is the agent an agent token belongs to.
	Agent string
}

// Token prefixes: API tokens are garo_ID_SECRET, agents' garoa_NAME_SECRET.
const (
	apiTokenPrefix   = "garo_"
	agentTokenPrefix = "garoa_"
)

// NewSecret returns a random token secret.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// HashToken is the stored form of a token.
func HashToken(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

func sameHash(token, storedHex string) bool {
	want, err := hex.DecodeString(storedHex)
	if err != nil {
		return false
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], want) == 1
}

var errBadToken = errors.New("invalid token")

// authenticate returns who token stands for; errBadToken for none, or the
// store's error when it cannot tell.
func (t *Tokens) authenticate(ctx context.Context, token string) (Identity, error) {
	sum := sha256.Sum256([]byte(token))
	if t.set && subtle.ConstantTimeCompare(sum[:], t.admin[:]) == 1 {
		return Identity{Subject: "admin", Role: workflows.RoleAdmin}, nil
	}
	if t.store == nil {
		return Identity{}, errBadToken
	}
	switch {
	case strings.HasPrefix(token, agentTokenPrefix):
		name, _, ok := strings.Cut(strings.TrimPrefix(token, agentTokenPrefix), "_")
		if !ok || workflows.ValidateAgentName(name) != nil {
			return Identity{}, errBadToken
		}
		hash, found, err := t.agentHash(ctx, name)
		if err != nil {
			return Identity{}, err
		}
		if found && sameHash(token, hash) {
			return Identity{Subject: "agent:" + name, Role: workflows.RoleAgent, Agent: name}, nil
		}
	case strings.HasPrefix(token, apiTokenPrefix):
		id, _, ok := strings.Cut(strings.TrimPrefix(token, apiTokenPrefix), "_")
		if !ok {
			return Identity{}, errBadToken
		}
		recs, err := t.tokens(ctx)
		if err != nil {
			return Identity{}, err
		}
		for _, r := range recs {
			if r.ID == id && sameHash(token, r.Hash) {
				return Identity{Subject: "token:" + r.Name, Role: r.Role}, nil
			}
		}
	}
	return Identity{}, errBadToken
}

func (t *Tokens) tokens(ctx context.Context) ([]workflows.TokenRecord, error) {
	t.mu.Lock()
	if !t.listAt.IsZero() && t.now().Sub(t.listAt) < t.ttl {
		defer t.mu.Unlock()
		return t.list, nil
	}
	t.mu.Unlock()
	recs, err := t.store.ListTokens(ctx)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.list, t.listAt = recs, t.now()
	t.mu.Unlock()
	return recs, nil
}

func (t *Tokens) agentHash(ctx context.Context, name string) (string, bool, error) {
	if c, ok := t.agents.Get(name); ok {
		return c.hash, c.found, nil
	}
	hash, err := t.store.AgentTokenHash(ctx, name)
	found := err == nil && hash != ""
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", false, err
	}
	t.agents.Add(name, agentHash{hash: hash, found: found})
	return hash, found, nil
}

// forget drops cached lookups, so that a change made through this server
// takes effect at once here (other replicas follow within the TTL).
func (t *Tokens) forget(agent string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.listAt = time.Time{}
	t.agents.Remove(agent)
}

// limiter is the failed-authentication limiter of the request's client
// address.
func (t *Tokens) limiter(r *http.Request) *rate.Limiter {
	addr, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		addr = r.RemoteAddr
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.failures.Get(addr)
	if !ok {
		l = rate.NewLimiter(rate.Every(t.failEvery), t.failBurst)
		t.failures.Add(addr, l)
	}
	return l
}

type identityKey struct{}

// IdentityFrom returns the caller of the request that ctx belongs to.
func IdentityFrom(ctx context.Context) Identity {
	id, _ := ctx.Value(identityKey{}).(Identity)
	return id
}

// requireToken answers 401 to a request without a valid bearer token. A
// client address that keeps failing is answered 429, with Retry-After,
// before its token is looked at.
func (t *Tokens) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lim := t.limiter(r)
		if lim.Tokens() < 1 {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(t.failEvery/time.Second))))
			writeProblem(w, r, http.StatusTooManyRequests, ProblemTooManyRequests, "too many failed authentications; retry later")
			return
		}
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		token = strings.TrimSpace(token)
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > 512 {
			lim.Allow() // a failure spends one
			unauthorized(w, r)
			return
		}
		id, err := t.authenticate(r.Context(), token)
		if errors.Is(err, errBadToken) {
			lim.Allow()
			unauthorized(w, r)
			return
		}
		if err != nil {
			writeProblem(w, r, http.StatusServiceUnavailable, ProblemUnavailable, "cannot check the token now; retry later")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

func unauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="garo"`)
	writeProblem(w, r, http.StatusUnauthorized, ProblemUnauthorized, "a valid bearer token is required")
}

// allow lets through callers with one of roles; with self, also an agent
// whose name is the route's {name}.
func allow(self bool, roles ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := IdentityFrom(r.Context())
			if slices.Contains(roles, id.Role) || (self && id.Role == workflows.RoleAgent && id.Agent == chi.URLParam(r, "name")) {
				next.ServeHTTP(w, r)
				return
			}
			writeProblem(w, r, http.StatusForbidden, ProblemForbidden, "the "+id.Role+" role may not do this")
		})
	}
}
