package api

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFailedAuthenticationIsRateLimitedPerAddress: a client address that
// keeps sending bad tokens is answered 429 with Retry-After after a burst,
// before its tokens are even looked up; another address is not held back,
// and a good token from a fresh address goes through.
func TestFailedAuthenticationIsRateLimitedPerAddress(t *testing.T) {
	store := &memTokens{hashes: map[string]string{}}
	auth := NewTokens(adminToken, store, time.Minute)
	ok := auth.requireToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	call := func(addr, token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/api/v1/agents", nil)
		r.RemoteAddr = addr + ":40000"
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		ok.ServeHTTP(w, r)
		return w
	}
	for i := range failedAuthBurst {
		require.Equal(t, http.StatusUnauthorized, call("203.0.113.7", "garoa_ghost-"+strconv.Itoa(i)+"_x").Code)
	}
	lookups := store.calls
	w := call("203.0.113.7", "garoa_ghost-x_x")
	assert.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "3", w.Header().Get("Retry-After"))
	assert.Equal(t, lookups, store.calls, "a limited address costs no lookup")
	assert.Equal(t, http.StatusTooManyRequests, call("203.0.113.7", adminToken).Code, "until its limit refills")
	assert.Equal(t, http.StatusUnauthorized, call("198.51.100.1", "garoa_ghost-x_x").Code, "another address is not held back")
	assert.Equal(t, http.StatusNoContent, call("198.51.100.2", adminToken).Code)
}

// TestUnknownAgentsAreCachedNegativelyAndBounded: a token naming an agent
// that does not exist costs one lookup per TTL, not one per request, and
// the cache keeps at most maxCachedAgents names, dropping the least
// recently used rather than all.
func TestUnknownAgentsAreCachedNegativelyAndBounded(t *testing.T) {
	store := &memTokens{hashes: map[string]string{"lab-1": HashToken("garoa_lab-1_secret")}}
	auth := NewTokens(adminToken, store, time.Minute)
	for range 5 {
		_, err := auth.authenticate(t.Context(), "garoa_ghost_x")
		require.ErrorIs(t, err, errBadToken)
	}
	assert.Equal(t, 1, store.calls, "one lookup for an unknown agent")
	_, err := auth.authenticate(t.Context(), "garoa_lab-1_secret")
	require.NoError(t, err)
	for i := range maxCachedAgents + 100 {
		_, _ = auth.authenticate(t.Context(), "garoa_ghost-"+strconv.Itoa(i)+"_x")
		if i%1000 == 0 {
			_, _ = auth.authenticate(t.Context(), "garoa_lab-1_secret") // recently used
		}
	}
	assert.LessOrEqual(t, auth.agents.Len(), maxCachedAgents)
	calls := store.calls
	_, err = auth.authenticate(t.Context(), "garoa_lab-1_secret")
	require.NoError(t, err)
	assert.Equal(t, calls, store.calls, "a recently used entry survives the flood")
}
