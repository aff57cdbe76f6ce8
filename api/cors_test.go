package api

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCORSAllowsOnlyTheListedOrigins: a portal on a listed origin may call
// the API from a browser (preflight and request); another origin gets no
// CORS header, and with no origin listed (the default) none does.
func TestCORSAllowsOnlyTheListedOrigins(t *testing.T) {
	send := func(h http.Handler, method, origin string) *http.Response {
		req := httptest.NewRequest(method, "/api/v1/repositories", nil)
		req.Header.Set("Origin", origin)
		if method == http.MethodOptions {
			req.Header.Set("Access-Control-Request-Method", "PUT")
			req.Header.Set("Access-Control-Request-Headers", "Authorization, Content-Type")
		} else {
			req.Header.Set("Authorization", "Bearer "+adminToken)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Result()
	}
	h := NewRouter(Config{Tokens: NewTokens(adminToken, nil, 0), Logger: slog.New(slog.DiscardHandler),
		CORSOrigins: []string{"https://portal.example.com"}})

	pre := send(h, http.MethodOptions, "https://portal.example.com")
	require.Less(t, pre.StatusCode, 300)
	assert.Equal(t, "https://portal.example.com", pre.Header.Get("Access-Control-Allow-Origin"))
	assert.Contains(t, pre.Header.Get("Access-Control-Allow-Methods"), "PUT")
	assert.Contains(t, pre.Header.Get("Access-Control-Allow-Headers"), "Authorization")
	assert.Empty(t, pre.Header.Get("Access-Control-Allow-Credentials"), "the token travels in a header, not a cookie")

	get := send(h, http.MethodGet, "https://portal.example.com")
	assert.Equal(t, "https://portal.example.com", get.Header.Get("Access-Control-Allow-Origin"))
	assert.Contains(t, get.Header.Get("Access-Control-Expose-Headers"), "Link")

	assert.Empty(t, send(h, http.MethodOptions, "https://evil.example.com").Header.Get("Access-Control-Allow-Origin"))
	assert.Empty(t, send(h, http.MethodGet, "https://evil.example.com").Header.Get("Access-Control-Allow-Origin"))

	none := NewRouter(Config{Tokens: NewTokens(adminToken, nil, 0), Logger: slog.New(slog.DiscardHandler)})
	assert.Empty(t, send(none, http.MethodOptions, "https://portal.example.com").Header.Get("Access-Control-Allow-Origin"),
		"no origin by default")
}
